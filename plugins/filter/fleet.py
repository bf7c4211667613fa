# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filter sne.guichet.host_status (documented in host_status.yml): a shim over plugin_utils._fleet."""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.sne.guichet.plugins.plugin_utils._fleet import audit_record, rotation_record


def host_status(facts: Mapping[str, Any], host: str, kind: str = "rotation") -> Dict[str, Any]:
    if not isinstance(facts, Mapping):
        raise AnsibleFilterError("host_status: expects a dict of the host's results, got %s"
                                 % type(facts).__name__)
    if kind == "rotation":
        return rotation_record(host, facts)
    if kind == "audit":
        return audit_record(host, facts)
    raise AnsibleFilterError("host_status: kind must be rotation or audit, not %r" % kind)


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"host_status": host_status}
