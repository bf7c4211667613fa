# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters sne.guichet.simulator_config and sne.guichet.simulated_rotation (documented in
simulator_config.yml and simulated_rotation.yml): what the editors' kit (role simulate) writes,
from the manifest of its test PKI."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ansible.errors import AnsibleFilterError

GENERATIONS = ("V4", "V5", "V6")


def _generation(value: Any) -> str:
    gen = str(value).upper()
    if gen not in GENERATIONS:
        raise AnsibleFilterError("unknown generation %r: the test PKI has %s"
                                 % (value, ", ".join(GENERATIONS)))
    return gen


def _generations(current: Any, revoked: Optional[Sequence[Any]]) -> List[str]:
    gens = [_generation(current)] + [_generation(g) for g in (revoked or [])]
    if gens[0] in gens[1:]:
        raise AnsibleFilterError("generation %s is both current and revoked" % gens[0])
    if len(set(gens)) != len(gens):
        raise AnsibleFilterError("a revoked generation is listed twice: %s" % ", ".join(gens[1:]))
    return gens


def _cert(manifest: Dict[str, Any], ident: str) -> Dict[str, Any]:
    try:
        return manifest["certificates"][ident]
    except (KeyError, TypeError):
        raise AnsibleFilterError("the manifest has no certificate %r: not a test PKI of this kit"
                                 % ident) from None


def _entry(manifest: Dict[str, Any], gen: str, pki_dir: str) -> Dict[str, str]:
    ident = "chiffrement-" + gen.lower()
    cert = _cert(manifest, ident)
    if not cert.get("key"):
        raise AnsibleFilterError("the manifest has no private key for %s" % ident)
    return {"generation": gen, "certificate": "%s/%s" % (pki_dir, cert["path"]),
            "key": "%s/%s" % (pki_dir, cert["key"])}


def simulator_config(manifest: Dict[str, Any], current: Any = "V5", revoked: Optional[Sequence[Any]] = None,
                     pki_dir: str = "pki", transports: Optional[Sequence[str]] = None, http_port: int = 0,
                     delay_seconds: float = 0) -> Dict[str, Any]:
    """The simulator's configuration: ``current`` answered, ``revoked`` dropped; paths under
    ``pki_dir`` (relative to the configuration file, as the simulator reads them)."""
    gens = _generations(current, revoked)
    wanted = list(transports or ["http"])
    unknown = sorted(set(wanted) - {"http", "folder", "smtp"})
    if unknown:
        raise AnsibleFilterError("unknown transport(s): %s (http, folder, smtp)" % ", ".join(unknown))
    config_transports: Dict[str, Any] = {"http": {"port": int(http_port)}}
    if "folder" in wanted:
        config_transports["folder"] = {"outbox": "folder/outbox", "inbox": "folder/inbox",
                                       "poll_seconds": 0.2}
    if "smtp" in wanted:
        config_transports["smtp"] = {"port": 0, "domain": "sne.test"}
    return {"current": _entry(manifest, gens[0], pki_dir),
            "revoked": [_entry(manifest, gen, pki_dir) for gen in gens[1:]],
            "delay_seconds": float(delay_seconds), "transports": config_transports}


def _pem_text(pki_dir: str, cert: Dict[str, Any]) -> str:
    try:
        with open("%s/%s" % (pki_dir, cert["path"]), encoding="ascii") as handle:
            return handle.read()
    except OSError as exc:
        raise AnsibleFilterError("cannot read %s of the test PKI: %s" % (cert["path"], exc)) from None


def _revocation_vars(manifest: Dict[str, Any], pki_dir: str, gens: List[str]) -> Dict[str, Any]:
    """The CRLs that prove the rotation: the new authority's good one (it does not list the new
    certificate), and each retired authority's that revokes its certificate; the retired
    certificates as PEM text (their authorities verify those CRLs), revocation then required."""
    crls = manifest.get("crls") or {}
    current = crls.get("ac-" + gens[0].lower())
    if not current or "chiffrement-" + gens[0].lower() in [r["certificate"] for r in current["revoked"]]:
        return {}
    paths = ["%s/%s" % (pki_dir, current["der"])]
    retired: List[str] = []
    proven = True
    for old in gens[1:]:
        leaf, authority = "chiffrement-" + old.lower(), "ac-" + old.lower()
        retired += [_pem_text(pki_dir, _cert(manifest, ident)) for ident in (leaf, authority)]
        crl = crls.get(authority)
        if crl and leaf in [r["certificate"] for r in crl["revoked"]]:
            paths.append("%s/%s" % (pki_dir, crl["pem"]))
        else:
            proven = False
    out: Dict[str, Any] = {"sne_bundle_crls": paths, "sne_retired_certificates": retired,
                           "sne_require_retired_revoked": proven and len(gens) > 1}
    if len(gens) == 2:
        out["sne_retired_generation"] = gens[1]
    return out


def simulated_rotation(manifest: Dict[str, Any], pki_dir: str, simulator: Dict[str, Any],
                       current: Any = "V5", revoked: Optional[Sequence[Any]] = None) -> Dict[str, Any]:
    """The variables of a rotation to ``current`` against the kit: the good bundle of that
    generation (a path on the controller), its pins, the retired fingerprints, the CRLs that
    prove the new generation is not revoked and the retired one is, and the asynchronous
    check over the simulator's HTTP transport."""
    gens = _generations(current, revoked)
    gen = gens[0]
    bundle = manifest.get("bundles", {}).get("good-" + gen.lower()) if isinstance(manifest, dict) else None
    if not bundle:
        raise AnsibleFilterError("the manifest has no bundle good-%s" % gen.lower())
    url = (simulator.get("http") or {}).get("url") if isinstance(simulator, dict) else None
    if not url:
        raise AnsibleFilterError("the simulator's state has no HTTP URL: is it running?")
    retired: List[str] = []
    for old in gens[1:]:
        retired += [_cert(manifest, ident + old.lower())["sha256"] for ident in ("chiffrement-", "ac-")]
    return dict(_revocation_vars(manifest, pki_dir, gens), **{
        "sne_generation": gen,
        "sne_bundle_src": "%s/%s" % (pki_dir, bundle["file"]),
        "sne_bundle_checksum": "sha256:" + bundle["sha256"],
        "sne_certificate_sha256": _cert(manifest, "chiffrement-" + gen.lower())["sha256"],
        "sne_authority_sha256": [_cert(manifest, "ac-" + gen.lower())["sha256"]],
        "sne_retired_sha256": retired,
        "sne_async_check_enabled": True,
        "sne_guichet_async_transport": "http",
        "sne_guichet_async_http": {"url": url},
    })


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {"simulator_config": simulator_config, "simulated_rotation": simulated_rotation}
