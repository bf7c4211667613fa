# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Revocation, proven: the authorities' CRLs verified, then the certificates looked up.

This API is private to the sne.guichet collection; it may change without notice.
Controller-side code: needs ``cryptography`` (see ``_common.cryptography_dep``).

For each CRL, in this order (the first failure refuses the bundle, :class:`BundleError` with
the check named):

``crl_parse``      it is a CRL (DER or PEM, read by content);
``crl_issuer``     its issuer names the issuer of a certificate being checked (a CRL of
                   another authority is refused, never ignored);
``crl_signature``  the authority that issued that certificate signed it (keyUsage cRLSign when
                   the authority has a keyUsage) - verified before anything it says is used;
``crl_extension``  no critical extension this code does not understand, no delta CRL, no
                   partial (reasons, CA-only) or indirect CRL;
``crl_stale``      thisUpdate is past and nextUpdate not passed at ``valid_at``.

Then each certificate is looked up by serial number in every verified CRL of its issuer:
``crl_missing`` when a certificate that must be checked has none, ``revoked`` when the new
certificate is listed, ``retired_not_revoked`` when a retired one that must be revoked is not.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._bundle.intake import BundleError, _pem_blocks
from ansible_collections.sne.guichet.plugins.module_utils._common.cryptography_dep import CRYPTOGRAPHY_VERSION
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import FetchError
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint

if CRYPTOGRAPHY_VERSION is not None:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID, NameOID

    # What cryptography raises for a CRL it cannot read (as intake.py for certificates).
    _UNREADABLE = (ValueError, TypeError, UnsupportedAlgorithm, x509.DuplicateExtension)

# A CRL read from a path or a URL is cut after this many bytes (and then fails crl_parse).
MAX_CRL_SIZE = 32 * 1024 * 1024

# CRL extensions understood here (RFC 5280 5.2): any other one marked critical refuses the CRL.
_KNOWN_CRL_EXTENSIONS = ("AUTHORITY_KEY_IDENTIFIER", "ISSUER_ALTERNATIVE_NAME", "CRL_NUMBER",
                         "ISSUING_DISTRIBUTION_POINT", "FRESHEST_CRL", "AUTHORITY_INFORMATION_ACCESS")
# CRL entry extensions understood here (RFC 5280 5.3; certificateIssuer is refused: indirect CRL).
_KNOWN_ENTRY_EXTENSIONS = ("CRL_REASON", "INVALIDITY_DATE")


class Subject:
    """A certificate whose revocation is looked up, and what is required of it."""

    def __init__(self, cert: Any, generation: str, role: str, required: bool,
                 must_be_revoked: bool) -> None:
        self.cert = cert
        self.generation = generation
        self.role = role  # "current" (the bundle's certificate) or "retired"
        self.required = required  # a verified CRL of its issuer must be there
        self.must_be_revoked = must_be_revoked


def _iso(value: Optional[datetime.datetime]) -> Optional[str]:
    return value.isoformat() if value is not None else None


def _cn(name: Any) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else name.rfc4514_string()


def load_crls(source: str, data: bytes) -> List[Any]:
    """Every CRL in ``data`` (PEM blocks ``X509 CRL``, else one DER CRL), or ``crl_parse``."""
    if len(data) > MAX_CRL_SIZE:
        raise BundleError("crl_parse", "%s is larger than %d bytes" % (source, MAX_CRL_SIZE))
    blocks = [block for label, block in _pem_blocks(data) if label == "X509 CRL"]
    try:
        crls = ([x509.load_pem_x509_crl(block) for block in blocks] if blocks
                else [x509.load_der_x509_crl(data)])
        for crl in crls:  # read lazily by cryptography: a damaged field is refused here
            _read_fields(crl, ("issuer", "last_update_utc", "next_update_utc", "extensions"))
            for entry in crl:
                _read_fields(entry, ("serial_number", "revocation_date_utc", "extensions"))
    except _UNREADABLE as exc:
        raise BundleError("crl_parse", "%s is not a readable CRL (DER or PEM X509 CRL): %s" % (source, exc))
    return crls


def _read_fields(item: Any, fields: Sequence[str]) -> None:
    for field in fields:
        getattr(item, field)


def distribution_points(cert: Any) -> List[str]:
    """The HTTP(S) URLs of the certificate's cRLDistributionPoints (full names), in order."""
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    urls: List[str] = []
    for point in points:
        for general in point.full_name or []:
            if isinstance(general, x509.UniformResourceIdentifier) \
                    and re.match(r"(?i)^https?://", general.value) and general.value not in urls:
                urls.append(general.value)
    return urls


def _authority_of(cert: Any, pool: Sequence[Any]) -> Optional[Any]:
    """The certificate of ``pool`` that issued ``cert`` (name and signature), or None."""
    for candidate in pool:
        if candidate.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(candidate)
        except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
            continue
        return candidate
    return None


def _check_signature(source: str, crl: Any, authority: Any) -> None:
    try:
        usage = authority.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.crl_sign:
            raise BundleError("crl_signature", "%s is issued by %s, whose keyUsage does not allow "
                              "signing CRLs (no cRLSign)" % (source, authority.subject.rfc4514_string()))
    except x509.ExtensionNotFound:
        pass
    try:
        valid = crl.is_signature_valid(authority.public_key())
    except (TypeError, ValueError, UnsupportedAlgorithm) as exc:
        raise BundleError("crl_signature", "%s: the signature cannot be checked: %s" % (source, exc))
    if not valid:
        raise BundleError("crl_signature", "%s names %s as its issuer but is not signed by that "
                          "authority's key (SHA-256 %s)" % (
                              source, crl.issuer.rfc4514_string(),
                              sha256_fingerprint(authority.public_bytes(serialization.Encoding.DER))))


def _check_extensions(source: str, crl: Any) -> None:
    known = set(getattr(ExtensionOID, n) for n in _KNOWN_CRL_EXTENSIONS)
    for ext in crl.extensions:
        if ext.oid == ExtensionOID.DELTA_CRL_INDICATOR:
            raise BundleError("crl_extension", "%s is a delta CRL, not a complete one" % source)
        if ext.oid == ExtensionOID.ISSUING_DISTRIBUTION_POINT:
            idp = ext.value
            if idp.only_some_reasons or idp.indirect_crl or idp.only_contains_ca_certs \
                    or idp.only_contains_attribute_certs:
                raise BundleError("crl_extension", "%s covers only part of what its authority "
                                  "revokes (issuingDistributionPoint: reasons, indirect, CA or "
                                  "attribute certificates only)" % source)
        if ext.critical and ext.oid not in known:
            raise BundleError("crl_extension", "%s carries an unknown critical extension %s"
                              % (source, ext.oid.dotted_string))
    entry_known = set(getattr(CRLEntryExtensionOID, n) for n in _KNOWN_ENTRY_EXTENSIONS)
    for entry in crl:
        for ext in entry.extensions:
            if ext.oid == CRLEntryExtensionOID.CERTIFICATE_ISSUER:
                raise BundleError("crl_extension", "%s is an indirect CRL (certificateIssuer in an "
                                  "entry), which is not supported" % source)
            if ext.critical and ext.oid not in entry_known:
                raise BundleError("crl_extension", "%s: the entry of serial %X carries an unknown "
                                  "critical extension %s"
                                  % (source, entry.serial_number, ext.oid.dotted_string))


def _check_time(source: str, crl: Any, valid_at: datetime.datetime) -> None:
    this_update, next_update = crl.last_update_utc, crl.next_update_utc
    if this_update > valid_at:
        raise BundleError("crl_stale", "%s is not valid yet at %s: thisUpdate is %s"
                          % (source, _iso(valid_at), _iso(this_update)))
    if next_update is None:
        raise BundleError("crl_stale", "%s has no nextUpdate: nothing says it is still current" % source)
    if next_update <= valid_at:
        raise BundleError("crl_stale", "%s expired at %s (nextUpdate), before %s: fetch a fresh one"
                          % (source, _iso(next_update), _iso(valid_at)))


def _fetch_distribution_points(subjects: Sequence[Subject], fetch: Callable[[str], bytes]
                               ) -> List[Tuple[str, bytes]]:
    fetched: List[Tuple[str, bytes]] = []
    for subject in subjects:
        for url in distribution_points(subject.cert):
            if url in [u for u, _data in fetched]:
                continue
            try:
                fetched.append((url, fetch(url)))
            except FetchError as exc:
                raise BundleError("fetch", "cannot fetch the CRL of %s from its distribution point: %s"
                                  % (subject.cert.subject.rfc4514_string(), exc.reason))
    return fetched


def prove_revocation(subjects: Sequence[Subject], pool: Sequence[Any],
                     sources: Sequence[Tuple[str, bytes]], valid_at: datetime.datetime,
                     fetch: Optional[Callable[[str], bytes]] = None,
                     from_distribution_points: bool = False) -> List[Dict[str, Any]]:
    """Verify every CRL, then look every subject up; return one entry per subject.

    ``pool``: the certificates that may have issued the subjects (the bundle's authorities,
    the trust anchors, the retired generation's authorities); ``sources``: (name, bytes) of
    each CRL given; with ``from_distribution_points``, the CRLs named by the subjects'
    cRLDistributionPoints are fetched with ``fetch`` too (a failure refuses: ``fetch``).
    """
    inputs = list(sources)
    if from_distribution_points and fetch is not None:
        inputs += _fetch_distribution_points(subjects, fetch)
    crls: List[Tuple[str, Any]] = []
    for source, data in inputs:
        found = load_crls(source, data)
        crls += [(source if len(found) == 1 else "%s#%d" % (source, n + 1), crl)
                 for n, crl in enumerate(found)]

    issuers: List[Any] = []  # the names that a CRL may come from
    for subject in subjects:
        if subject.cert.issuer not in issuers:
            issuers.append(subject.cert.issuer)
    verified: List[Tuple[str, Any]] = []
    for source, crl in crls:
        if crl.issuer not in issuers:
            raise BundleError("crl_issuer", "%s is issued by %s; the certificates checked are issued "
                              "by %s: a CRL of another authority proves nothing about them" % (
                                  source, crl.issuer.rfc4514_string(),
                                  " and ".join(n.rfc4514_string() for n in issuers) or "nobody"))
        subject = next(s for s in subjects if s.cert.issuer == crl.issuer)
        authority = _authority_of(subject.cert, pool)
        if authority is None:
            raise BundleError("crl_signature", "%s cannot be verified: the certificate of %s, which "
                              "issued %s, is not known (give it in retired_certificates or "
                              "trust_anchors)" % (source, crl.issuer.rfc4514_string(),
                                                  subject.cert.subject.rfc4514_string()))
        _check_signature(source, crl, authority)  # before anything the CRL says is used
        _check_extensions(source, crl)
        _check_time(source, crl, valid_at)
        verified.append((source, crl))

    results: List[Dict[str, Any]] = []
    for subject in subjects:
        cert = subject.cert
        own = [(source, crl) for source, crl in verified if crl.issuer == cert.issuer]
        entry: Dict[str, Any] = {
            "generation": subject.generation,
            "role": subject.role,
            "subject": cert.subject.rfc4514_string(),
            "sha256": sha256_fingerprint(cert.public_bytes(serialization.Encoding.DER)),
            "serial": "%X" % cert.serial_number,
            "authority": _cn(cert.issuer),
            "revoked": None, "revoked_at": None, "reason": None,
            "crl": None, "crl_this_update": None, "crl_next_update": None,
        }
        if not own:
            if subject.required:
                raise BundleError("crl_missing", "no CRL of %s was given (crls%s) to check %s" % (
                    cert.issuer.rfc4514_string(),
                    " or the distribution points" if from_distribution_points else "",
                    cert.subject.rfc4514_string()), revocation=results + [entry])
            results.append(entry)
            continue
        hits = [(source, crl, crl.get_revoked_certificate_by_serial_number(cert.serial_number))
                for source, crl in own]
        listed = [hit for hit in hits if hit[2] is not None]
        if listed:
            source, crl, revoked = min(listed, key=lambda hit: hit[2].revocation_date_utc)
            try:
                reason = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
            except x509.ExtensionNotFound:
                reason = None
            entry.update(revoked=True, revoked_at=_iso(revoked.revocation_date_utc), reason=reason)
        else:
            source, crl, _none = max(hits, key=lambda hit: hit[1].last_update_utc)
            entry["revoked"] = False
        entry.update(crl=source, crl_this_update=_iso(crl.last_update_utc),
                     crl_next_update=_iso(crl.next_update_utc))
        results.append(entry)
        if entry["revoked"] and subject.role == "current":  # a retired one may be revoked, asked or not
            raise BundleError("revoked", "%s (serial %s) is revoked by the CRL of %s (%s) since %s%s: "
                              "it must not be deployed" % (
                                  entry["subject"], entry["serial"], entry["authority"], source,
                                  entry["revoked_at"], " (%s)" % reason if reason else ""),
                              revocation=results)
        if subject.must_be_revoked and not entry["revoked"]:
            raise BundleError("retired_not_revoked", "%s (serial %s) is not revoked by the CRL of %s "
                              "(%s, thisUpdate %s): the retired generation is still valid" % (
                                  entry["subject"], entry["serial"], entry["authority"], source,
                                  entry["crl_this_update"]), revocation=results)
    return results
