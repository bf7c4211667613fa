# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Java KeyStore (JKS, and reading/writing JCEKS) codec in pure Python.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

File layout (``sun.security.provider.JavaKeyStore``)::

    u32 magic (0xFEEDFEED JKS, 0xCECECECE JCEKS)  u32 version (1 or 2)  u32 count
    count x entry:
      u32 tag  UTF alias  u64 timestamp (ms since the epoch)
      tag 1  private key:  u32 len + protected key  u32 chain length
                           chain x ([v2: UTF cert type] u32 len + cert)
      tag 2  trusted cert: [v2: UTF cert type] u32 len + cert
      tag 3  secret key (JCEKS only): one Java-serialized SealedObject
    20 bytes SHA-1(password as UTF-16BE + b"Mighty Aphrodite" + everything above)

Every entry keeps the exact bytes it was read from (``raw``). Private and secret keys
are never decrypted nor re-encoded: they are carried over byte for byte, so that
``serialize(parse(x), password) == x`` for any well-formed file (the entry order of
the file is kept; keytool writes its hash-table order).
"""

from __future__ import annotations

import hashlib
import struct
from typing import List, Optional, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._store_base import (
    CORRUPT,
    UNKNOWN_FORMAT,
    UNSUPPORTED,
    WRONG_PASSWORD,
    StoreError,
    sha256_fingerprint,
)

JKS_MAGIC = 0xFEEDFEED
JCEKS_MAGIC = 0xCECECECE
_FORMATS = {JKS_MAGIC: "jks", JCEKS_MAGIC: "jceks"}

TAG_PRIVATE_KEY = 1
TAG_TRUSTED_CERT = 2
TAG_SECRET_KEY = 3

KIND_PRIVATE_KEY = "private_key"
KIND_TRUSTED_CERT = "trusted_cert"
KIND_SECRET_KEY = "secret_key"
_KINDS = {TAG_PRIVATE_KEY: KIND_PRIVATE_KEY, TAG_TRUSTED_CERT: KIND_TRUSTED_CERT,
          TAG_SECRET_KEY: KIND_SECRET_KEY}

_WHITENER = b"Mighty Aphrodite"
DIGEST_SIZE = 20

WRONG_PASSWORD_MESSAGE = "store password incorrect (integrity check failed)"


# --------------------------------------------------------------------------------------
# Java modified UTF-8 (DataOutputStream.writeUTF / DataInputStream.readUTF)
# --------------------------------------------------------------------------------------

def encode_modified_utf8(text: str) -> bytes:
    """Java modified UTF-8 of ``text``, without the length prefix.

    U+0000 takes two bytes (C0 80); characters outside the BMP are written as their
    UTF-16 surrogate pair, three bytes per surrogate. Lone surrogates are allowed
    (a Java String may hold them).
    """
    units = text.encode("utf-16-be", "surrogatepass")
    out = bytearray()
    for i in range(0, len(units), 2):
        c = (units[i] << 8) | units[i + 1]
        if 0x0001 <= c <= 0x007F:
            out.append(c)
        elif c <= 0x07FF:
            out.append(0xC0 | (c >> 6))
            out.append(0x80 | (c & 0x3F))
        else:
            out.append(0xE0 | (c >> 12))
            out.append(0x80 | ((c >> 6) & 0x3F))
            out.append(0x80 | (c & 0x3F))
    return bytes(out)


def decode_modified_utf8(data: bytes) -> str:
    """Inverse of :func:`encode_modified_utf8`; ValueError on malformed input."""
    units = bytearray()
    i = 0
    n = len(data)
    while i < n:
        a = data[i]
        if a < 0x80:
            if a == 0:
                raise ValueError("NUL byte at %d (Java writes U+0000 as C0 80)" % i)
            c = a
            i += 1
        elif a & 0xE0 == 0xC0:
            if i + 1 >= n or data[i + 1] & 0xC0 != 0x80:
                raise ValueError("bad 2-byte sequence at %d" % i)
            c = ((a & 0x1F) << 6) | (data[i + 1] & 0x3F)
            i += 2
        elif a & 0xF0 == 0xE0:
            if i + 2 >= n or data[i + 1] & 0xC0 != 0x80 or data[i + 2] & 0xC0 != 0x80:
                raise ValueError("bad 3-byte sequence at %d" % i)
            c = ((a & 0x0F) << 12) | ((data[i + 1] & 0x3F) << 6) | (data[i + 2] & 0x3F)
            i += 3
        else:
            raise ValueError("bad byte 0x%02x at %d" % (a, i))
        units.append(c >> 8)
        units.append(c & 0xFF)
    # Pairs of surrogates become one character; lone ones are kept as they are.
    return bytes(units).decode("utf-16-be", "surrogatepass")


def write_utf(text: str) -> bytes:
    """``DataOutputStream.writeUTF``: u16 length + modified UTF-8."""
    body = encode_modified_utf8(text)
    if len(body) > 0xFFFF:
        raise StoreError(UNSUPPORTED, "alias too long for a Java keystore (%d bytes)" % len(body))
    return struct.pack(">H", len(body)) + body


# --------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------

class JksEntry:
    """One keystore entry with the exact bytes it occupies in the file.

    ``raw`` runs from the tag to the end of the entry. For trusted certificates
    ``cert_type`` and ``der`` are decoded; for private keys ``chain`` lists the
    (cert type, DER) of the certificate chain, for reporting only.
    """

    __slots__ = ("tag", "alias", "timestamp", "raw", "offset", "cert_type", "der", "chain")

    def __init__(self, tag: int, alias: str, timestamp: int, raw: bytes, offset: int = -1,
                 cert_type: Optional[str] = None, der: Optional[bytes] = None,
                 chain: Optional[List[Tuple[str, bytes]]] = None) -> None:
        self.tag = tag
        self.alias = alias
        self.timestamp = timestamp
        self.raw = raw
        self.offset = offset
        self.cert_type = cert_type
        self.der = der
        self.chain = chain or []

    @property
    def kind(self) -> str:
        return _KINDS.get(self.tag, "unknown")

    @property
    def sha256(self) -> Optional[str]:
        """Fingerprint of a trusted certificate; None for key entries."""
        return sha256_fingerprint(self.der) if self.der is not None else None

    def chain_fingerprints(self) -> List[str]:
        return [sha256_fingerprint(der) for _t, der in self.chain]

    def __repr__(self) -> str:
        return "JksEntry(%s, %r)" % (self.kind, self.alias)


def trusted_cert_entry(alias: str, der: bytes, timestamp: int, version: int = 2,
                       cert_type: str = "X.509") -> JksEntry:
    """Build a new trusted-certificate entry (as JavaKeyStore.engineStore writes it)."""
    parts = [struct.pack(">I", TAG_TRUSTED_CERT), write_utf(alias), struct.pack(">q", timestamp)]
    if version == 2:
        parts.append(write_utf(cert_type))
    parts.append(struct.pack(">I", len(der)))
    parts.append(der)
    return JksEntry(TAG_TRUSTED_CERT, alias, timestamp, b"".join(parts),
                    cert_type=cert_type, der=der)


class JksFile:
    """A parsed JKS/JCEKS keystore: magic, version and entries in file order."""

    def __init__(self, magic: int = JKS_MAGIC, version: int = 2,
                 entries: Optional[List[JksEntry]] = None, digest: Optional[bytes] = None,
                 integrity_checked: bool = False) -> None:
        self.magic = magic
        self.version = version
        self.entries: List[JksEntry] = list(entries or [])
        self.digest = digest
        self.integrity_checked = integrity_checked

    @property
    def format(self) -> str:
        return _FORMATS.get(self.magic, "unknown")

    def find(self, alias: str) -> Optional[JksEntry]:
        """Entry by alias, case-insensitively (keytool lowercases JKS aliases)."""
        want = alias.lower()
        for entry in self.entries:
            if entry.alias.lower() == want:
                return entry
        return None

    def trusted(self) -> List[JksEntry]:
        return [e for e in self.entries if e.tag == TAG_TRUSTED_CERT]

    def unique_alias(self, wanted: str) -> str:
        """``wanted`` lowercased, or with ``-2``, ``-3``... if that alias is taken."""
        base = wanted.lower()
        taken = set(e.alias.lower() for e in self.entries)
        if base not in taken:
            return base
        n = 2
        while "%s-%d" % (base, n) in taken:
            n += 1
        return "%s-%d" % (base, n)

    def add_trusted(self, alias: str, der: bytes, timestamp: int) -> JksEntry:
        """Append a trusted certificate under a free alias derived from ``alias``."""
        entry = trusted_cert_entry(self.unique_alias(alias), der, timestamp, self.version)
        self.entries.append(entry)
        return entry

    def remove(self, alias: str) -> JksEntry:
        entry = self.find(alias)
        if entry is None:
            raise KeyError(alias)
        self.entries.remove(entry)
        return entry

    def copy(self) -> JksFile:
        return JksFile(self.magic, self.version, list(self.entries), self.digest,
                       self.integrity_checked)


# Name used in the design brief.
JksStore = JksFile


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------

class _Truncated(Exception):
    def __init__(self, offset: int, what: str) -> None:
        super().__init__(what)
        self.offset = offset
        self.what = what


class _Garbled(Exception):
    def __init__(self, offset: int, what: str) -> None:
        super().__init__(what)
        self.offset = offset
        self.what = what


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: Optional[int] = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise _Truncated(self.pos, what)
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return struct.unpack(">H", self.take(2, what))[0]

    def u32(self, what: str) -> int:
        return struct.unpack(">I", self.take(4, what))[0]

    def i32(self, what: str) -> int:
        return struct.unpack(">i", self.take(4, what))[0]

    def i64(self, what: str) -> int:
        return struct.unpack(">q", self.take(8, what))[0]

    def utf(self, what: str) -> str:
        start = self.pos
        body = self.take(self.u16(what), what)
        try:
            return decode_modified_utf8(body)
        except ValueError as exc:
            raise _Garbled(start, "%s is not modified UTF-8 (%s)" % (what, exc))

    def blob(self, what: str) -> bytes:
        start = self.pos
        size = self.u32(what + " length")
        if size > self.end - self.pos:
            raise _Truncated(start, "%s (claims %d bytes, %d left)" % (what, size, self.end - self.pos))
        return self.take(size, what)


def _integrity_digest(password: str, body: bytes) -> bytes:
    sha = hashlib.sha1()
    sha.update(password.encode("utf-16-be", "surrogatepass"))
    sha.update(_WHITENER)
    sha.update(body)
    return sha.digest()


def _read_cert(reader: _Reader, version: int, what: str) -> Tuple[str, bytes]:
    cert_type = reader.utf(what + " type") if version == 2 else "X.509"
    return cert_type, reader.blob(what)


def _parse_entry(reader: _Reader, version: int, magic: int, index: int) -> JksEntry:
    start = reader.pos
    tag = reader.u32("entry %d tag" % index)
    if tag not in (TAG_PRIVATE_KEY, TAG_TRUSTED_CERT) and not (
            tag == TAG_SECRET_KEY and magic == JCEKS_MAGIC):
        raise _Garbled(start, "entry %d has unknown tag %d" % (index, tag))
    alias = reader.utf("entry %d alias" % index)
    timestamp = reader.i64("entry %d timestamp" % index)
    cert_type = None
    der = None
    chain: List[Tuple[str, bytes]] = []
    if tag == TAG_PRIVATE_KEY:
        reader.blob("private key of %r" % alias)
        count = reader.u32("chain length of %r" % alias)
        for n in range(count):
            chain.append(_read_cert(reader, version, "certificate %d of %r" % (n, alias)))
    elif tag == TAG_TRUSTED_CERT:
        cert_type, der = _read_cert(reader, version, "certificate %r" % alias)
    else:
        _JavaSerialSkipper(reader, "secret key %r" % alias).skip_stream()
    raw = reader.data[start:reader.pos]
    return JksEntry(tag, alias, timestamp, raw, start, cert_type, der, chain)


def parse(data: bytes, password: Optional[str]) -> JksFile:
    """Parse a JKS (or JCEKS) keystore.

    With a password the integrity digest is checked (StoreError WRONG_PASSWORD on
    mismatch: wrong password or altered content). With None it is not checked: fine
    for reading, but such a store cannot be written back.
    """
    if len(data) < 4:
        if data and (JKS_MAGIC.to_bytes(4, "big").startswith(data)
                     or JCEKS_MAGIC.to_bytes(4, "big").startswith(data)):
            raise StoreError(CORRUPT, "keystore truncated at byte %d (in the magic number)" % len(data))
        if not data:
            raise StoreError(CORRUPT, "keystore file is empty")
        raise StoreError(UNKNOWN_FORMAT, "not a Java keystore (file is %d bytes)" % len(data))
    magic = struct.unpack(">I", data[:4])[0]
    if magic not in _FORMATS:
        hint = ""
        if data[:1] == b"\x30":
            hint = " (it looks like DER: a PKCS#12 store? declare type pkcs12)"
        elif data[:11] == b"-----BEGIN ":
            hint = " (it is a PEM text file)"
        raise StoreError(UNKNOWN_FORMAT, "not a JKS/JCEKS keystore: magic 0x%08X%s" % (magic, hint))
    end = len(data) - DIGEST_SIZE
    if end < 12:
        raise StoreError(CORRUPT, "keystore truncated: %d bytes, too short for a header and "
                         "integrity digest" % len(data))
    reader = _Reader(data, 4, end)
    try:
        version = reader.u32("version")
        if version not in (1, 2):
            raise _Garbled(4, "unsupported keystore version %d" % version)
        count = reader.u32("entry count")
        entries = []
        seen = set()
        for index in range(count):
            entry = _parse_entry(reader, version, magic, index)
            if entry.alias in seen:
                raise _Garbled(entry.offset, "alias %r appears twice" % entry.alias)
            seen.add(entry.alias)
            entries.append(entry)
    except _Truncated as exc:
        raise StoreError(CORRUPT, "keystore truncated or garbled at byte %d: %s runs past the end"
                         % (exc.offset, exc.what))
    except _Garbled as exc:
        raise StoreError(CORRUPT, "keystore garbled at byte %d: %s" % (exc.offset, exc.what))
    if reader.pos != end:
        raise StoreError(CORRUPT, "keystore garbled at byte %d: %d unexpected bytes after the last "
                         "entry" % (reader.pos, end - reader.pos))
    body = data[:end]
    digest = data[end:]
    checked = False
    if password is not None:
        if _integrity_digest(password, body) != digest:
            raise StoreError(WRONG_PASSWORD, WRONG_PASSWORD_MESSAGE)
        checked = True
    return JksFile(magic, version, entries, digest, checked)


def serialize(store: JksFile, password: Optional[str]) -> bytes:
    """Bytes of ``store``; entries are written from their raw bytes, in order."""
    if password is None:
        raise StoreError(WRONG_PASSWORD, "a store password is required to write a Java keystore")
    aliases = set()
    for entry in store.entries:
        if entry.alias in aliases:
            raise StoreError(UNSUPPORTED, "alias %r would appear twice" % entry.alias)
        aliases.add(entry.alias)
        if entry.tag == TAG_SECRET_KEY and store.magic != JCEKS_MAGIC:
            raise StoreError(UNSUPPORTED, "a JKS keystore cannot hold secret key %r" % entry.alias)
    body = b"".join([struct.pack(">III", store.magic, store.version, len(store.entries))]
                    + [e.raw for e in store.entries])
    return body + _integrity_digest(password, body)


# --------------------------------------------------------------------------------------
# Skipping one Java serialization stream (JCEKS secret keys: a SealedObject)
# --------------------------------------------------------------------------------------

_PRIM_SIZES = {"B": 1, "C": 2, "D": 8, "F": 4, "I": 4, "J": 8, "S": 2, "Z": 1}
_SC_WRITE_METHOD = 0x01
_SC_SERIALIZABLE = 0x02
_SC_EXTERNALIZABLE = 0x04
_SC_BLOCK_DATA = 0x08


class _ClassDesc:
    __slots__ = ("name", "flags", "fields", "superdesc")

    def __init__(self, name: str, flags: int, fields: List[Tuple[str, str]],
                 superdesc: Optional[_ClassDesc]) -> None:
        self.name = name
        self.flags = flags
        self.fields = fields  # (type code, name)
        self.superdesc = superdesc


class _JavaSerialSkipper:
    """Walk one ObjectOutputStream (header + one object) to find where it ends.

    Only what a SealedObject needs is understood (objects, class descriptors, strings,
    arrays, block data, references, enums); anything else is reported as garbled.
    """

    def __init__(self, reader: _Reader, what: str) -> None:
        self.r = reader
        self.what = what
        self.handles: List[object] = []
        self.depth = 0

    def fail(self, why: str) -> _Garbled:
        return _Garbled(self.r.pos, "%s: %s" % (self.what, why))

    def skip_stream(self) -> None:
        if self.r.u16(self.what) != 0xACED or self.r.u16(self.what) != 5:
            raise self.fail("not a Java serialization stream")
        self.content()

    def content(self) -> object:
        self.depth += 1
        if self.depth > 64:
            raise self.fail("nested too deeply")
        try:
            return self._content()
        finally:
            self.depth -= 1

    def _new_handle(self, value: object) -> int:
        self.handles.append(value)
        return len(self.handles) - 1

    def _reference(self) -> object:
        handle = self.r.u32(self.what) - 0x7E0000
        if not 0 <= handle < len(self.handles):
            raise self.fail("bad back reference")
        return self.handles[handle]

    def _content(self) -> object:
        tc = self.r.u8(self.what)
        if tc == 0x70:  # TC_NULL
            return None
        if tc == 0x71:  # TC_REFERENCE
            return self._reference()
        if tc in (0x72, 0x7D):  # TC_CLASSDESC, TC_PROXYCLASSDESC
            return self._class_desc_body(tc)
        if tc == 0x74:  # TC_STRING
            handle = self._new_handle(None)
            self.handles[handle] = self.r.utf(self.what)
            return self.handles[handle]
        if tc == 0x7C:  # TC_LONGSTRING
            handle = self._new_handle(None)
            size = self.r.i64(self.what)
            self.handles[handle] = self.r.take(size, self.what).decode("utf-8", "replace")
            return self.handles[handle]
        if tc == 0x73:  # TC_OBJECT
            desc = self.class_desc()
            self._new_handle(object())
            self._class_data(desc)
            return "object"
        if tc == 0x75:  # TC_ARRAY
            desc = self.class_desc()
            self._new_handle(object())
            size = self.r.i32(self.what)
            if desc is None or not desc.name.startswith("[") or size < 0:
                raise self.fail("bad array")
            code = desc.name[1]
            if code in _PRIM_SIZES:
                self.r.take(size * _PRIM_SIZES[code], self.what)
            else:
                for _n in range(size):
                    self.content()
            return "array"
        if tc == 0x76:  # TC_CLASS
            self.class_desc()
            self._new_handle(object())
            return "class"
        if tc == 0x7E:  # TC_ENUM
            self.class_desc()
            handle = self._new_handle(None)
            self.handles[handle] = self.content()
            return "enum"
        if tc == 0x77:  # TC_BLOCKDATA
            self.r.take(self.r.u8(self.what), self.what)
            return "block"
        if tc == 0x7A:  # TC_BLOCKDATALONG
            self.r.take(self.r.i32(self.what), self.what)
            return "block"
        if tc == 0x79:  # TC_RESET
            self.handles = []
            return self.content()
        raise self.fail("unsupported serialization tag 0x%02x" % tc)

    def class_desc(self) -> Optional[_ClassDesc]:
        value = self.content()
        if value is not None and not isinstance(value, _ClassDesc):
            raise self.fail("class descriptor expected")
        return value

    def _annotations(self) -> None:
        while True:
            if self.r.pos >= self.r.end:
                raise _Truncated(self.r.pos, self.what)
            if self.r.data[self.r.pos] == 0x78:  # TC_ENDBLOCKDATA
                self.r.pos += 1
                return
            self.content()

    def _class_desc_body(self, tc: int) -> _ClassDesc:
        if tc == 0x7D:
            handle = self._new_handle(None)
            for _n in range(self.r.i32(self.what)):
                self.r.utf(self.what)
            self._annotations()
            desc = _ClassDesc("<proxy>", _SC_SERIALIZABLE, [], self.class_desc())
            self.handles[handle] = desc
            return desc
        name = self.r.utf(self.what)
        self.r.take(8, self.what)  # serialVersionUID
        handle = self._new_handle(None)
        flags = self.r.u8(self.what)
        fields = []
        for _n in range(self.r.u16(self.what)):
            code = chr(self.r.u8(self.what))
            field_name = self.r.utf(self.what)
            if code in ("L", "["):
                self.content()  # class name string
            elif code not in _PRIM_SIZES:
                raise self.fail("bad field type %r" % code)
            fields.append((code, field_name))
        desc = _ClassDesc(name, flags, fields, None)
        self.handles[handle] = desc
        self._annotations()
        desc.superdesc = self.class_desc()
        return desc

    def _class_data(self, desc: Optional[_ClassDesc]) -> None:
        lineage = []
        while desc is not None:
            lineage.append(desc)
            desc = desc.superdesc
        for cls in reversed(lineage):
            if cls.flags & _SC_EXTERNALIZABLE:
                if not cls.flags & _SC_BLOCK_DATA:
                    raise self.fail("old externalizable format")
                self._annotations()
                continue
            if cls.flags & _SC_SERIALIZABLE:
                for code, _name in cls.fields:
                    if code in _PRIM_SIZES:
                        self.r.take(_PRIM_SIZES[code], self.what)
                    else:
                        self.content()
                if cls.flags & _SC_WRITE_METHOD:
                    self._annotations()
