# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Intake of the ministry's certificate bundle: read the zip safely, verify, describe.

This API is private to the sne.guichet collection; it may change without notice.
Controller-side code: needs ``cryptography`` (see ``_cryptography_dep``).

Everything here works on bytes in memory; nothing is written to disk. Every refusal
raises :class:`BundleError` whose ``check`` names the check that failed, so an operator
(and the tests) can tell *why* a bundle was refused:

``checksum`` ``zip_format`` ``zip_empty`` ``zip_path`` ``zip_limits`` ``parse``
``private_key`` ``leaf_count`` ``retired`` ``generation`` ``key_size``
``basic_constraints`` ``key_usage`` ``validity`` ``pin`` ``trust`` ``chain``, then, when
CRLs are given or required (``_bundle/crl.py``): ``fetch`` (a distribution point)
``crl_parse`` ``crl_issuer`` ``crl_signature`` ``crl_extension`` ``crl_stale``
``crl_missing`` ``revoked`` ``retired_not_revoked``

(and ``arguments`` for a policy that cannot be applied, such as a ``generation_pattern``
that is not a regular expression).

What the generation label decides: nothing about genuineness. The pins or trust anchors
authenticate a bundle and ``retired_sha256`` excludes the old generation; ``generation``
only names the generation (aliases, file names, reports), and a common name that does not
mention it is a warning (``generation_label_matches`` false). Only ``generation_pattern``,
when the operator sets one, refuses a certificate (check ``generation``).
"""

from __future__ import annotations

import datetime
import hashlib
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._bundle.crl import Subject, prove_revocation
from ansible_collections.sne.guichet.plugins.module_utils._bundle.intake import (
    MIN_RSA_BITS,
    BundleError,
    Limits,
    _pem_blocks,
    check_checksum,
    parse_members,
    read_zip,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.cryptography_dep import CRYPTOGRAPHY_VERSION
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import (
    normalize_fingerprint,
    sha256_fingerprint,
)
from ansible_collections.sne.guichet.plugins.module_utils._x509 import generation_matches

if CRYPTOGRAPHY_VERSION is not None:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509 import verification


def _der(cert: Any) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def fingerprint(cert: Any) -> str:
    return sha256_fingerprint(_der(cert))


def _basic_ca(cert: Any) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _key_usage(cert: Any) -> List[str]:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return []
    names = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign"]
    result = [n for n in names if getattr(usage, n)]
    if usage.key_agreement:
        result += [n for n in ("encipher_only", "decipher_only") if getattr(usage, n)]
    return result


def _utc(value: datetime.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(cert: Any) -> Dict[str, Any]:
    """The facts the module returns for a certificate (public data only)."""
    return {
        "pem": cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        "sha256": fingerprint(cert),
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": "%X" % cert.serial_number,
        "not_before": _utc(cert.not_valid_before_utc),
        "not_after": _utc(cert.not_valid_after_utc),
        "key_usage": _key_usage(cert),
        "is_ca": _basic_ca(cert),
    }


def _issued(issuer: Any, cert: Any) -> bool:
    """Whether ``issuer`` signed ``cert`` (name match and a good signature)."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False


def _self_signed(cert: Any) -> bool:
    return cert.issuer == cert.subject and _issued(cert, cert)


def find_leaves(certs: Sequence[Any]) -> List[Any]:
    """Encryption certificates: end of a chain (issues none of the others), not a root,
    and either not a CA or carrying keyEncipherment (so a leaf wrongly marked CA is
    still recognised, and refused later by ``basic_constraints``)."""
    leaves = []
    for cert in certs:
        if _self_signed(cert):
            continue
        if any(other is not cert and other.issuer == cert.subject and _issued(cert, other)
               for other in certs):
            continue
        if not _basic_ca(cert) or "key_encipherment" in _key_usage(cert):
            leaves.append(cert)
    return leaves


def issuer_chain(leaf: Any, pool: Sequence[Any]) -> List[Any]:
    """Authorities from ``pool`` above ``leaf``, issuing authority first.

    Matched by name, preferring a certificate whose signature checks out: a bad
    signature is reported by the chain check, with the authority still listed.
    """
    chain: List[Any] = []
    current = leaf
    while True:
        named = [c for c in pool if c is not current and c not in chain
                 and c.subject == current.issuer]
        parent = next((c for c in named if _issued(c, current)), named[0] if named else None)
        if parent is None:
            return chain
        chain.append(parent)
        if parent.issuer == parent.subject:
            return chain
        current = parent


# ----------------------------------------------------------------------- verify

class Policy:
    """What the operator configured (see the module's documentation)."""

    def __init__(self, certificate_sha256: Optional[str] = None,
                 authority_sha256: Optional[Sequence[str]] = None,
                 trust_anchors: Optional[Sequence[bytes]] = None,
                 generation: Optional[str] = None,
                 generation_pattern: Optional[str] = None,
                 retired_sha256: Optional[Sequence[str]] = None,
                 valid_at: Optional[datetime.datetime] = None,
                 min_days_remaining: int = 30,
                 checksum: Optional[str] = None,
                 limits: Optional[Limits] = None,
                 crls: Optional[Sequence[Tuple[str, bytes]]] = None,
                 crl_from_distribution_points: bool = False,
                 retired_certificates: Optional[Sequence[bytes]] = None,
                 retired_generation: Optional[str] = None,
                 require_retired_revoked: bool = False) -> None:
        self.certificate_sha256 = (normalize_fingerprint(certificate_sha256)
                                   if certificate_sha256 else None)
        self.authority_sha256 = [normalize_fingerprint(v) for v in (authority_sha256 or [])]
        self.trust_anchors = list(trust_anchors or [])
        self.generation = generation
        self.generation_pattern = generation_pattern or None
        self.generation_re: Optional[Any] = None
        if self.generation_pattern is not None:
            try:
                self.generation_re = re.compile(self.generation_pattern)
            except re.error as exc:
                raise BundleError("arguments", "generation_pattern %r is not a valid Python "
                                  "regular expression: %s" % (self.generation_pattern, exc))
        self.retired_sha256 = set(normalize_fingerprint(v) for v in (retired_sha256 or []))
        self.valid_at = valid_at or datetime.datetime.now(datetime.timezone.utc)
        if self.valid_at.tzinfo is None:
            self.valid_at = self.valid_at.replace(tzinfo=datetime.timezone.utc)
        self.min_days_remaining = min_days_remaining
        self.checksum = checksum
        self.limits = limits or Limits()
        # Revocation (crl.py): the CRLs as (source, bytes), read by the caller.
        self.crls = list(crls or [])
        self.crl_from_distribution_points = crl_from_distribution_points
        self.retired_certificates = load_certificates(retired_certificates or [], "retired_certificates")
        # The retired encryption certificates are retired; their authorities only verify their
        # CRLs (a new generation may come from the same authority).
        self.retired_sha256 |= set(fingerprint(c) for c in self.retired_certificates if not _basic_ca(c))
        self.retired_generation = retired_generation
        self.require_retired_revoked = require_retired_revoked
        if require_retired_revoked and not [c for c in self.retired_certificates if not _basic_ca(c)]:
            raise BundleError("arguments", "require_retired_revoked needs the retired encryption "
                              "certificate in retired_certificates")

    def revocation_wanted(self) -> bool:
        return bool(self.crls or self.crl_from_distribution_points or self.require_retired_revoked)


def load_certificates(items: Sequence[bytes], option: str) -> List[Any]:
    """Certificates given as PEM (any number of blocks) or DER, or ``arguments``."""
    result: List[Any] = []
    for item in items:
        blocks = [b for label, b in _pem_blocks(item) if label == "CERTIFICATE"]
        try:
            result += ([x509.load_pem_x509_certificate(b) for b in blocks] if blocks
                       else [x509.load_der_x509_certificate(item)])
        except ValueError as exc:
            raise BundleError("arguments", "%s holds something that is not a certificate: %s" % (option, exc))
    return result


def _revocation(leaf: Any, authorities: List[Any], anchors: List[Any], policy: Policy,
                fetch: Optional[Callable[[str], bytes]]) -> List[Dict[str, Any]]:
    """The bundle's certificate not revoked, the retired ones revoked when required (crl.py)."""
    subjects = [Subject(leaf, policy.generation or "new", "current", required=True, must_be_revoked=False)]
    for cert in policy.retired_certificates:
        if not _basic_ca(cert):  # the retired authorities only verify their CRLs
            subjects.append(Subject(cert, policy.retired_generation or "retired", "retired",
                                    required=policy.require_retired_revoked,
                                    must_be_revoked=policy.require_retired_revoked))
    pool = list(authorities) + list(anchors) + [c for c in policy.retired_certificates if _basic_ca(c)]
    return prove_revocation(subjects, pool, policy.crls, policy.valid_at, fetch=fetch,
                            from_distribution_points=policy.crl_from_distribution_points)


def load_anchor_certificates(items: Sequence[bytes]) -> List[Any]:
    anchors: List[Any] = []
    for item in items:
        blocks = _pem_blocks(item)
        try:
            if blocks:
                anchors += [x509.load_pem_x509_certificate(b) for label, b in blocks
                            if label == "CERTIFICATE"]
            else:
                anchors.append(x509.load_der_x509_certificate(item))
        except ValueError as exc:
            raise BundleError("trust", "a configured trust anchor is not a certificate: %s" % exc)
    if items and not anchors:
        raise BundleError("trust", "trust_anchors holds no certificate")
    return anchors


def _verify_chain(leaf: Any, intermediates: List[Any], roots: List[Any],
                  when: datetime.datetime) -> List[Any]:
    """Path validation by cryptography; returns the chain leaf -> anchor."""
    builder = (verification.PolicyBuilder()
               .store(verification.Store(roots))
               .time(when)
               .extension_policies(ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                                   ee_policy=verification.ExtensionPolicy.permit_all()))
    verifier = builder.build_client_verifier()
    try:
        verified = verifier.verify(leaf, intermediates)
    except verification.VerificationError as exc:
        raise BundleError("chain", "the certificate %s does not chain to a trusted authority: %s"
                          % (leaf.subject.rfc4514_string(), exc))
    return list(verified.chain)


def verify_bundle(data: bytes, policy: Policy, fetch: Optional[Callable[[str], bytes]] = None
                  ) -> Dict[str, Any]:
    """Run every check on an archive; return the facts, or raise BundleError.

    ``fetch`` reads a CRL distribution point (URL -> bytes, raising FetchError)."""
    if policy.checksum:
        check_checksum(data, policy.checksum)
    members = read_zip(data, policy.limits)
    certs, documents, sources = parse_members(members)
    anchors = load_anchor_certificates(policy.trust_anchors)

    leaves = find_leaves(certs)
    if len(leaves) != 1:
        raise BundleError("leaf_count", "expected exactly one encryption certificate in the "
                          "bundle, found %d%s" % (len(leaves), "".join(
                              "\n  - %s (%s)" % (c.subject.rfc4514_string(), fingerprint(c))
                              for c in leaves)))
    leaf = leaves[0]
    authorities = issuer_chain(leaf, [c for c in certs if c is not leaf])
    extra = [c for c in certs if c is not leaf and c not in authorities]
    facts = {
        "certificate": describe(leaf),
        "authority": [describe(c) for c in authorities],
        "documents": documents,
        "members": sources,
        "archive_sha256": hashlib.sha256(data).hexdigest(),
    }
    warnings: List[str] = []
    for cert in extra:
        warnings.append("the bundle holds a certificate outside the chain, ignored: %s (%s)"
                        % (cert.subject.rfc4514_string(), fingerprint(cert)))

    for cert in [leaf] + authorities:
        if fingerprint(cert) in policy.retired_sha256:
            raise BundleError("retired", "%s (%s) is a retired generation; it must never be "
                              "deployed again" % (cert.subject.rfc4514_string(), fingerprint(cert)),
                              **facts)
    subject = leaf.subject.rfc4514_string()
    if policy.generation_re is not None and not policy.generation_re.search(subject):
        which = "is not generation %s: its subject" % policy.generation if policy.generation \
            else "has a subject that"
        raise BundleError("generation", "the encryption certificate %s %s does not match "
                          "generation_pattern %r" % (subject, which, policy.generation_pattern),
                          **facts)
    label_matches = None
    if policy.generation:
        label_matches = generation_matches(leaf.subject.rfc4514_string(), policy.generation)
        if not label_matches and policy.generation_re is None:
            warnings.append("the common name of the encryption certificate %s does not name "
                            "generation %s; accepted all the same, since pins or trust anchors "
                            "authenticate a bundle, not its label (set generation_pattern to "
                            "require a subject)" % (subject, policy.generation))
    key = leaf.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise BundleError("key_size", "the encryption certificate key is not RSA (%s)"
                          % type(key).__name__, **facts)
    if key.key_size < MIN_RSA_BITS:
        raise BundleError("key_size", "the encryption certificate has a %d-bit RSA key; at "
                          "least %d bits are required" % (key.key_size, MIN_RSA_BITS), **facts)
    if _basic_ca(leaf):
        raise BundleError("basic_constraints", "the encryption certificate %s is marked as a "
                          "certificate authority (basicConstraints CA:TRUE)"
                          % leaf.subject.rfc4514_string(), **facts)
    if "key_encipherment" not in _key_usage(leaf):
        raise BundleError("key_usage", "the encryption certificate %s lacks keyUsage "
                          "keyEncipherment (has: %s)" % (leaf.subject.rfc4514_string(),
                                                         ", ".join(_key_usage(leaf)) or "none"),
                          **facts)
    when = policy.valid_at
    for cert in [leaf] + authorities:
        if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
            raise BundleError("validity", "%s is not valid at %s (valid %s to %s)" % (
                cert.subject.rfc4514_string(), _utc(when), _utc(cert.not_valid_before_utc),
                _utc(cert.not_valid_after_utc)), **facts)

    leaf_fp = fingerprint(leaf)
    if policy.certificate_sha256 and policy.certificate_sha256 != leaf_fp:
        raise BundleError("pin", "the encryption certificate fingerprint %s differs from the "
                          "pinned certificate_sha256 %s" % (leaf_fp, policy.certificate_sha256),
                          **facts)
    pinned_authorities = [c for c in authorities if fingerprint(c) in policy.authority_sha256]
    if policy.authority_sha256 and not pinned_authorities:
        raise BundleError("pin", "no authority in the bundle matches authority_sha256 (%s); the "
                          "bundle's authorities are: %s" % (
                              ", ".join(policy.authority_sha256),
                              ", ".join("%s (%s)" % (c.subject.rfc4514_string(), fingerprint(c))
                                        for c in authorities) or "none"), **facts)
    if not anchors and not pinned_authorities:
        listing = "\n".join("  %s  %s" % (fingerprint(c), c.subject.rfc4514_string())
                            for c in [leaf] + authorities)
        hint = (" certificate_sha256 alone does not authenticate the authority that will be "
                "installed as trusted;" if policy.certificate_sha256 else "")
        raise BundleError("trust", "refusing an unauthenticated bundle:%s set authority_sha256 "
                          "(and certificate_sha256) to the fingerprints published by the "
                          "ministry, or trust_anchors to its root. Compare these SHA-256 "
                          "fingerprints out of band before pinning them:\n%s" % (hint, listing),
                          **facts)

    # Chain: to the configured anchors when given, else to the pinned authority.
    roots = anchors if anchors else pinned_authorities
    intermediates = [c for c in authorities if c not in roots]
    chain = _verify_chain(leaf, intermediates, roots, when)
    if anchors and policy.authority_sha256:
        chained = set(fingerprint(c) for c in chain)
        if not any(fp in chained for fp in policy.authority_sha256):
            raise BundleError("pin", "the pinned authority is not on the verified chain", **facts)
    for cert in chain[1:]:
        if fingerprint(cert) in policy.retired_sha256:
            raise BundleError("retired", "the chain goes through retired %s"
                              % cert.subject.rfc4514_string(), **facts)

    facts["revocation"] = []
    if policy.revocation_wanted():
        try:
            facts["revocation"] = _revocation(leaf, authorities, anchors, policy, fetch)
        except BundleError as exc:
            raise BundleError(exc.check, exc.msg, **dict(facts, **exc.facts)) from exc

    days_left = (leaf.not_valid_after_utc - when).days
    if days_left < policy.min_days_remaining:
        warnings.append("the encryption certificate expires in %d days (%s)"
                        % (days_left, _utc(leaf.not_valid_after_utc)))
    facts["chain"] = [c.subject.rfc4514_string() for c in chain]
    facts["chain_sha256"] = [fingerprint(c) for c in chain]
    facts["trusted_by"] = "trust_anchors" if anchors else "authority_sha256"
    facts["days_remaining"] = days_left
    facts["generation_label_matches"] = label_matches
    facts["warnings"] = warnings
    return facts
