# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the ``sne.guichet.bundle`` module does once its arguments are parsed.

This API is private to the sne.guichet collection; it may change without notice.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import stat
from typing import Any, Dict, List, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._bundle.crl import MAX_CRL_SIZE
from ansible_collections.sne.guichet.plugins.module_utils._bundle.fetch import FetchError, is_url, read_source
from ansible_collections.sne.guichet.plugins.module_utils._bundle.intake import BundleError, Limits
from ansible_collections.sne.guichet.plugins.module_utils._bundle.policy import Policy, verify_bundle
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import StoreError
from ansible_collections.sne.guichet.plugins.module_utils._common.io import atomic_write


def parse_instant(value: str) -> datetime.datetime:
    """ISO 8601 (``Z`` or an offset; naive means UTC) or ``now``."""
    if not value or value.strip().lower() == "now":
        return datetime.datetime.now(datetime.timezone.utc)
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.astimezone(datetime.timezone.utc)


def read_anchors(items: List[str], check: str = "trust", what: str = "trust anchor") -> List[bytes]:
    """Anchors (and retired certificates) are PEM content, or paths to PEM/DER files."""
    result = []
    for item in items:
        if "-----BEGIN" in item:
            result.append(item.encode("ascii", "replace"))
            continue
        path = os.path.expanduser(item)
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block, a device never end
                raise BundleError(check, "cannot read %s %s: not a regular file" % (what, item))
            with open(path, "rb") as handle:
                result.append(handle.read(1024 * 1024))
        except OSError as exc:
            raise BundleError(check, "cannot read %s %s: %s" % (what, item, exc.strerror))
    return result


def read_crls(module: Any, items: List[str], timeout: int) -> List[Tuple[str, bytes]]:
    """(source, bytes) of each CRL: PEM content, a URL (the bundle's fetch code) or a path."""
    result = []
    for number, item in enumerate(items):
        if "-----BEGIN" in item:
            result.append(("crls[%d]" % number, item.encode("ascii", "replace")))
        else:
            result.append((item, read_source(module, item, MAX_CRL_SIZE, timeout)))
    return result


def _write_if_different(path: str, data: bytes) -> bool:
    try:
        with open(path, "rb") as handle:
            if handle.read() == data:
                return False
    except OSError:
        pass
    atomic_write(path, data, mode="0644")
    return True


def write_cache(cache_dir: str, generation: str, archive: bytes, facts: Dict[str, Any]
                ) -> Tuple[Dict[str, str], bool]:
    """Write the verified archive and PEM/DER files; names are ours, never the archive's."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    os.makedirs(cache_dir, mode=0o755, exist_ok=True)
    label = "%s-%s" % (generation or "bundle", facts["certificate"]["sha256"].replace(":", "")[:16])
    leaf = x509.load_pem_x509_certificate(facts["certificate"]["pem"].encode("ascii"))
    files = {
        "archive": (label + ".zip", archive),
        "certificate_pem": (label + ".pem", facts["certificate"]["pem"].encode("ascii")),
        "certificate_der": (label + ".cer", leaf.public_bytes(serialization.Encoding.DER)),
    }
    if facts["authority"]:
        files["authority_pem"] = (label + "-authority.pem",
                                  "".join(a["pem"] for a in facts["authority"]).encode("ascii"))
    written = {}
    changed = False
    for key, (name, data) in files.items():
        path = os.path.join(cache_dir, name)
        changed = _write_if_different(path, data) or changed
        written[key] = path
    return written, changed


def summarize(facts: Dict[str, Any]) -> Dict[str, Any]:
    """What a refusal reports: who the certificates are, not their PEM."""
    keys = ("subject", "issuer", "sha256", "serial", "not_before", "not_after")
    result: Dict[str, Any] = {}
    if "certificate" in facts:
        result["certificate"] = {k: facts["certificate"][k] for k in keys}
    if "authority" in facts:
        result["authority"] = [{k: a[k] for k in keys} for a in facts["authority"]]
    if "revocation" in facts:
        result["revocation"] = facts["revocation"]
    return result


def run_bundle(module: Any) -> None:
    params = module.params
    try:
        valid_at = parse_instant(params["valid_at"])
    except ValueError:
        module.fail_json(msg="valid_at %r is not an ISO 8601 date or 'now'" % params["valid_at"])
    if is_url(params["src"]) and params["src"].lower().startswith("https://") \
            and not params["validate_certs"]:
        module.warn("validate_certs is off: the download server is not authenticated; the "
                    "bundle is still verified by its pins or trust anchors")
    try:
        limits = Limits(max_archive_size=params["max_archive_size"],
                        max_members=params["max_members"],
                        max_member_size=params["max_member_size"],
                        max_total_size=params["max_archive_size"])
        policy = Policy(certificate_sha256=params["certificate_sha256"],
                        authority_sha256=params["authority_sha256"],
                        trust_anchors=read_anchors(params["trust_anchors"]),
                        generation=params["generation"],
                        generation_pattern=params["generation_pattern"],
                        retired_sha256=params["retired_sha256"],
                        valid_at=valid_at,
                        min_days_remaining=params["min_days_remaining"],
                        checksum=params["checksum"],
                        limits=limits,
                        crl_from_distribution_points=params["crl_from_distribution_points"],
                        retired_certificates=read_anchors(params["retired_certificates"], "arguments",
                                                          "retired certificate"),
                        retired_generation=params["retired_generation"],
                        require_retired_revoked=params["require_retired_revoked"])
    except ValueError as exc:
        module.fail_json(msg="invalid fingerprint: %s" % exc, check="arguments")
    except BundleError as exc:
        if exc.check == "arguments":
            module.fail_json(msg=exc.msg, check=exc.check)
        module.fail_json(msg="bundle refused by check '%s': %s" % (exc.check, exc.msg),
                         check=exc.check)
    try:
        data = read_source(module, params["src"], params["max_archive_size"], params["timeout"])
        policy.crls = read_crls(module, params["crls"], params["timeout"])
    except FetchError as exc:
        module.fail_json(msg=str(exc), check="fetch")

    def fetch(url: str) -> bytes:  # a CRL distribution point, with the same code as the bundle
        return read_source(module, url, MAX_CRL_SIZE, params["timeout"])

    try:
        facts = verify_bundle(data, policy, fetch=fetch)
    except BundleError as exc:
        module.fail_json(msg="bundle refused by check '%s': %s" % (exc.check, exc.msg),
                         check=exc.check, archive_sha256=hashlib.sha256(data).hexdigest(),
                         **summarize(exc.facts))
    for warning in facts["warnings"]:
        module.warn(warning)
    facts["bundle_warnings"] = facts.pop("warnings")
    files: Dict[str, str] = {}
    changed = False
    if params["cache_dir"] and not module.check_mode:
        try:
            files, changed = write_cache(params["cache_dir"], params["generation"], data, facts)
        except (OSError, StoreError) as exc:
            module.fail_json(msg="bundle verified but cannot write to cache_dir %s: %s"
                             % (params["cache_dir"], exc))
    module.exit_json(changed=changed, files=files, **facts)
