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

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    CORRUPT,
    UNKNOWN_FORMAT,
    UNSUPPORTED,
    WRONG_PASSWORD,
    Garbled,
    StoreError,
    Truncated,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint
from ansible_collections.sne.guichet.plugins.module_utils._formats._java import (
    _JavaSerialSkipper,
    _Reader,
    encode_modified_utf8,
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

# The integrity digest cannot tell a wrong password from altered content.
WRONG_PASSWORD_MESSAGE = "store password incorrect or store damaged (integrity check failed)"


# --------------------------------------------------------------------------------------
# Java modified UTF-8 (DataOutputStream.writeUTF / DataInputStream.readUTF)
# --------------------------------------------------------------------------------------

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
        raise Garbled(start, "entry %d has unknown tag %d" % (index, tag))
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
            raise Garbled(4, "unsupported keystore version %d" % version)
        count = reader.u32("entry count")
        entries = []
        seen = set()
        for index in range(count):
            entry = _parse_entry(reader, version, magic, index)
            if entry.alias in seen:
                raise Garbled(entry.offset, "alias %r appears twice" % entry.alias)
            seen.add(entry.alias)
            entries.append(entry)
    except Truncated as exc:
        raise StoreError(CORRUPT, "keystore truncated or garbled at byte %d: %s runs past the end"
                         % (exc.offset, exc.what))
    except Garbled as exc:
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
