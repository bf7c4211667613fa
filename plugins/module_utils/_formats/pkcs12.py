# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PKCS#12 (PFX) reading in the standard library: outer structure, MAC, bags.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library, plus ``cryptography`` when present.

The structure is read with ``_asn1`` (BER: PKCS#12 files may use indefinite lengths and
constructed OCTET STRINGs). :func:`outline` tells a truncated file (``corrupt``) from one
that is not PKCS#12 at all (``unknown_format``) byte by byte.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._asn1 import (
    INTEGER,
    OCTET_STRING,
    SEQUENCE,
    SET,
    Node,
    context,
    read,
    read_header,
    read_one,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.cryptography_dep import cryptography_problem
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    CORRUPT,
    UNKNOWN_FORMAT,
    UNSUPPORTED,
    Garbled,
    Malformed,
    StoreError,
    Truncated,
)
from ansible_collections.sne.guichet.plugins.module_utils._oids import (
    AES_CBC_KEY_SIZES,
    HASHES,
    HMAC_PRFS,
    OID_CERT_BAG,
    OID_DATA,
    OID_ENCRYPTED_DATA,
    OID_FRIENDLY_NAME,
    OID_ORACLE_TRUSTED_KEY_USAGE,
    OID_PBES2,
    OID_PBKDF2,
    OID_SHROUDED_KEY_BAG,
    OID_X509_CERT,
)

# The optional fast path. Only the top package is imported here: cryptography's submodules
# are imported where they are used (a fifth of a second of imports that every keystores, scan
# and retire run used to pay on every host, PKCS#12 or not).
HAS_CRYPTOGRAPHY = cryptography_problem() is None


# Beyond this the MAC is not recomputed in Python (left to keytool / cryptography).
_MAX_MAC_ITERATIONS = 2000000
# Key-derivation rounds a file may ask for in all (MAC, encrypted parts, shrouded keys), for
# each password tried: JDK and OpenSSL files ask for 2,048 to 10,000 each; a crafted file
# asking for billions would keep every reader (here, cryptography, keytool) busy for hours.
MAX_KDF_ROUNDS = 2000000
# Same protection as the JDK 17 defaults (keystore.pkcs12.* security properties).
_KDF_ROUNDS = 10000


# --------------------------------------------------------------------------------------
# PKCS#12 outline: structure, bags in clear, encrypted parts, MAC
# --------------------------------------------------------------------------------------

class SafeBag(NamedTuple):
    """One PKCS#12 SafeBag: its type, value and attributes (OID -> values)."""

    oid: str
    value: Node
    attributes: Dict[str, List[Node]]

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
        kids = self.value.expect(SEQUENCE, "CertBag").children("CertBag")
        if len(kids) != 2 or kids[0].oid("certId") != OID_X509_CERT:
            return None
        return kids[1].explicit(0, "certValue").expect(OCTET_STRING, "certValue").octets()


def _safe_contents(data: bytes) -> List[SafeBag]:
    bags = []
    for bag in read_one(data, "SafeContents", contained=True).expect(SEQUENCE, "SafeContents").children():
        kids = bag.expect(SEQUENCE, "SafeBag").children("SafeBag")
        if len(kids) not in (2, 3):
            raise Garbled(bag.start, "SafeBag with %d fields" % len(kids))
        attributes: Dict[str, List[Node]] = {}
        for attr in kids[2].expect(SET, "bagAttributes").children() if len(kids) == 3 else []:
            parts = attr.expect(SEQUENCE, "Attribute").children("Attribute")
            if len(parts) != 2:
                raise Garbled(attr.start, "Attribute with %d fields" % len(parts))
            attributes[parts[0].oid("attrId")] = parts[1].expect(SET, "attrValues").children()
        bags.append(SafeBag(kids[0].oid("bagId"), kids[1].explicit(0, "bagValue"), attributes))
    return bags


class Part(NamedTuple):
    """One ContentInfo of the AuthenticatedSafe: ``kind`` "data", "encrypted" or the
    content type OID; the bags of a data part; algorithm and ciphertext of an encrypted one."""

    kind: str
    bags: Sequence[SafeBag] = ()
    algorithm: Optional[Node] = None
    ciphertext: bytes = b""


class Outline(NamedTuple):
    """What the stdlib can see of a PKCS#12 file without decrypting anything."""

    parts: List[Part]
    auth_safe: bytes
    mac: Optional[Tuple[str, bytes, bytes, int]]  # (digest OID, digest, salt, iterations)

    def clear_bag_types(self) -> Set[str]:
        return set(bag.oid for part in self.parts if part.kind == "data" for bag in part.bags)


def _byte_at(data: bytes, pos: int, value: int, what: str) -> None:
    """The byte at ``pos`` is ``value``: Truncated if the data ends before it, else Garbled."""
    if pos >= len(data):
        raise Truncated(pos, what)
    if data[pos] != value:
        raise Garbled(pos, what)


def _sniff_pfx(data: bytes) -> None:
    """Is it PKCS#12 at all? ``30 len 02 01 03 30 len 06``: SEQUENCE { INTEGER 3,
    ContentInfo SEQUENCE { OID ... } } at the start.

    A prefix of that header is a truncated PFX (Truncated), a byte present that does not
    fit is something else (Garbled). Every byte is tested before the next one is needed, so
    where the data ends never decides which: a slice past the end is empty, not another byte.
    """
    _byte_at(data, 0, SEQUENCE, "no PFX SEQUENCE")
    _tag, pos, _length = read_header(data, 0)
    _byte_at(data, pos, INTEGER, "no PFX version")
    _byte_at(data, pos + 1, 0x01, "PFX version is not 3")  # INTEGER 3 is 02 01 03 (BER too)
    _byte_at(data, pos + 2, 0x03, "PFX version is not 3")
    _byte_at(data, pos + 3, SEQUENCE, "no authSafe ContentInfo")
    _tag, pos, _length = read_header(data, pos + 3)
    _byte_at(data, pos, 0x06, "no authSafe content type")


def _part(info: Node) -> Part:
    fields = info.expect(SEQUENCE, "ContentInfo").children("ContentInfo")
    kind = fields[0].oid("contentType")
    if kind == OID_DATA:
        return Part("data", bags=_safe_contents(fields[1].explicit(0, "content").octets()))
    if kind != OID_ENCRYPTED_DATA:
        return Part(kind)
    encrypted = fields[1].explicit(0, "content").expect(SEQUENCE, "EncryptedData").children()
    eci = encrypted[1].expect(SEQUENCE, "EncryptedContentInfo").children("EncryptedContentInfo")
    if len(eci) < 3 or eci[2].tag not in (context(0, False), context(0)):
        raise Garbled(encrypted[1].start, "no encryptedContent")
    return Part("encrypted", algorithm=eci[1].expect(SEQUENCE, "algorithm"), ciphertext=eci[2].octets())


def _mac(mac_data: Node) -> Tuple[str, bytes, bytes, int]:
    fields = mac_data.expect(SEQUENCE, "MacData").children("MacData")
    digest_info = fields[0].expect(SEQUENCE, "DigestInfo").children("DigestInfo")
    algorithm = digest_info[0].expect(SEQUENCE, "AlgorithmIdentifier").children()
    iterations = fields[2].integer("iterations") if len(fields) > 2 else 1
    return (algorithm[0].oid("digestAlgorithm"), digest_info[1].expect(OCTET_STRING, "digest").octets(),
            fields[1].expect(OCTET_STRING, "macSalt").octets(), iterations)


def outline(data: bytes) -> Outline:
    """Check the outer PKCS#12 structure; StoreError UNKNOWN_FORMAT or CORRUPT (UNSUPPORTED
    for public-key integrity, or more than MAX_KDF_ROUNDS key-derivation rounds asked for)."""
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
    except Truncated:
        raise StoreError(CORRUPT, "keystore truncated: only %d bytes" % len(data))
    except Garbled:
        raise StoreError(UNKNOWN_FORMAT, "not a PKCS#12 keystore (DER, but not a PFX structure)")
    try:
        pfx = read(data).expect(SEQUENCE, "PFX")
        if pfx.end != len(data):
            raise StoreError(CORRUPT, "keystore garbled: %d unexpected bytes after the PKCS#12 "
                             "structure (at byte %d)" % (len(data) - pfx.end, pfx.end))
        kids = pfx.children("PFX")
        if len(kids) not in (2, 3):
            raise Garbled(pfx.start, "PFX with %d fields" % len(kids))
        auth_info = kids[1].expect(SEQUENCE, "authSafe").children("authSafe")
        if auth_info[0].oid("contentType") != OID_DATA:
            raise StoreError(UNSUPPORTED, "PKCS#12 with public-key integrity mode is not supported")
        auth_safe = auth_info[1].explicit(0, "authSafe content").octets()
        safe = read_one(auth_safe, "AuthenticatedSafe", contained=True).expect(SEQUENCE, "AuthenticatedSafe")
        parts = [_part(info) for info in safe.children("AuthenticatedSafe")]
        mac = _mac(kids[2]) if len(kids) == 3 else None
        if _kdf_rounds(parts, mac) > MAX_KDF_ROUNDS:
            raise StoreError(UNSUPPORTED, "PKCS#12 file asking for more than %d key-derivation "
                             "rounds in all: not read (a crafted file?)" % MAX_KDF_ROUNDS)
    except Truncated as exc:
        raise StoreError(CORRUPT, "keystore truncated at byte %d: %s" % (exc.offset, exc.what))
    except (Garbled, IndexError) as exc:
        where, what = (exc.offset, exc.what) if isinstance(exc, Garbled) else (-1, "a field is missing")
        raise StoreError(CORRUPT, "keystore garbled at byte %d: %s" % (where, what))
    return Outline(parts, auth_safe, mac)


def _rounds(algorithm: Node) -> int:
    """The iteration count a password-based AlgorithmIdentifier asks for (PBES2 or a PKCS#12
    legacy scheme); 0 when none can be read (the reader then fails on it anyway)."""
    try:
        fields = algorithm.expect(SEQUENCE, "algorithm").children()
        params = fields[1].children()
        if fields[0].oid() == OID_PBES2:
            params = params[0].children()[1].children()  # keyDerivationFunc: PBKDF2-params
        return max(0, params[1].integer())
    except (Malformed, IndexError):
        return 0


def _kdf_rounds(parts: List[Part], mac: Optional[Tuple[str, bytes, bytes, int]]) -> int:
    """The key-derivation rounds reading the whole file with one password costs."""
    algorithms = [part.algorithm for part in parts if part.algorithm is not None]
    for bag in (bag for part in parts for bag in part.bags if bag.oid == OID_SHROUDED_KEY_BAG):
        try:  # EncryptedPrivateKeyInfo: encryptionAlgorithm, encryptedData
            algorithms.append(bag.value.children()[0])
        except (Malformed, IndexError):
            continue
    return max(0, mac[3] if mac else 0) + sum(_rounds(algorithm) for algorithm in algorithms)


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
    name = HASHES.get(oid)
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
        if alg[0].oid() != OID_PBES2:
            return None
        kdf, scheme = alg[1].expect(SEQUENCE, "PBES2-params").children()
        kdf_fields = kdf.children("keyDerivationFunc")
        if kdf_fields[0].oid() != OID_PBKDF2:
            return None
        params = kdf_fields[1].children("PBKDF2-params")
        salt = params[0].expect(OCTET_STRING, "salt").octets()
        rounds = params[1].integer("iterationCount")
        prf = "sha1"
        key_size = None
        for extra in params[2:]:
            if extra.tag == INTEGER:
                key_size = extra.integer("keyLength")
            elif extra.tag == SEQUENCE:
                prf_name = HMAC_PRFS.get(extra.children("prf")[0].oid())
                if prf_name is None:
                    return None
                prf = prf_name
        scheme_fields = scheme.children("encryptionScheme")
        size = AES_CBC_KEY_SIZES.get(scheme_fields[0].oid())
        if size is None or (key_size is not None and key_size != size) or rounds > 10000000:
            return None
        iv = scheme_fields[1].expect(OCTET_STRING, "iv").octets()
        key = hashlib.pbkdf2_hmac(prf, password.encode("utf-8"), salt, rounds, size)
        from cryptography.hazmat.primitives import padding
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        padded = decryptor.update(part.ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return _safe_contents(unpadder.update(padded) + unpadder.finalize())
    except (ValueError, IndexError):  # Truncated and Garbled are ValueErrors
        return None


def open_bags(info: Outline, password: str) -> Optional[List[SafeBag]]:
    """Every bag of the file, its encrypted parts decrypted with ``password`` (PBES2/AES, with
    cryptography); None when a part cannot be opened here (legacy encryption, no cryptography,
    wrong password): the caller then asks cryptography's own reader or keytool."""
    bags: List[SafeBag] = []
    for part in info.parts:
        opened = part.bags if part.kind == "data" else (
            decrypt_part(part, password) if part.kind == "encrypted" else None)
        if opened is None:
            return None
        bags.extend(opened)
    return bags


def certificate_bags(bags: List[Any]) -> List[Tuple[Optional[str], bytes]]:
    """(friendlyName, DER) of every readable certificate bag; damaged bags are skipped."""
    out: List[Tuple[Optional[str], bytes]] = []
    for bag in bags:
        if bag.oid != OID_CERT_BAG:
            continue
        try:
            der = bag.cert_der
        except (Malformed, IndexError):
            continue
        if der is not None:
            out.append((bag.friendly_name, der))
    return out
