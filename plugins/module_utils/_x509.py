# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Minimal, strict reader for X.509 certificates (DER and PEM).

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

It reads what the keystore backends need to know about a certificate (fingerprint,
subject, issuer, serial, validity, CA flag, key usage) and computes OpenSSL's subject
name hash (``openssl x509 -hash``) for hashed certificate folders. It does not verify
signatures: trust decisions are taken on the controller with ``cryptography``.

DER is read with ``_asn1`` in strict mode: definite, minimal lengths only, no trailing
bytes inside a structure. Malformed input raises ValueError (``_asn1``'s Truncated and
Garbled are ValueErrors) with a message saying what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._asn1 import (
    BIT_STRING,
    BMP_STRING,
    BOOLEAN,
    OCTET_STRING,
    SEQUENCE,
    SET,
    STRING_WIDTHS,
    UNIVERSAL_STRING,
    UTF8_STRING,
    Node,
    context,
    encode,
    read,
    read_all,
    read_one,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint
from ansible_collections.sne.guichet.plugins.module_utils._oids import (
    DN_SHORT_NAMES,
    OID_BASIC_CONSTRAINTS,
    OID_KEY_USAGE,
    OID_SUBJECT_KEY_IDENTIFIER,
)

# Labels of PEM blocks that hold a certificate ("TRUSTED CERTIFICATE" is OpenSSL's
# certificate followed by its trust settings: the certificate is its first element).
CERTIFICATE_LABELS = ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE")

_KEY_USAGE_NAMES = ("digital_signature", "content_commitment", "key_encipherment",
                    "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                    "encipher_only", "decipher_only")

# An RDN attribute: (dotted OID, value element, encoded OID element).
_Attribute = Tuple[str, Node, bytes]


# --------------------------------------------------------------------------- PEM

_PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 #._/-]*)-----")
_PEM_END = re.compile(rb"-----END ([A-Z0-9 #._/-]*)-----")
_B64_CHARS = re.compile(rb"^[A-Za-z0-9+/=\s]*$")


def _pem_body(label: str, body: bytes) -> bytes:
    lines = body.splitlines()
    if lines and not lines[0].strip():
        lines = lines[1:]  # the end of the BEGIN line
    # RFC 1421 headers (Proc-Type:, DEK-Info: of legacy encrypted keys) end at a
    # blank line; skip them so such blocks can be carried along untouched.
    if lines and b":" in lines[0]:
        index = 0
        while index < len(lines) and lines[index].strip():
            index += 1
        lines = lines[index:]
    text = b"".join(line.strip() for line in lines)
    if not _B64_CHARS.match(text):
        raise ValueError("PEM block %s holds characters that are not base64" % label)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("PEM block %s is not valid base64" % label)


def pem_blocks(text: bytes) -> List[Tuple[str, bytes, int, int]]:
    """Every ``-----BEGIN X-----`` block of ``text`` as (label, DER, start, end).

    ``text[start:end]`` is the block from the first dash of BEGIN to the last dash of
    END (the line end after it is not included), so a caller can rewrite the file
    keeping every other byte. A BEGIN without its END, or an END label that differs,
    raises ValueError.
    """
    blocks: List[Tuple[str, bytes, int, int]] = []
    pos = 0
    while True:
        begin = _PEM_BEGIN.search(text, pos)
        if begin is None:
            stray = _PEM_END.search(text, pos)
            if stray is not None:
                raise ValueError("PEM END line without BEGIN at offset %d" % stray.start())
            return blocks
        stray = _PEM_END.search(text, pos, begin.start())
        if stray is not None:
            raise ValueError("PEM END line without BEGIN at offset %d" % stray.start())
        label = begin.group(1).decode("ascii")
        end = _PEM_END.search(text, begin.end())
        if end is None:
            raise ValueError("PEM block %s at offset %d has no END line"
                             % (label, begin.start()))
        if end.group(1).decode("ascii") != label:
            raise ValueError("PEM block %s at offset %d ends with END %s"
                             % (label, begin.start(), end.group(1).decode("ascii")))
        nested = _PEM_BEGIN.search(text, begin.end(), end.start())
        if nested is not None:
            raise ValueError("PEM block %s at offset %d is not closed before the next BEGIN"
                             % (label, begin.start()))
        der = _pem_body(label, text[begin.end():end.start()])
        blocks.append((label, der, begin.start(), end.end()))
        pos = end.end()


def der_to_pem(der: bytes, label: str = "CERTIFICATE") -> bytes:
    """PEM text of ``der``: 64-column base64 between BEGIN/END lines, final newline."""
    b64 = base64.b64encode(der)
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    head = ("-----BEGIN %s-----" % label).encode("ascii")
    tail = ("-----END %s-----" % label).encode("ascii")
    return b"\n".join([head] + lines + [tail]) + b"\n"


def looks_like_pem(data: bytes) -> bool:
    """True when ``data`` holds at least one ``-----BEGIN ...-----`` line."""
    return _PEM_BEGIN.search(data) is not None


def certificate_from_block(label: str, der: bytes) -> bytes:
    """The certificate DER of a certificate PEM block (drops OpenSSL trust settings)."""
    if label == "TRUSTED CERTIFICATE":
        return read(der, strict=True, what="TRUSTED CERTIFICATE block").raw
    return der


def load_certificates(data: bytes) -> List[bytes]:
    """Certificates (DER) in ``data``, which is PEM or DER whatever the file is called.

    PEM: every certificate block (other blocks are ignored). DER: one certificate or
    several concatenated. Each certificate is parsed; anything malformed raises
    ValueError.
    """
    certs: List[bytes] = []
    if looks_like_pem(data):
        for label, der, _start, _end in pem_blocks(data):
            if label in CERTIFICATE_LABELS:
                cert = certificate_from_block(label, der)
                _parse(cert)
                certs.append(cert)
        return certs
    if not data:
        raise ValueError("empty data: no certificate")
    for node in read_all(data, "certificate", strict=True):
        _parse(node.raw)
        certs.append(node.raw)
    return certs


# --------------------------------------------------------------------------- names


def _string_value(tlv: Node) -> Any:
    """An attribute value as cryptography shows it (str, or bytes for BIT STRING)."""
    body = tlv.content
    if tlv.tag == BIT_STRING:
        return body
    if tlv.tag == BMP_STRING:
        return body.decode("utf-16-be", "replace")
    if tlv.tag == UNIVERSAL_STRING:
        return body.decode("utf-32-be", "replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("latin-1")


def _escape_dn_value(value: Any) -> str:
    if not value:
        return ""
    if isinstance(value, bytes):
        return "#" + binascii.hexlify(value).decode("ascii")
    for char, escaped in (("\\", "\\\\"), ('"', '\\"'), ("+", "\\+"), (",", "\\,"),
                          (";", "\\;"), ("<", "\\<"), (">", "\\>"), ("\0", "\\00")):
        value = value.replace(char, escaped)
    if value[0] == "#" or (value[0] == " " and len(value) > 1):
        value = "\\" + value
    if value[-1] == " ":
        value = value[:-1] + "\\ "
    return value


def _name_rdns(tlv: Node, what: str) -> List[List[_Attribute]]:
    """RDNs of a Name: lists of (oid, value element, encoded OID element)."""
    rdns = []
    for rdn in tlv.expect(SEQUENCE, what).children(what):
        attributes = []
        for attribute in rdn.expect(SET, what + " RDN").children(what + " RDN"):
            parts = attribute.expect(SEQUENCE, what + " attribute").children(what + " attribute")
            if len(parts) != 2:
                raise ValueError("%s: an attribute must be (type, value)" % what)
            oid = parts[0].oid(what + " attribute type")
            attributes.append((oid, parts[1], parts[0].raw))
        if not attributes:
            raise ValueError("%s: empty RDN" % what)
        rdns.append(attributes)
    return rdns


def _rfc4514(rdns: List[List[_Attribute]]) -> str:
    parts = []
    for rdn in reversed(rdns):
        parts.append("+".join(
            "%s=%s" % (DN_SHORT_NAMES.get(oid, oid), _escape_dn_value(_string_value(value)))
            for oid, value, _raw in rdn))
    return ",".join(parts)


_SPACES = b" \t\n\v\f\r"  # ossl_isspace
_MULTISPACE = re.compile(rb"[ \t\n\v\f\r]+")


def _canon_value(value: Node) -> bytes:
    """asn1_string_canon: the canonical encoding of one attribute value."""
    if value.tag not in STRING_WIDTHS:  # ASN1_MASK_CANON: NumericString and others as-is
        return value.raw
    text = value.utf8("name").strip(_SPACES)
    text = _MULTISPACE.sub(b" ", text)
    text = bytes(c + 32 if 0x41 <= c <= 0x5A else c for c in text)  # ASCII tolower
    return encode(UTF8_STRING, text)


def _canonical_name(rdns: List[List[_Attribute]]) -> bytes:
    """OpenSSL's x509_name_canon: the RDN SETs without the outer SEQUENCE header."""
    out = []
    for rdn in rdns:
        entries = []
        for _oid_text, value, raw_oid in rdn:
            entries.append(encode(SEQUENCE, raw_oid + _canon_value(value)))
        out.append(encode(SET, b"".join(sorted(entries))))  # DER SET OF: sorted encodings
    return b"".join(out)


# --------------------------------------------------------------------------- certificate


class _Parsed(NamedTuple):
    version: int
    serial: bytes
    issuer: List[List[_Attribute]]
    subject: List[List[_Attribute]]
    not_before: str
    not_after: str
    extensions: Dict[str, Tuple[bool, bytes]]  # OID -> (critical, value)


def _extensions(wrapper: Node) -> Dict[str, Tuple[bool, bytes]]:
    inner = wrapper.children("extensions")
    if len(inner) != 1:
        raise ValueError("extensions: expected one SEQUENCE")
    extensions: Dict[str, Tuple[bool, bytes]] = {}
    for ext in inner[0].expect(SEQUENCE, "extensions").children("extensions"):
        parts = ext.expect(SEQUENCE, "extension").children("extension")
        if len(parts) not in (2, 3):
            raise ValueError("extension: expected (id, [critical], value)")
        oid = parts[0].oid("extension id")
        critical = parts[1].boolean("extension critical") if len(parts) == 3 else False
        if oid in extensions:
            raise ValueError("extension %s appears twice" % oid)
        extensions[oid] = (critical, parts[-1].expect(OCTET_STRING, "extension value").content)
    return extensions


def _parse(der: bytes) -> _Parsed:
    if not isinstance(der, (bytes, bytearray)):
        raise ValueError("certificate must be bytes")
    cert = read_one(bytes(der), "certificate", strict=True).expect(SEQUENCE, "certificate")
    top = cert.children("certificate")
    if len(top) != 3:
        raise ValueError("certificate: expected (tbsCertificate, signatureAlgorithm, "
                         "signature), found %d elements" % len(top))
    top[1].expect(SEQUENCE, "signatureAlgorithm")
    top[2].expect(BIT_STRING, "signature")
    fields = top[0].expect(SEQUENCE, "tbsCertificate").children("tbsCertificate")
    version = 1
    if fields and fields[0].tag == context(0):
        version = fields[0].explicit(0, "version").integer("version") + 1
        if version not in (2, 3):
            shown = version - 1 if abs(version) < 1 << 64 else "too large to print"  # str() limit
            raise ValueError("version: unsupported value %s" % shown)
        fields = fields[1:]
    if len(fields) < 6:
        raise ValueError("tbsCertificate: too few fields")
    fields[1].expect(SEQUENCE, "signature algorithm")
    validity = fields[3].expect(SEQUENCE, "validity").children("validity")
    if len(validity) != 2:
        raise ValueError("validity: expected (notBefore, notAfter)")
    fields[5].expect(SEQUENCE, "subjectPublicKeyInfo")
    rest = fields[6:]
    for expected in (0x81, 0xA1, 0x82, 0xA2):  # issuer/subjectUniqueID, prim. or cons.
        if rest and rest[0].tag == expected:
            rest = rest[1:]
    extensions: Dict[str, Tuple[bool, bytes]] = {}
    if rest and rest[0].tag == context(3):
        extensions = _extensions(rest[0])
        rest = rest[1:]
    if rest:
        raise ValueError("tbsCertificate: unexpected field with tag 0x%02X" % rest[0].tag)
    return _Parsed(version, fields[0].integer_bytes("serialNumber"), _name_rdns(fields[2], "issuer"),
                   _name_rdns(fields[4], "subject"), validity[0].time("notBefore"),
                   validity[1].time("notAfter"), extensions)


def _basic_constraints(value: bytes) -> Tuple[bool, Optional[int]]:
    seq = read_one(value, "basicConstraints", strict=True, contained=True)
    parts = seq.expect(SEQUENCE, "basicConstraints").children("basicConstraints")
    is_ca = False
    path_len: Optional[int] = None
    if parts and parts[0].tag == BOOLEAN:
        is_ca = parts[0].boolean("basicConstraints cA")
        parts = parts[1:]
    if parts:
        path_len = parts[0].integer("pathLenConstraint")
        parts = parts[1:]
    if parts:
        raise ValueError("basicConstraints: unexpected trailing field")
    return is_ca, path_len


def _key_usage(value: bytes) -> List[str]:
    bits = read_one(value, "keyUsage", strict=True, contained=True).expect(BIT_STRING, "keyUsage").content
    if not bits or bits[0] > 7 or (len(bits) == 1 and bits[0]):
        raise ValueError("keyUsage: malformed BIT STRING")
    names = []
    for index, name in enumerate(_KEY_USAGE_NAMES):
        octet = 1 + index // 8
        if octet < len(bits) and bits[octet] & (0x80 >> (index % 8)):
            names.append(name)
    return names


def _serial_hex(body: bytes) -> str:
    """The serial as ``openssl x509 -serial`` prints it (uppercase, 2 digits a byte)."""
    negative = bool(body[0] & 0x80)
    if negative:
        magnitude = -int.from_bytes(body, "big", signed=True)
        body = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "big")
    elif len(body) > 1 and body[0] == 0:
        body = body[1:]
    return ("-" if negative else "") + binascii.hexlify(body).decode("ascii").upper()


def cert_info(der: bytes) -> Dict[str, Any]:
    """What the backends and reports need to know about one certificate.

    Keys: sha256, subject, issuer (RFC 4514, most specific first, as cryptography's
    ``Name.rfc4514_string()``), serial (hex as ``openssl x509 -serial``), not_before,
    not_after (ISO 8601 UTC), is_ca (basicConstraints cA), key_usage (cryptography's
    attribute names; empty when the extension is absent), plus version (1-3),
    self_issued (subject equals issuer, compared as OpenSSL does) and
    subject_hash (``openssl x509 -hash``; None for a name OpenSSL cannot read).
    """
    parsed = _parse(der)
    is_ca = False
    path_len: Optional[int] = None
    if OID_BASIC_CONSTRAINTS in parsed.extensions:
        is_ca, path_len = _basic_constraints(parsed.extensions[OID_BASIC_CONSTRAINTS][1])
    key_usage: List[str] = []
    if OID_KEY_USAGE in parsed.extensions:
        key_usage = _key_usage(parsed.extensions[OID_KEY_USAGE][1])
    try:
        subject_canon: Optional[bytes] = _canonical_name(parsed.subject)
        self_issued = subject_canon == _canonical_name(parsed.issuer)
    except ValueError:
        # A name OpenSSL cannot canonicalise (e.g. a BMPString with surrogates): OpenSSL
        # cannot load such a certificate at all, so it has no hash; compare raw names.
        subject_canon = None
        self_issued = _raw_name(parsed.subject) == _raw_name(parsed.issuer)
    return {
        "sha256": sha256_fingerprint(bytes(der)),
        "subject": _rfc4514(parsed.subject),
        "issuer": _rfc4514(parsed.issuer),
        "serial": _serial_hex(parsed.serial),
        "not_before": parsed.not_before,
        "not_after": parsed.not_after,
        "is_ca": is_ca,
        "path_length": path_len,
        "key_usage": key_usage,
        "version": parsed.version,
        "self_issued": self_issued,
        "subject_hash": _hash_canon(subject_canon) if subject_canon is not None else None,
    }


def recipient_identifiers(der: bytes) -> Dict[str, Any]:
    """How a CMS message names this certificate as its recipient (RFC 5652 6.2.1).

    Keys: issuer (the issuer Name's DER, as IssuerAndSerialNumber holds it), serial (int),
    subject_key_identifiers (the subjectKeyIdentifier extension's value, then RFC 5280 4.2.1.2
    method 1 - the SHA-1 of the subjectPublicKey BIT STRING's bits - when it differs: both
    name the same key).
    """
    parsed = _parse(der)
    fields = read_one(bytes(der), "certificate", strict=True).children()[0].children("tbsCertificate")
    if fields[0].tag == context(0):
        fields = fields[1:]
    spki = fields[5].children("subjectPublicKeyInfo")
    if len(spki) != 2:
        raise ValueError("subjectPublicKeyInfo: expected (algorithm, subjectPublicKey)")
    key_bits = spki[1].expect(BIT_STRING, "subjectPublicKey").content[1:]
    identifiers: List[bytes] = []
    if OID_SUBJECT_KEY_IDENTIFIER in parsed.extensions:
        value = parsed.extensions[OID_SUBJECT_KEY_IDENTIFIER][1]
        identifiers.append(read_one(value, "subjectKeyIdentifier", strict=True, contained=True)
                           .expect(OCTET_STRING, "subjectKeyIdentifier").content)
    method_1 = hashlib.sha1(key_bits).digest()  # noqa: S324  (RFC 5280's key identifier, not security)
    if method_1 not in identifiers:
        identifiers.append(method_1)
    return {"issuer": fields[2].raw, "serial": int.from_bytes(parsed.serial, "big", signed=True),
            "subject_key_identifiers": identifiers}


def _raw_name(rdns: List[List[_Attribute]]) -> bytes:
    return b"".join(raw + value.raw for rdn in rdns for _oid_text, value, raw in rdn)


def _hash_canon(canon: bytes) -> str:
    digest = hashlib.sha1(canon).digest()  # noqa: S324  (OpenSSL's lookup hash, not security)
    return "%08x" % int.from_bytes(digest[:4], "little")


def subject_hash(der: bytes) -> str:
    """OpenSSL's X509_subject_name_hash as ``openssl x509 -hash`` prints it (8 hex)."""
    return _hash_canon(_canonical_name(_parse(der).subject))


_CN_RE = re.compile(r"(?:^|,)CN=((?:\\.|[^,\\])*)")


def common_names(subject: str) -> List[str]:
    """The CN values of an RFC 4514 subject (as ``cert_info`` or cryptography print it)."""
    return [re.sub(r"\\(.)", r"\1", value) for value in _CN_RE.findall(subject)]


def generation_matches(subject: str, generation: str) -> bool:
    """Whether the common name names ``generation``: V5 in Chiffrement_SNEV5, not in ...V50.

    The one generation-name rule: the bundle intake and the probe both ask it. Without a
    common name, the whole subject is searched."""
    text = " ".join(common_names(subject)) or subject
    return re.search(r"(?i)%s(?![0-9])" % re.escape(generation), text) is not None
