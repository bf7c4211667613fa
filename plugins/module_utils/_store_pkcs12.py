# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backend for Java PKCS#12 keystores (the JDK's default keystore type since 9).

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library, plus ``cryptography`` when present.

Two ways to read and write, chosen per store and reported in ``details["backend"]``:

``cryptography``
    when cryptography (>= 45) is importable on the target and the store holds only
    Java trusted certificates (each with a friendlyName and Oracle's trusted-key-usage
    attribute, as keytool writes them), read with ``pkcs12.load_pkcs12`` and write with
    ``pkcs12.serialize_java_truststore``.
``keytool``
    otherwise (a private or secret key in the store, no cryptography, legacy
    encryption...): keytool is run on a private scratch copy, the result is written
    next to the store and listed again by keytool before it replaces the original.

Whatever the backend, a stdlib pass first checks the outer structure (not PKCS#12 →
unknown_format, truncated → corrupt) and the password-based MAC (→ wrong_password), so
that errors are the same with or without the optional tools. The password never
appears on a command line: keytool reads it from a 0600 file in a 0700 scratch folder
removed afterwards (``-storepass:file``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Set, Tuple, Union

from ansible_collections.sne.guichet.plugins.module_utils._atomic import (
    Backups,
    _os_error,
    atomic_write,
)
from ansible_collections.sne.guichet.plugins.module_utils._cryptography_dep import (
    cryptography_problem,
)
from ansible_collections.sne.guichet.plugins.module_utils._store_base import (
    CORRUPT,
    IO_ERROR,
    NOT_FOUND,
    TOOL_MISSING,
    UNKNOWN_FORMAT,
    UNSUPPORTED,
    VERIFY_FAILED,
    WRONG_PASSWORD,
    CertEntry,
    Plan,
    Store,
    StoreError,
    sha256_fingerprint,
)
from ansible_collections.sne.guichet.plugins.module_utils._store_jks import (
    as_backups,
    read_store_file,
)

try:  # optional fast path
    from cryptography import x509 as _x509
    from cryptography.hazmat.primitives import hashes as _hashes
    from cryptography.hazmat.primitives import padding as _padding
    from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher
    from cryptography.hazmat.primitives.ciphers import algorithms as _algorithms
    from cryptography.hazmat.primitives.ciphers import modes as _modes
    from cryptography.hazmat.primitives.serialization import Encoding as _Encoding
    from cryptography.hazmat.primitives.serialization import PrivateFormat as _PrivateFormat
    from cryptography.hazmat.primitives.serialization import pkcs12 as _pkcs12

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


# --------------------------------------------------------------------------------------
# keytool
# --------------------------------------------------------------------------------------

# Messages in English whatever the host locale; aliases and passwords in UTF-8.
KEYTOOL_JAVA_OPTIONS = ["-J-Duser.language=en", "-J-Duser.country=US", "-J-Dfile.encoding=UTF-8",
                        "-J-Dsun.stdout.encoding=UTF-8", "-J-Dsun.stderr.encoding=UTF-8"]
KEYTOOL_ENV = {"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
_PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)


# (lowercased alias, entry type, fingerprints of its certificates)
EntryKey = Tuple[str, str, Tuple[str, ...]]


class ListedEntry:
    """One entry of ``keytool -list -rfc``: alias, type and certificate fingerprints."""

    __slots__ = ("alias", "type", "ders")

    def __init__(self, alias: str, type: str, ders: List[bytes]) -> None:
        self.alias = alias
        self.type = type
        self.ders = ders

    def key(self) -> EntryKey:
        return (self.alias.lower(), self.type,
                tuple(sha256_fingerprint(der) for der in self.ders))

    def __repr__(self) -> str:
        return "ListedEntry(%r, %r, %d certs)" % (self.alias, self.type, len(self.ders))


def parse_keytool_list(text: str) -> List[ListedEntry]:
    """Entries of ``keytool -list -rfc`` output (English messages)."""
    import base64
    import binascii

    entries: List[ListedEntry] = []
    count = None
    blocks = re.split(r"^Alias name: ", text, flags=re.M)
    found = re.search(r"^Your keystore contains (\d+) entr", blocks[0], re.M)
    if found:
        count = int(found.group(1))
    for block in blocks[1:]:
        alias, _sep, rest = block.partition("\n")
        kind = re.search(r"^Entry type: (\S+)", rest, re.M)
        ders = []
        for pem in _PEM_RE.findall(rest):
            try:
                ders.append(base64.b64decode("".join(pem.split()), validate=True))
            except (binascii.Error, ValueError):
                raise StoreError(VERIFY_FAILED, "keytool printed an unreadable certificate")
        entries.append(ListedEntry(alias.rstrip("\r"), kind.group(1) if kind else "unknown", ders))
    if count is None or count != len(entries):
        raise StoreError(VERIFY_FAILED, "cannot understand keytool's listing")
    return entries


def keytool_error(text: str, path: str) -> StoreError:
    """Map a keytool failure message to an error code."""
    line = ""
    for candidate in text.splitlines():
        if candidate.startswith("keytool error"):
            line = candidate
            break
    if not line:
        line = (text.strip().splitlines() or ["(no message)"])[-1]
    low = line.lower()
    if "password was incorrect" in low or "tampered" in low or "final block not properly padded" in low:
        return StoreError(WRONG_PASSWORD, "store password incorrect (keytool: %s)" % line)
    if "does not exist" in low and "alias" not in low:
        return StoreError(NOT_FOUND, "keytool: %s" % line)
    if "eofexception" in low or "short read" in low or "getlength" in low or "truncated" in low:
        return StoreError(CORRUPT, "keystore %s is truncated or garbled (keytool: %s)" % (path, line))
    if "rejects tag" in low or "invalid keystore format" in low or "unrecognized keystore" in low:
        return StoreError(UNKNOWN_FORMAT, "%s is not a PKCS#12 keystore (keytool: %s)" % (path, line))
    return StoreError(IO_ERROR, "keytool failed on %s: %s" % (path, line))


class _Scratch:
    """A private 0700 folder holding the password file and working copies."""

    def __init__(self, password: str) -> None:
        if "\n" in password or "\r" in password:
            raise StoreError(UNSUPPORTED, "a store password with a line break cannot be given to "
                             "keytool safely")
        try:
            self.folder = tempfile.mkdtemp(prefix="sne-keytool-")
            self.password_file = os.path.join(self.folder, "storepass")
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(password.encode("utf-8") + b"\n")
        except OSError as exc:
            self.close()
            raise _os_error("prepare a scratch folder in", tempfile.gettempdir(), exc)

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def close(self) -> None:
        folder = getattr(self, "folder", None)
        if folder:
            shutil.rmtree(folder, ignore_errors=True)

    def __enter__(self) -> _Scratch:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --------------------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------------------

class Pkcs12Store(Store):
    """A Java PKCS#12 keystore."""

    TYPE = "pkcs12"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._original: Optional[bytes] = None
        # cryptography view: (friendlyName, der) in file order
        self._trusted: List[Tuple[str, bytes]] = []
        # keytool view
        self._listing: List[ListedEntry] = []

    # ------------------------------------------------------------ helpers
    def _password(self) -> str:
        if self.spec.password is None:
            raise StoreError(WRONG_PASSWORD, "no store password given: PKCS#12 keystores cannot be "
                             "read or written without it")
        return self.spec.password

    def _keytool(self) -> str:
        tool = self.find_tool("keytool")
        if not tool:
            raise StoreError(TOOL_MISSING, TOOL_MISSING_MESSAGE)
        return tool

    def _run(self, args: List[str], path: str) -> str:
        argv = [self._keytool()] + KEYTOOL_JAVA_OPTIONS + args
        try:
            result = self.run_command(argv, environ_update=dict(KEYTOOL_ENV))
        except TypeError:  # a runner without environ_update
            result = self.run_command(argv)
        rc, out, err = result
        out = out.decode("utf-8", "replace") if isinstance(out, bytes) else (out or "")
        err = err.decode("utf-8", "replace") if isinstance(err, bytes) else (err or "")
        if rc != 0:
            raise keytool_error(out + "\n" + err, path)
        return out

    def _list(self, scratch: _Scratch, path: str) -> List[ListedEntry]:
        out = self._run(["-list", "-rfc", "-storetype", "PKCS12", "-keystore", path,
                         "-storepass:file", scratch.password_file], path)
        return parse_keytool_list(out)

    def _check(self, data: bytes, password: str) -> Outline:
        info = outline(data)
        if mac_matches(info, password) is False:
            raise StoreError(WRONG_PASSWORD, "store password incorrect (integrity check failed)")
        return info

    def _trusted_only(self, data: bytes, info: Outline, password: str) -> Optional[List[Tuple[str, bytes]]]:
        """(friendlyName, der) of every entry if the store is a pure Java truststore that
        cryptography can rewrite losslessly; None otherwise."""
        if not HAS_CRYPTOGRAPHY or not password:
            return None
        bags: List[SafeBag] = []
        for part in info.parts:
            if part.kind == "data":
                bags.extend(part.bags)
            elif part.kind == "encrypted":
                clear = decrypt_part(part, password)
                if clear is None:
                    return None
                bags.extend(clear)
            else:
                return None
        found = []
        try:
            for bag in bags:
                der = bag.cert_der
                name = bag.friendly_name
                if der is None or name is None or not bag.trusted or bag.oid != OID_CERT_BAG:
                    return None
                found.append((name, der))
        except (_Truncated, _Garbled, IndexError):
            return None
        try:
            loaded = _pkcs12.load_pkcs12(data, password.encode("utf-8"))
        except (ValueError, TypeError):
            return None
        if loaded.key is not None or loaded.cert is not None:
            return None
        theirs = sorted((c.friendly_name or b"", c.certificate.public_bytes(_Encoding.DER))
                        for c in loaded.additional_certs)
        if theirs != sorted((n.encode("utf-8"), d) for n, d in found):
            return None
        return found

    # ------------------------------------------------------------ reading
    @property
    def listing(self) -> List[ListedEntry]:
        """Every entry read by :meth:`load` (aliases, types, certificates), keys included."""
        return list(self._listing)

    def load(self) -> List[CertEntry]:
        data = read_store_file(self.spec.path)
        self._original = data
        if data is None:
            if not self.spec.create:
                raise StoreError(NOT_FOUND, "keystore %s does not exist" % self.spec.path)
            self._trusted, self._listing = [], []
            self.details.update({"backend": "cryptography" if HAS_CRYPTOGRAPHY else "keytool",
                                 "exists": False, "private_keys": [], "secret_keys": []})
            return []
        password = self._password()
        info = self._check(data, password)
        trusted = self._trusted_only(data, info, password)
        if trusted is not None:
            self._trusted = trusted
            self._listing = [ListedEntry(n.lower(), "trustedCertEntry", [d]) for n, d in trusted]
            backend = "cryptography"
        else:
            self._keytool()
            with _Scratch(password) as scratch:
                self._listing = self._list(scratch, self.spec.path)
            self._trusted = []
            backend = "keytool"
        self.details.update({
            "backend": backend,
            "exists": True,
            "private_keys": [{"alias": e.alias, "chain": [sha256_fingerprint(d) for d in e.ders]}
                             for e in self._listing if e.type == "PrivateKeyEntry"],
            "secret_keys": [e.alias for e in self._listing if e.type == "SecretKeyEntry"],
        })
        return [CertEntry(e.alias, e.ders[0]) for e in self._listing
                if e.type == "trustedCertEntry" and e.ders]

    def plan(self, entries: List[CertEntry], present: List[CertEntry],
             absent: Set[str]) -> Plan:
        result = super().plan(entries, present, absent)
        self.details["retired_in_private_keys"] = [
            {"alias": key["alias"], "sha256": fp, "position": str(i)}
            for key in self.details.get("private_keys", [])
            for i, fp in enumerate(key["chain"]) if fp in absent]
        return result

    # ------------------------------------------------------------ writing
    def _new_aliases(self, plan: Plan) -> List[Tuple[str, CertEntry]]:
        removed = set(c.name.lower() for c in plan.remove)
        taken = set(e.alias.lower() for e in self._listing) - removed
        out = []
        for cert in plan.add:
            alias = cert.name
            n = 2
            while alias.lower() in taken:
                alias = "%s-%d" % (cert.name, n)
                n += 1
            taken.add(alias.lower())
            out.append((alias, cert))
        return out

    def _expected(self, plan: Plan, adds: List[Tuple[str, CertEntry]]) -> List[EntryKey]:
        by_alias = dict((e.alias.lower(), e) for e in self._listing)
        for cert in plan.remove:
            entry = by_alias.get(cert.name.lower())
            if entry is None or entry.type != "trustedCertEntry" or \
                    sha256_fingerprint(entry.ders[0]) != cert.sha256:
                raise StoreError(VERIFY_FAILED, "entry %r is not the trusted certificate %s that "
                                 "was planned for removal" % (cert.name, cert.sha256))
            del by_alias[cert.name.lower()]
        keys = [e.key() for e in by_alias.values()]
        keys.extend((alias.lower(), "trustedCertEntry", (cert.sha256,)) for alias, cert in adds)
        return sorted(keys)

    def apply(self, plan: Plan, backups: Union[Backups, str, None]) -> Optional[str]:
        if not plan.changed:
            return None
        password = self._password()
        current = read_store_file(self.spec.path)
        if current != self._original:
            raise StoreError(VERIFY_FAILED, "%s changed since it was read; nothing written"
                             % self.spec.path)
        adds = self._new_aliases(plan)
        expected = self._expected(plan, adds)
        holder = as_backups(backups)
        path = self.spec.path
        if self.details.get("backend") == "cryptography":
            data = self._build_with_cryptography(plan, adds, password)
            if data is not None:
                backup = holder.save(path)
                atomic_write(path, data, owner=self.spec.owner, group=self.spec.group,
                             mode=self.spec.mode,
                             verify=lambda tmp: self._verify_with_cryptography(tmp, password, expected))
                self._original = data
                return backup
        # keytool: on a copy in a private scratch folder, then written next to the store
        self._keytool()
        self.details["backend"] = "keytool"
        with _Scratch(password) as scratch:
            data = self._build_with_keytool(plan, adds, scratch)
            backup = holder.save(path)
            atomic_write(path, data, owner=self.spec.owner, group=self.spec.group,
                         mode=self.spec.mode,
                         verify=lambda tmp: self._verify_with_keytool(tmp, scratch, expected))
        self._original = data
        return backup

    # cryptography path
    def _build_with_cryptography(self, plan: Plan, adds: List[Tuple[str, CertEntry]],
                                 password: str) -> Optional[bytes]:
        if not HAS_CRYPTOGRAPHY or not password:
            return None
        removed = set(c.name.lower() for c in plan.remove)
        wanted = [(n, d) for n, d in self._trusted if n.lower() not in removed]
        wanted.extend((alias, cert.der) for alias, cert in adds)
        if not wanted:
            return None  # serialize_java_truststore cannot write an empty store
        try:
            certs = [_pkcs12.PKCS12Certificate(_x509.load_der_x509_certificate(der),
                                               name.encode("utf-8"))
                     for name, der in wanted]
            protection = (_PrivateFormat.PKCS12.encryption_builder()
                          .kdf_rounds(_KDF_ROUNDS)
                          .key_cert_algorithm(_pkcs12.PBES.PBESv2SHA256AndAES256CBC)
                          .hmac_hash(_hashes.SHA256())
                          .build(password.encode("utf-8")))
            return _pkcs12.serialize_java_truststore(certs, protection)
        except (ValueError, TypeError):
            return None

    def _verify_with_cryptography(self, tmp: str, password: str,
                                  expected: List[EntryKey]) -> None:
        try:
            with open(tmp, "rb") as handle:
                data = handle.read()
            info = self._check(data, password)
        except (OSError, StoreError) as exc:
            raise StoreError(VERIFY_FAILED, "written keystore cannot be read back: %s" % exc)
        if mac_matches(info, password) is not True:
            raise StoreError(VERIFY_FAILED, "written keystore's integrity cannot be checked")
        found = self._trusted_only(data, info, password)
        if found is None:
            raise StoreError(VERIFY_FAILED, "written keystore is not a pure Java truststore")
        got = sorted((n.lower(), "trustedCertEntry", (sha256_fingerprint(d),)) for n, d in found)
        if got != expected:
            raise StoreError(VERIFY_FAILED, "written keystore differs from the planned one")

    # keytool path
    def _build_with_keytool(self, plan: Plan, adds: List[Tuple[str, CertEntry]],
                            scratch: _Scratch) -> bytes:
        work = scratch.path("work.p12")
        if self._original is not None:
            with open(work, "wb") as handle:
                handle.write(self._original)
        common = ["-storetype", "PKCS12", "-keystore", work, "-storepass:file", scratch.password_file]
        for cert in plan.remove:
            self._run(["-delete", "-alias", cert.name] + common, self.spec.path)
        for number, (alias, cert) in enumerate(adds):
            der_file = scratch.path("add-%d.der" % number)
            with open(der_file, "wb") as handle:
                handle.write(cert.der)
            self._run(["-importcert", "-noprompt", "-trustcacerts", "-alias", alias,
                       "-file", der_file] + common, self.spec.path)
        try:
            with open(work, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise StoreError(VERIFY_FAILED, "keytool left no keystore: %s" % exc)

    def _verify_with_keytool(self, tmp: str, scratch: _Scratch,
                             expected: List[EntryKey]) -> None:
        try:
            with open(tmp, "rb") as handle:
                self._check(handle.read(), self._password())
            listing = self._list(scratch, tmp)
        except StoreError as exc:
            raise StoreError(VERIFY_FAILED, "written keystore cannot be read back: %s" % exc.reason)
        except OSError as exc:
            raise StoreError(VERIFY_FAILED, "written keystore cannot be read back: %s" % exc)
        if sorted(e.key() for e in listing) != expected:
            raise StoreError(VERIFY_FAILED, "written keystore differs from the planned one")


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
