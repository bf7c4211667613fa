# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters sne.guichet.host_vars_proposal and host_vars_proposal_yaml (documented in
host_vars_proposal.yml and host_vars_proposal_yaml.yml): shims over plugin_utils._proposal."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

from ansible.errors import AnsibleFilterError

from ansible_collections.sne.guichet.plugins.plugin_utils._proposal.names import ProposalError
from ansible_collections.sne.guichet.plugins.plugin_utils._proposal.propose import propose
from ansible_collections.sne.guichet.plugins.plugin_utils._proposal.yaml_text import render_yaml


def host_vars_proposal(scan: Mapping[str, Any], current: Any = None, retired: Any = None,
                       generation: Optional[str] = None, host: Optional[str] = None,
                       stores: Optional[Sequence[Any]] = None,
                       search_paths: Optional[Sequence[Any]] = None,
                       config_files: Optional[Sequence[Any]] = None,
                       certificate_name: Optional[str] = None,
                       authority_name: Optional[str] = None) -> Dict[str, Any]:
    try:
        return propose(scan, current, retired, generation or "", host=host, stores=stores,
                       search_paths=search_paths, config_files=config_files,
                       certificate_name=certificate_name, authority_name=authority_name)
    except ProposalError as exc:
        raise AnsibleFilterError("host_vars_proposal: %s" % exc)


# What host_vars_proposal_yaml accepts besides its input and ``date``.
_PROPOSAL_ARGUMENTS = inspect.signature(host_vars_proposal)


def host_vars_proposal_yaml(data: Mapping[str, Any], *args: Any, date: Optional[str] = None,
                            **kwargs: Any) -> str:
    """``data``: a proposal (from host_vars_proposal), or a scan result, proposed first.

    The other arguments are those of host_vars_proposal (checked as it would check them), and
    ``date``; ``host`` also names the host in the header.
    """
    options = _PROPOSAL_ARGUMENTS.bind(data, *args, **kwargs).arguments
    if isinstance(data, Mapping) and "sne_guichet_stores" not in data:
        data = host_vars_proposal(data, *args, **kwargs)
    try:
        return render_yaml(data, host=options.get("host"), date=date)
    except ProposalError as exc:
        raise AnsibleFilterError("host_vars_proposal_yaml: %s" % exc)


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"host_vars_proposal": host_vars_proposal,
                "host_vars_proposal_yaml": host_vars_proposal_yaml}
