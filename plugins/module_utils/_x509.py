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

DER is read strictly: definite, minimal lengths only, no trailing bytes inside a
structure. Malformed input raises ValueError with a message saying what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import re
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint

# Universal tags used below.
_BOOLEAN = 0x01
_INTEGER = 0x02
_BIT_STRING = 0x03
_OCTET_STRING = 0x04
_OID = 0x06
_UTF8STRING = 0x0C
_NUMERICSTRING = 0x12
_PRINTABLESTRING = 0x13
_T61STRING = 0x14
_IA5STRING = 0x16
_UTCTIME = 0x17
_GENERALIZEDTIME = 0x18
_VISIBLESTRING = 0x1A
_UNIVERSALSTRING = 0x1C
_BMPSTRING = 0x1E
_SEQUENCE = 0x30
_SET = 0x31

# Labels of PEM blocks that hold a certificate ("TRUSTED CERTIFICATE" is OpenSSL's
# certificate followed by its trust settings: the certificate is its first element).
CERTIFICATE_LABELS = ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE")

# Short names cryptography's Name.rfc4514_string() uses; every other attribute is
# printed with its dotted OID (emailAddress as 1.2.840.113549.1.9.1, serialNumber as
# 2.5.4.5), exactly like cryptography does.
_SHORT_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.6": "C",
    "2.5.4.9": "STREET",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}

_KEY_USAGE_NAMES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)

_OID_BASIC_CONSTRAINTS = "2.5.29.19"
_OID_KEY_USAGE = "2.5.29.15"


# --------------------------------------------------------------------------- DER


class _TLV:
    """One DER element: tag byte(s), content, and its whole encoding."""

    __slots__ = ("tag", "constructed", "tag_class", "content", "raw")

    def __init__(self, tag: int, constructed: bool, tag_class: int, content: bytes,
                 raw: bytes) -> None:
        self.tag = tag  # first identifier octet (class + constructed + number < 31)
        self.constructed = constructed
        self.tag_class = tag_class
        self.content = content
        self.raw = raw


def _read_tlv(data: bytes, pos: int, what: str) -> Tuple[_TLV, int]:
    """Read one element at ``pos``; return it and the position after it."""
    start = pos
    end = len(data)
    if pos >= end:
        raise ValueError("%s: unexpected end of data" % what)
    first = data[pos]
    pos += 1
    tag = first
    if first & 0x1F == 0x1F:  # high tag number form
        number = 0
        count = 0
        while True:
            if pos >= end:
                raise ValueError("%s: truncated tag" % what)
            octet = data[pos]
            pos += 1
            if count == 0 and octet == 0x80:
                raise ValueError("%s: non-minimal tag encoding" % what)
            number = (number << 7) | (octet & 0x7F)
            count += 1
            if count > 4:
                raise ValueError("%s: tag number too large" % what)
            if not octet & 0x80:
                break
        if number < 31:
            raise ValueError("%s: non-minimal tag encoding" % what)
        tag = -1  # never equal to a universal tag we look for
    if pos >= end:
        raise ValueError("%s: truncated length" % what)
    length = data[pos]
    pos += 1
    if length == 0x80:
        raise ValueError("%s: indefinite length is not DER" % what)
    if length & 0x80:
        count = length & 0x7F
        if count > 4:
            raise ValueError("%s: length field too long" % what)
        if pos + count > end:
            raise ValueError("%s: truncated length" % what)
        length = int.from_bytes(data[pos:pos + count], "big")
        if data[pos] == 0 or length < 0x80:
            raise ValueError("%s: non-minimal length encoding is not DER" % what)
        pos += count
    if pos + length > end:
        raise ValueError("%s: element of %d bytes runs past the end of its container"
                         % (what, length))
    content = data[pos:pos + length]
    pos += length
    return _TLV(tag, bool(first & 0x20), first >> 6, content, data[start:pos]), pos


def _children(tlv: _TLV, what: str) -> List[_TLV]:
    if not tlv.constructed:
        raise ValueError("%s: expected a constructed element" % what)
    items = []
    pos = 0
    while pos < len(tlv.content):
        item, pos = _read_tlv(tlv.content, pos, what)
        items.append(item)
    return items


def _expect(tlv: _TLV, tag: int, what: str) -> _TLV:
    if tlv.tag != tag:
        raise ValueError("%s: expected tag 0x%02X, found 0x%02X"
                         % (what, tag, tlv.tag & 0xFF))
    return tlv


def _single(data: bytes, what: str) -> _TLV:
    tlv, pos = _read_tlv(data, 0, what)
    if pos != len(data):
        raise ValueError("%s: %d unexpected bytes after the element" % (what, len(data) - pos))
    return tlv


def _oid(tlv: _TLV, what: str) -> str:
    _expect(tlv, _OID, what)
    body = tlv.content
    if not body:
        raise ValueError("%s: empty OID" % what)
    arcs: List[int] = []
    value = 0
    fresh = True
    for octet in body:
        if fresh and octet == 0x80:
            raise ValueError("%s: non-minimal OID arc" % what)
        value = (value << 7) | (octet & 0x7F)
        fresh = not octet & 0x80
        if fresh:
            arcs.append(value)
            value = 0
    if not fresh:
        raise ValueError("%s: truncated OID" % what)
    first = arcs[0]
    if first < 40:
        head = [0, first]
    elif first < 80:
        head = [1, first - 40]
    else:
        head = [2, first - 80]
    return ".".join(str(arc) for arc in head + arcs[1:])


def _integer_bytes(tlv: _TLV, what: str) -> bytes:
    _expect(tlv, _INTEGER, what)
    body = tlv.content
    if not body:
        raise ValueError("%s: empty INTEGER" % what)
    if len(body) > 1 and ((body[0] == 0 and not body[1] & 0x80)
                          or (body[0] == 0xFF and body[1] & 0x80)):
        raise ValueError("%s: non-minimal INTEGER encoding" % what)
    return body


def _boolean(tlv: _TLV, what: str) -> bool:
    _expect(tlv, _BOOLEAN, what)
    if len(tlv.content) != 1 or tlv.content[0] not in (0x00, 0xFF):
        raise ValueError("%s: BOOLEAN must be one byte 00 or FF in DER" % what)
    return tlv.content[0] == 0xFF


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
        return _read_tlv(der, 0, "TRUSTED CERTIFICATE block")[0].raw
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
    pos = 0
    while pos < len(data):
        tlv, pos = _read_tlv(data, pos, "certificate")
        _parse(tlv.raw)
        certs.append(tlv.raw)
    return certs


# --------------------------------------------------------------------------- names


def _string_value(tlv: _TLV) -> Any:
    """An attribute value as cryptography shows it (str, or bytes for BIT STRING)."""
    body = tlv.content
    if tlv.tag == _BIT_STRING:
        return body
    if tlv.tag == _BMPSTRING:
        return body.decode("utf-16-be", "replace")
    if tlv.tag == _UNIVERSALSTRING:
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


def _name_rdns(tlv: _TLV, what: str) -> List[List[Tuple[str, _TLV, bytes]]]:
    """RDNs of a Name: lists of (oid, value element, encoded OID element)."""
    _expect(tlv, _SEQUENCE, what)
    rdns = []
    for rdn in _children(tlv, what):
        _expect(rdn, _SET, what + " RDN")
        attributes = []
        for attribute in _children(rdn, what + " RDN"):
            _expect(attribute, _SEQUENCE, what + " attribute")
            parts = _children(attribute, what + " attribute")
            if len(parts) != 2:
                raise ValueError("%s: an attribute must be (type, value)" % what)
            oid = _oid(parts[0], what + " attribute type")
            attributes.append((oid, parts[1], parts[0].raw))
        if not attributes:
            raise ValueError("%s: empty RDN" % what)
        rdns.append(attributes)
    return rdns


def _rfc4514(rdns: List[List[Tuple[str, _TLV, bytes]]]) -> str:
    parts = []
    for rdn in reversed(rdns):
        parts.append("+".join(
            "%s=%s" % (_SHORT_NAMES.get(oid, oid), _escape_dn_value(_string_value(value)))
            for oid, value, _raw in rdn))
    return ",".join(parts)


def _der_header(tag: int, length: int) -> bytes:
    if length < 0x80:
        return bytes([tag, length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(body)]) + body


# String types OpenSSL canonicalises (ASN1_MASK_CANON), with their width in bytes
# per character (0 = UTF-8). NumericString and the other types are copied as-is.
_CANON_WIDTH = {
    _UTF8STRING: 0,
    _PRINTABLESTRING: 1,
    _T61STRING: 1,
    _IA5STRING: 1,
    _VISIBLESTRING: 1,
    _BMPSTRING: 2,
    _UNIVERSALSTRING: 4,
}
_SPACES = b" \t\n\v\f\r"  # ossl_isspace
_MULTISPACE = re.compile(rb"[ \t\n\v\f\r]+")


def _to_utf8(tag: int, body: bytes) -> bytes:
    """ASN1_STRING_to_UTF8: decode by the string type's width, encode as UTF-8."""
    width = _CANON_WIDTH[tag]
    if width == 0:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("UTF8String in a name is not valid UTF-8")
        return body
    if width == 1:
        return body.decode("latin-1").encode("utf-8")
    if len(body) % width:
        raise ValueError("%s in a name has an odd length"
                         % ("BMPString" if width == 2 else "UniversalString"))
    chars = []
    for i in range(0, len(body), width):
        code = int.from_bytes(body[i:i + width], "big")
        if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
            raise ValueError("invalid character U+%X in a name" % code)
        chars.append(chr(code))
    return "".join(chars).encode("utf-8")


def _canon_value(value: _TLV) -> bytes:
    """asn1_string_canon: the canonical encoding of one attribute value."""
    if value.tag not in _CANON_WIDTH:
        return value.raw
    text = _to_utf8(value.tag, value.content).strip(_SPACES)
    text = _MULTISPACE.sub(b" ", text)
    text = bytes(c + 32 if 0x41 <= c <= 0x5A else c for c in text)  # ASCII tolower
    return _der_header(_UTF8STRING, len(text)) + text


def _canonical_name(rdns: List[List[Tuple[str, _TLV, bytes]]]) -> bytes:
    """OpenSSL's x509_name_canon: the RDN SETs without the outer SEQUENCE header."""
    out = []
    for rdn in rdns:
        entries = []
        for _oid_text, value, raw_oid in rdn:
            body = raw_oid + _canon_value(value)
            entries.append(_der_header(_SEQUENCE, len(body)) + body)
        body = b"".join(sorted(entries))  # DER SET OF: sorted encodings
        out.append(_der_header(_SET, len(body)) + body)
    return b"".join(out)


# --------------------------------------------------------------------------- time


_UTC_TIME = re.compile(r"^(\d{10})(\d{2})?(Z|[+-]\d{4})$")
_GEN_TIME = re.compile(r"^(\d{12})(\d{2})?(?:[.,]\d+)?(Z|[+-]\d{4})?$")


def _time(tlv: _TLV, what: str) -> str:
    """A validity time as ISO 8601 UTC.

    RFC 5280 forms (YYMMDDHHMMSSZ, YYYYMMDDHHMMSSZ) and, like OpenSSL, the older ones
    still met in long-lived authorities: no seconds, a +hhmm offset, fractions.
    """
    try:
        text = tlv.content.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("%s: time is not ASCII" % what)
    if tlv.tag == _UTCTIME:
        match = _UTC_TIME.match(text)
        if not match:
            raise ValueError("%s: UTCTime %r is not YYMMDDHHMM[SS]Z" % (what, text))
        year = int(text[:2])
        year += 2000 if year < 50 else 1900
        digits = match.group(1)[2:]
    elif tlv.tag == _GENERALIZEDTIME:
        match = _GEN_TIME.match(text)
        if not match:
            raise ValueError("%s: GeneralizedTime %r is not YYYYMMDDHHMM[SS]Z" % (what, text))
        year = int(text[:4])
        digits = match.group(1)[4:]
    else:
        raise ValueError("%s: expected UTCTime or GeneralizedTime" % what)
    month, day, hour, minute = (int(digits[i:i + 2]) for i in range(0, 8, 2))
    second = int(match.group(2) or 0)
    try:
        when = datetime.datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError:
        raise ValueError("%s: %r is not a valid date" % (what, text))
    zone = match.group(3)
    if zone and zone != "Z":
        offset = datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
        try:
            when = when - offset if zone[0] == "+" else when + offset
        except OverflowError:
            raise ValueError("%s: %r is out of range" % (what, text))
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (when.year, when.month, when.day, when.hour,
                                               when.minute, when.second)


# --------------------------------------------------------------------------- certificate


class _Parsed:
    __slots__ = ("version", "serial", "issuer", "subject", "not_before", "not_after",
                 "extensions")

    def __init__(self) -> None:
        self.version = 1
        self.serial = b""
        self.issuer: List[List[Tuple[str, _TLV, bytes]]] = []
        self.subject: List[List[Tuple[str, _TLV, bytes]]] = []
        self.not_before = ""
        self.not_after = ""
        self.extensions: Dict[str, Tuple[bool, bytes]] = {}


def _parse(der: bytes) -> _Parsed:
    if not isinstance(der, (bytes, bytearray)):
        raise ValueError("certificate must be bytes")
    der = bytes(der)
    cert = _expect(_single(der, "certificate"), _SEQUENCE, "certificate")
    top = _children(cert, "certificate")
    if len(top) != 3:
        raise ValueError("certificate: expected (tbsCertificate, signatureAlgorithm, "
                         "signature), found %d elements" % len(top))
    tbs = _expect(top[0], _SEQUENCE, "tbsCertificate")
    _expect(top[1], _SEQUENCE, "signatureAlgorithm")
    _expect(top[2], _BIT_STRING, "signature")
    fields = _children(tbs, "tbsCertificate")
    parsed = _Parsed()
    index = 0
    if fields and fields[0].tag == 0xA0:
        inner = _children(fields[0], "version")
        if len(inner) != 1:
            raise ValueError("version: expected one INTEGER")
        version = int.from_bytes(_integer_bytes(inner[0], "version"), "big", signed=True)
        if version not in (1, 2):
            raise ValueError("version: unsupported value %d" % version)
        parsed.version = version + 1
        index = 1
    if len(fields) < index + 6:
        raise ValueError("tbsCertificate: too few fields")
    parsed.serial = _integer_bytes(fields[index], "serialNumber")
    _expect(fields[index + 1], _SEQUENCE, "signature algorithm")
    parsed.issuer = _name_rdns(fields[index + 2], "issuer")
    validity = _children(_expect(fields[index + 3], _SEQUENCE, "validity"), "validity")
    if len(validity) != 2:
        raise ValueError("validity: expected (notBefore, notAfter)")
    parsed.not_before = _time(validity[0], "notBefore")
    parsed.not_after = _time(validity[1], "notAfter")
    parsed.subject = _name_rdns(fields[index + 4], "subject")
    _expect(fields[index + 5], _SEQUENCE, "subjectPublicKeyInfo")
    rest = fields[index + 6:]
    for expected in (0x81, 0xA1, 0x82, 0xA2):  # issuer/subjectUniqueID, prim. or cons.
        if rest and rest[0].tag == expected:
            rest = rest[1:]
    if rest and rest[0].tag == 0xA3:
        wrapper = _children(rest[0], "extensions")
        if len(wrapper) != 1:
            raise ValueError("extensions: expected one SEQUENCE")
        for ext in _children(_expect(wrapper[0], _SEQUENCE, "extensions"), "extensions"):
            parts = _children(_expect(ext, _SEQUENCE, "extension"), "extension")
            if len(parts) not in (2, 3):
                raise ValueError("extension: expected (id, [critical], value)")
            oid = _oid(parts[0], "extension id")
            critical = _boolean(parts[1], "extension critical") if len(parts) == 3 else False
            value = _expect(parts[-1], _OCTET_STRING, "extension value").content
            if oid in parsed.extensions:
                raise ValueError("extension %s appears twice" % oid)
            parsed.extensions[oid] = (critical, value)
        rest = rest[1:]
    if rest:
        raise ValueError("tbsCertificate: unexpected field with tag 0x%02X" % (rest[0].tag & 0xFF))
    return parsed


def _basic_constraints(value: bytes) -> Tuple[bool, Optional[int]]:
    seq = _expect(_single(value, "basicConstraints"), _SEQUENCE, "basicConstraints")
    parts = _children(seq, "basicConstraints")
    is_ca = False
    path_len: Optional[int] = None
    if parts and parts[0].tag == _BOOLEAN:
        is_ca = _boolean(parts[0], "basicConstraints cA")
        parts = parts[1:]
    if parts:
        path_len = int.from_bytes(_integer_bytes(parts[0], "pathLenConstraint"), "big",
                                  signed=True)
        parts = parts[1:]
    if parts:
        raise ValueError("basicConstraints: unexpected trailing field")
    return is_ca, path_len


def _key_usage(value: bytes) -> List[str]:
    bits = _expect(_single(value, "keyUsage"), _BIT_STRING, "keyUsage").content
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
    if _OID_BASIC_CONSTRAINTS in parsed.extensions:
        is_ca, path_len = _basic_constraints(parsed.extensions[_OID_BASIC_CONSTRAINTS][1])
    key_usage: List[str] = []
    if _OID_KEY_USAGE in parsed.extensions:
        key_usage = _key_usage(parsed.extensions[_OID_KEY_USAGE][1])
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


def _raw_name(rdns: List[List[Tuple[str, _TLV, bytes]]]) -> bytes:
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
