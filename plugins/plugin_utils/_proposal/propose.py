# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""From an audit's scan to the host's inventory: a proposed ``host_vars`` fragment.

This API is private to the sne.guichet collection; it may change without notice.
Controller side (the ``sne.guichet.host_vars_proposal`` filter is a thin shim over
:func:`propose`; ``host_vars_proposal_yaml`` over :func:`yaml_text.render_yaml`); standard
library only. The rules below are applied by :class:`builder.Builder`.

:func:`propose` takes what ``sne.guichet.scan`` returned for a host (run with ``sha256`` = the
current and retired fingerprints and ``references_of`` = the retired ones) and says which
stores the host should declare so that ``rotate.yml`` converges it:

- a Java keystore (JKS, JCEKS: type ``jks``; PKCS#12: ``pkcs12``) holding a current or retired
  certificate, or a PKCS#12 file the scan could not read without its password, is a store,
  with a password placeholder ``{{ vault_<host>_<file> }}``;
- a folder holding a found certificate under an OpenSSL hash name (``8f5dbf0c.0``) is one
  ``pem_dir`` store; files under ``.../usr/local/share/ca-certificates`` make one ``debian``
  store, under ``.../etc/pki/ca-trust/source/anchors`` one ``redhat`` store (matched as a
  suffix, so a host laid out under a test root works too);
- a PEM file of several certificates (a bundle) is a ``pem`` store;
- a single-certificate file holding the current generation is a store of its type;
- a single-certificate file holding only retired certificates is what the retire step
  quarantines: it is not a store, but when configuration files name it, a new file of the
  same type is proposed next to it (``create: true``; name: the old one with its generation
  label, ``V4``, replaced, else ``<stem>-<generation><ext>``), and each naming file gets a
  ``sne_guichet_config_files`` rewrite of the old name into the new one;
- folders generated from the trust anchors (``/etc/ssl/certs``...) are never stores.

The host's declared stores and configuration rewrites are kept (never their passwords: a
declared store gets a placeholder too, since the values Ansible passes are the real ones).
Everything is sorted; paths are kept exactly as the scan wrote them.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from ansible_collections.sne.guichet.plugins.plugin_utils._proposal.builder import Builder
from ansible_collections.sne.guichet.plugins.plugin_utils._proposal.names import (
    ProposalError,
    as_list,
    fingerprints,
    plain,
)


def propose(scan: Mapping[str, Any], current: Any, retired: Any, generation: str,
            host: Optional[str] = None, stores: Optional[Sequence[Any]] = None,
            search_paths: Optional[Sequence[Any]] = None,
            config_files: Optional[Sequence[Any]] = None,
            certificate_name: Optional[str] = None,
            authority_name: Optional[str] = None) -> Dict[str, Any]:
    """A proposed ``host_vars`` fragment from one host's ``sne.guichet.scan`` result.

    ``current`` and ``retired``: SHA-256 fingerprints (the new certificate and its authority;
    the retired ones). ``generation``: the new generation's label (``V5``), for new file
    names. ``host``: the inventory name (in the password placeholders). ``stores``,
    ``config_files``: what the host declares already (kept); ``search_paths``: the paths to
    keep searching for stray copies. ``certificate_name``, ``authority_name``: the names
    the deploy role gives the new certificates (default ``sne-chiffrement-<generation>``,
    ``sne-ac-<generation>``, its defaults), used in ``names`` of the single-certificate
    stores.

    Returns ``sne_guichet_stores``, ``sne_guichet_config_files``, ``sne_guichet_search_paths``
    (the variables, sorted), ``notes`` (what the operator must check or do, in words) and
    ``reasons`` (for each proposed store or rewritten file, why; :func:`render_yaml` writes
    them as comments).
    """
    if not isinstance(scan, Mapping):
        raise ProposalError("expects the result of sne.guichet.scan (a dict), got %s"
                            % type(scan).__name__)
    if not isinstance(generation, str) or not generation.strip() or "/" in generation:
        raise ProposalError("generation must be the new generation's label, such as V5")
    generation = generation.strip()
    current_fps = fingerprints(current, "current")
    retired_fps = fingerprints(retired, "retired")
    both = sorted(set(current_fps) & set(retired_fps))
    if both:
        raise ProposalError("current and retired both name %s" % ", ".join(both))
    builder = Builder(scan, current_fps, retired_fps, generation, host,
                      certificate_name or "sne-chiffrement-{{ sne_generation | lower }}",
                      authority_name or "sne-ac-{{ sne_generation | lower }}")
    builder.declared(as_list(stores), as_list(config_files))
    builder.folders()
    builder.files_found()
    builder.unreadable()
    vault = builder.placeholders()
    if vault:
        builder.notes.insert(0, "define %s in the vault (ansible-vault encrypt_string) before "
                             "using this file: the passwords of the Java keystores" % ", ".join(vault))
    singles = sorted(p for p, s in builder.stores.items() if s.get("names"))
    if singles:
        builder.note("%s: given names (%s) so that each keeps one certificate; these are the deploy "
                     "role's default names: change them if deploy_certificate_name or "
                     "deploy_authority_name are set" % (", ".join(singles), ", ".join(
                         sorted(set(n for p in singles for n in builder.stores[p]["names"])))))

    paths: List[str] = []
    for value in as_list(search_paths):
        if isinstance(value, str) and value and value not in paths:
            paths.append(value)
    missing = set(str(m) for m in as_list(scan.get("missing")))
    for path in paths:
        if path in missing:
            builder.note("search path %s does not exist on this host" % path)
    for path, changes in builder.rewrites.items():
        builder.reasons.setdefault(path, "names a retired file: %s" % ", ".join(changes))

    return plain({
        "sne_guichet_stores": [builder.stores[p] for p in sorted(builder.stores)],
        "sne_guichet_config_files": sorted(builder.config_files,
                                           key=lambda e: (e["path"], e["regexp"], e["replace"])),
        "sne_guichet_search_paths": paths,
        "notes": list(builder.notes),
        "reasons": dict(sorted(builder.reasons.items())),
    })
