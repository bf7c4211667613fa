# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PKCS#12 (PFX) reading in the standard library: outer structure, MAC, bags.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library, plus ``cryptography`` when present.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Dict, List, Optional, Set, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.cryptography_dep import cryptography_problem
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    CORRUPT,
    UNKNOWN_FORMAT,
    UNSUPPORTED,
    StoreError,
)

try:  # optional fast path
    from cryptography.hazmat.primitives import padding as _padding
    from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher
    from cryptography.hazmat.primitives.ciphers import algorithms as _algorithms
    from cryptography.hazmat.primitives.ciphers import modes as _modes
    from cryptography.hazmat.primitives.serialization import Encoding as _Encoding  # noqa: F401
    from cryptography.hazmat.primitives.serialization import pkcs12 as _pkcs12  # noqa: F401

    HAS_CRYPTOGRAPHY = cryptography_problem() is None
except ImportError:  # pragma: no cover - depends on the target
    HAS_CRYPTOGRAPHY = False

TOOL_MISSING_MESSAGE = "keytool not found on the host; install a JRE or give keytool's path"

# OIDs (dotted text)
OID_DATA = "1.2.840.113549.1.7.1"
OID_ENCRYPTED_DATA = "1.2.840.113549.1.7.6"
OID_KEY_BAG = "1.2.840.113549.1.12.10.1.1"
OID_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
OID_CERT_BAG = "1.2.840.113549.1.12.10.1.3"
OID_SECRET_BAG = "1.2.840.113549.1.12.10.1.5"
OID_X509_CERT = "1.2.840.113549.1.9.22.1"
OID_FRIENDLY_NAME = "1.2.840.113549.1.9.20"
OID_ORACLE_TRUSTED_KEY_USAGE = "2.16.840.1.113894.746875.1.1"
OID_PBES2 = "1.2.840.113549.1.5.13"
OID_PBKDF2 = "1.2.840.113549.1.5.12"

_HASHES = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
_PRFS = {
    "1.2.840.113549.2.7": "sha1",
    "1.2.840.113549.2.8": "sha224",
    "1.2.840.113549.2.9": "sha256",
    "1.2.840.113549.2.10": "sha384",
    "1.2.840.113549.2.11": "sha512",
}
_AES_CBC = {
    "2.16.840.1.101.3.4.1.2": 16,
    "2.16.840.1.101.3.4.1.22": 24,
    "2.16.840.1.101.3.4.1.42": 32,
}
# Beyond this the MAC is not recomputed in Python (left to keytool / cryptography).
_MAX_MAC_ITERATIONS = 2000000
# Same protection as the JDK 17 defaults (keystore.pkcs12.* security properties).
_KDF_ROUNDS = 10000


# --------------------------------------------------------------------------------------
# Minimal DER/BER reader (stdlib)
# --------------------------------------------------------------------------------------

class _Truncated(Exception):
    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


class _Garbled(Exception):
    def __init__(self, offset: int, what: str) -> None:
        super().__init__(what)
        self.offset = offset
        self.what = what


class _Tlv:
    """One element: tag byte, where it starts, where its content starts and ends."""

    __slots__ = ("tag", "start", "cstart", "cend", "end", "data")

    def __init__(self, data: bytes, tag: int, start: int, cstart: int, cend: int, end: int) -> None:
        self.data = data
        self.tag = tag
        self.start = start
        self.cstart = cstart
        self.cend = cend
        self.end = end

    @property
    def content(self) -> bytes:
        return self.data[self.cstart:self.cend]

    @property
    def encoded(self) -> bytes:
        return self.data[self.start:self.end]

    def children(self) -> List[_Tlv]:
        out = []
        pos = self.cstart
        while pos < self.cend:
            child = _read_tlv(self.data, pos, self.cend)
            out.append(child)
            pos = child.end
        return out

    def expect(self, tag: int, what: str) -> _Tlv:
        if self.tag != tag:
            raise _Garbled(self.start, "%s: tag 0x%02x where 0x%02x was expected" % (what, self.tag, tag))
        return self


def _header(data: bytes, pos: int, end: int) -> Tuple[int, int, Optional[int]]:
    """(tag, content start, content length or None for indefinite) of the element at pos."""
    start = pos
    if pos + 2 > end:
        raise _Truncated(pos)
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise _Garbled(start, "high tag numbers are not used in PKCS#12")
    first = data[pos + 1]
    pos += 2
    if first == 0x80:
        if not tag & 0x20:
            raise _Garbled(start, "indefinite length on a primitive element")
        return tag, pos, None
    if first < 0x80:
        return tag, pos, first
    count = first & 0x7F
    if count > 4:
        raise _Garbled(start, "length field of %d bytes" % count)
    if pos + count > end:
        raise _Truncated(pos)
    return tag, pos + count, int.from_bytes(data[pos:pos + count], "big")


def _read_tlv(data: bytes, pos: int, end: int, depth: int = 0) -> _Tlv:
    start = pos
    tag, cstart, length = _header(data, pos, end)
    if length is None:  # BER indefinite length: children up to an end-of-contents marker
        if depth > 32:
            raise _Garbled(start, "nested too deeply")
        pos = cstart
        while True:
            if pos + 2 > end:
                raise _Truncated(pos)
            if data[pos] == 0 and data[pos + 1] == 0:
                return _Tlv(data, tag, start, cstart, pos, pos + 2)
            pos = _read_tlv(data, pos, end, depth + 1).end
    if cstart + length > end:
        raise _Truncated(start)
    return _Tlv(data, tag, start, cstart, cstart + length, cstart + length)


def _oid(tlv: _Tlv) -> str:
    tlv.expect(0x06, "object identifier")
    body = tlv.content
    if not body:
        raise _Garbled(tlv.start, "empty object identifier")
    values = []
    acc = 0
    for byte in body:
        acc = (acc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            values.append(acc)
            acc = 0
    first = values[0]
    head = [0, first] if first < 40 else ([1, first - 40] if first < 80 else [2, first - 80])
    return ".".join(str(v) for v in head + values[1:])


def _int(tlv: _Tlv) -> int:
    tlv.expect(0x02, "integer")
    return int.from_bytes(tlv.content, "big", signed=True)


def _octets(tlv: _Tlv, depth: int = 0) -> bytes:
    """Content of an OCTET STRING (or [0] IMPLICIT one), primitive or constructed."""
    if tlv.tag & 0x20:
        if depth > 32:  # BER segments nest one or two levels; a crafted file, thousands
            raise _Garbled(tlv.start, "nested too deeply")
        return b"".join(_octets(child, depth + 1) for child in tlv.children())
    return tlv.content


def _explicit0(tlv: _Tlv) -> _Tlv:
    tlv.expect(0xA0, "[0] EXPLICIT")
    kids = tlv.children()
    if len(kids) != 1:
        raise _Garbled(tlv.start, "[0] EXPLICIT must hold one element")
    return kids[0]


# --------------------------------------------------------------------------------------
# PKCS#12 outline: structure, bags in clear, encrypted parts, MAC
# --------------------------------------------------------------------------------------

class SafeBag:
    """One PKCS#12 SafeBag: its type, value and attributes."""

    def __init__(self, oid: str, value: _Tlv, attributes: Dict[str, List[_Tlv]]) -> None:
        self.oid = oid
        self.value = value
        self.attributes = attributes

    @property
    def friendly_name(self) -> Optional[str]:
        values = self.attributes.get(OID_FRIENDLY_NAME)
        if not values or values[0].tag != 0x1E:  # BMPString
            return None
        try:
            return values[0].content.decode("utf-16-be", "surrogatepass")
        except UnicodeDecodeError:
            return None

    @property
    def trusted(self) -> bool:
        return OID_ORACLE_TRUSTED_KEY_USAGE in self.attributes

    @property
    def cert_der(self) -> Optional[bytes]:
        if self.oid != OID_CERT_BAG:
            return None
        kids = self.value.expect(0x30, "CertBag").children()
        if len(kids) != 2 or _oid(kids[0]) != OID_X509_CERT:
            return None
        return _octets(_explicit0(kids[1]).expect(0x04, "certValue"))


def _safe_contents(data: bytes) -> List[SafeBag]:
    top = _read_tlv(data, 0, len(data)).expect(0x30, "SafeContents")
    if top.end != len(data):
        raise _Garbled(top.end, "bytes after SafeContents")
    bags = []
    for bag in top.children():
        kids = bag.expect(0x30, "SafeBag").children()
        if len(kids) not in (2, 3):
            raise _Garbled(bag.start, "SafeBag with %d fields" % len(kids))
        attributes: Dict[str, List[_Tlv]] = {}
        if len(kids) == 3:
            for attr in kids[2].expect(0x31, "bagAttributes").children():
                parts = attr.expect(0x30, "Attribute").children()
                if len(parts) != 2:
                    raise _Garbled(attr.start, "Attribute with %d fields" % len(parts))
                attributes[_oid(parts[0])] = parts[1].expect(0x31, "attrValues").children()
        bags.append(SafeBag(_oid(kids[0]), _explicit0(kids[1]), attributes))
    return bags


class Part:
    """One ContentInfo of the AuthenticatedSafe."""

    def __init__(self, kind: str, bags: Optional[List[SafeBag]] = None,
                 algorithm: Optional[_Tlv] = None, ciphertext: bytes = b"") -> None:
        self.kind = kind  # "data", "encrypted" or the content type OID
        self.bags = bags or []
        self.algorithm = algorithm
        self.ciphertext = ciphertext


class Outline:
    """What the stdlib can see of a PKCS#12 file without decrypting anything."""

    def __init__(self, parts: List[Part], auth_safe: bytes,
                 mac: Optional[Tuple[str, bytes, bytes, int]]) -> None:
        self.parts = parts
        self.auth_safe = auth_safe
        self.mac = mac  # (digest OID, digest, salt, iterations)

    def clear_bag_types(self) -> Set[str]:
        return set(bag.oid for part in self.parts if part.kind == "data" for bag in part.bags)


def _byte_at(data: bytes, pos: int, value: int, what: str) -> None:
    """The byte at ``pos`` is ``value``: _Truncated if the data ends before it, else _Garbled."""
    if pos >= len(data):
        raise _Truncated(pos)
    if data[pos] != value:
        raise _Garbled(pos, what)


def _sniff_pfx(data: bytes) -> None:
    """Is it PKCS#12 at all? ``30 len 02 01 03 30 len 06``: SEQUENCE { INTEGER 3,
    ContentInfo SEQUENCE { OID ... } } at the start.

    A prefix of that header is a truncated PFX (_Truncated), a byte present that does not
    fit is something else (_Garbled). Every byte is tested before the next one is needed, so
    where the data ends never decides which: a slice past the end is empty, not another byte.
    """
    end = len(data)
    _byte_at(data, 0, 0x30, "no PFX SEQUENCE")
    _tag, pos, _length = _header(data, 0, end)
    _byte_at(data, pos, 0x02, "no PFX version")
    _byte_at(data, pos + 1, 0x01, "PFX version is not 3")  # INTEGER 3 is 02 01 03 (BER too)
    _byte_at(data, pos + 2, 0x03, "PFX version is not 3")
    _byte_at(data, pos + 3, 0x30, "no authSafe ContentInfo")
    _tag, pos, _length = _header(data, pos + 3, end)
    _byte_at(data, pos, 0x06, "no authSafe content type")


def outline(data: bytes) -> Outline:
    """Check the outer PKCS#12 structure; StoreError UNKNOWN_FORMAT or CORRUPT."""
    if not data:
        raise StoreError(CORRUPT, "keystore file is empty")
    if data[:4] in (b"\xfe\xed\xfe\xed", b"\xce\xce\xce\xce"):
        raise StoreError(UNKNOWN_FORMAT, "not a PKCS#12 keystore: this is a JKS/JCEKS keystore "
                         "(declare type jks)")
    if data[:1] != b"\x30":
        hint = " (it is a PEM text file)" if data.lstrip()[:11] == b"-----BEGIN " else ""
        raise StoreError(UNKNOWN_FORMAT, "not a PKCS#12 keystore%s" % hint)
    try:
        _sniff_pfx(data)
    except _Truncated:
        raise StoreError(CORRUPT, "keystore truncated: only %d bytes" % len(data))
    except _Garbled:
        raise StoreError(UNKNOWN_FORMAT, "not a PKCS#12 keystore (DER, but not a PFX structure)")
    try:
        pfx = _read_tlv(data, 0, len(data)).expect(0x30, "PFX")
        if pfx.end != len(data):
            raise StoreError(CORRUPT, "keystore garbled: %d unexpected bytes after the PKCS#12 "
                             "structure (at byte %d)" % (len(data) - pfx.end, pfx.end))
        kids = pfx.children()
        if len(kids) not in (2, 3):
            raise _Garbled(pfx.start, "PFX with %d fields" % len(kids))
        auth_info = kids[1].expect(0x30, "authSafe").children()
        if _oid(auth_info[0]) != OID_DATA:
            raise StoreError(UNSUPPORTED, "PKCS#12 with public-key integrity mode is not supported")
        auth_safe = _octets(_explicit0(auth_info[1]))
        parts = []
        safe = _read_tlv(auth_safe, 0, len(auth_safe)).expect(0x30, "AuthenticatedSafe")
        for info in safe.children():
            fields = info.expect(0x30, "ContentInfo").children()
            kind = _oid(fields[0])
            if kind == OID_DATA:
                parts.append(Part("data", bags=_safe_contents(_octets(_explicit0(fields[1])))))
            elif kind == OID_ENCRYPTED_DATA:
                encrypted = _explicit0(fields[1]).expect(0x30, "EncryptedData").children()
                eci = encrypted[1].expect(0x30, "EncryptedContentInfo").children()
                if len(eci) < 3 or eci[2].tag not in (0x80, 0xA0):
                    raise _Garbled(encrypted[1].start, "no encryptedContent")
                parts.append(Part("encrypted", algorithm=eci[1].expect(0x30, "algorithm"),
                                  ciphertext=_octets(eci[2])))
            else:
                parts.append(Part(kind))
        mac = None
        if len(kids) == 3:
            mac_fields = kids[2].expect(0x30, "MacData").children()
            digest_info = mac_fields[0].expect(0x30, "DigestInfo").children()
            algorithm = digest_info[0].expect(0x30, "AlgorithmIdentifier").children()
            iterations = _int(mac_fields[2]) if len(mac_fields) > 2 else 1
            mac = (_oid(algorithm[0]), _octets(digest_info[1].expect(0x04, "digest")),
                   _octets(mac_fields[1].expect(0x04, "macSalt")), iterations)
    except _Truncated as exc:
        raise StoreError(CORRUPT, "keystore truncated or garbled at byte %d: an element runs past "
                         "the end of the file" % exc.offset)
    except (_Garbled, IndexError) as exc:
        offset = exc.offset if isinstance(exc, _Garbled) else -1
        raise StoreError(CORRUPT, "keystore garbled at byte %d: %s" % (offset, exc))
    return Outline(parts, auth_safe, mac)


def _pkcs12_kdf(hash_name: str, password: bytes, salt: bytes, purpose: int, iterations: int,
                size: int) -> bytes:
    """RFC 7292 appendix B.2 key derivation (used for the MAC key)."""
    u = hashlib.new(hash_name).digest_size
    v = hashlib.new(hash_name).block_size

    def fill(chunk: bytes) -> bytes:
        if not chunk:
            return b""
        total = v * ((len(chunk) + v - 1) // v)
        return (chunk * (total // len(chunk) + 1))[:total]

    d = bytes([purpose]) * v
    i = bytearray(fill(salt) + fill(password))
    out = b""
    while len(out) < size:
        a = hashlib.new(hash_name, d + bytes(i)).digest()
        for _n in range(iterations - 1):
            a = hashlib.new(hash_name, a).digest()
        out += a
        b = int.from_bytes((a * (v // u + 1))[:v], "big")
        for j in range(0, len(i), v):
            block = (int.from_bytes(i[j:j + v], "big") + b + 1) % (1 << (8 * v))
            i[j:j + v] = block.to_bytes(v, "big")
    return out[:size]


def mac_matches(info: Outline, password: str) -> Optional[bool]:
    """True/False when the password-based MAC can be checked here, None otherwise."""
    if info.mac is None:
        return None
    oid, digest, salt, iterations = info.mac
    name = _HASHES.get(oid)
    if name is None or not 1 <= iterations <= _MAX_MAC_ITERATIONS:
        return None
    encoded = password.encode("utf-16-be", "surrogatepass")
    # Java derives from no bytes at all for an empty password, OpenSSL from a bare
    # terminator: accept both.
    candidates = [encoded + b"\0\0"] if encoded else [b"", b"\0\0"]
    for candidate in candidates:
        key = _pkcs12_kdf(name, candidate, salt, 3, iterations, hashlib.new(name).digest_size)
        if hmac.compare_digest(hmac.new(key, info.auth_safe, name).digest(), digest):
            return True
    return False


def decrypt_part(part: Part, password: str) -> Optional[List[SafeBag]]:
    """Bags of a PBES2/AES-CBC encrypted part; None when this cannot be done here."""
    if not HAS_CRYPTOGRAPHY or part.algorithm is None:
        return None
    try:
        alg = part.algorithm.children()
        if _oid(alg[0]) != OID_PBES2:
            return None
        kdf, scheme = alg[1].expect(0x30, "PBES2-params").children()
        kdf_fields = kdf.children()
        if _oid(kdf_fields[0]) != OID_PBKDF2:
            return None
        params = kdf_fields[1].children()
        salt = _octets(params[0].expect(0x04, "salt"))
        rounds = _int(params[1])
        prf = "sha1"
        key_size = None
        for extra in params[2:]:
            if extra.tag == 0x02:
                key_size = _int(extra)
            elif extra.tag == 0x30:
                prf_name = _PRFS.get(_oid(extra.children()[0]))
                if prf_name is None:
                    return None
                prf = prf_name
        scheme_fields = scheme.children()
        size = _AES_CBC.get(_oid(scheme_fields[0]))
        if size is None or (key_size is not None and key_size != size) or rounds > 10000000:
            return None
        iv = _octets(scheme_fields[1].expect(0x04, "iv"))
        key = hashlib.pbkdf2_hmac(prf, password.encode("utf-8"), salt, rounds, size)
        decryptor = _Cipher(_algorithms.AES(key), _modes.CBC(iv)).decryptor()
        padded = decryptor.update(part.ciphertext) + decryptor.finalize()
        unpadder = _padding.PKCS7(128).unpadder()
        return _safe_contents(unpadder.update(padded) + unpadder.finalize())
    except (_Truncated, _Garbled, ValueError, IndexError):
        return None




def certificate_bags(bags: List[Any]) -> List[Tuple[Optional[str], bytes]]:
    """(friendlyName, DER) of every readable certificate bag; damaged bags are skipped."""
    out: List[Tuple[Optional[str], bytes]] = []
    for bag in bags:
        if bag.oid != OID_CERT_BAG:
            continue
        try:
            der = bag.cert_der
        except (_Truncated, _Garbled, IndexError):
            continue
        if der is not None:
            out.append((bag.friendly_name, der))
    return out
