# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a file is, by its content: PEM, DER certificate, JKS, JCEKS, PKCS#12, text or nothing.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

Two steps, the cheap one first. :func:`classify` looks at the first bytes only (the scan
reads ``HEAD_SIZE`` of every file and no more of those it rules out): JKS/JCEKS magic, a
PKCS#12 PFX header (``30 len 02 01 03 30``), a DER certificate header (``30 8x len 30 8x len``
then ``A0`` or ``02``), text (no NUL byte), or ``None``. :func:`detect` decides on the whole
data: text holding a ``-----BEGIN`` line is PEM, and a PFX header is confirmed by reading the
PKCS#12 outline (a damaged PKCS#12 file is still one; DER that is no PFX is nothing).
:func:`nss_database` recognises the certificate file of an NSS database by its name and
first bytes: ``cert9.db`` (SQLite, the ``sql:`` format) or a legacy ``cert8.db`` (dbm).
"""

from __future__ import annotations

import os
from typing import Optional

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import UNKNOWN_FORMAT, StoreError
from ansible_collections.sne.guichet.plugins.module_utils._formats import pkcs12 as _p12

HEAD_SIZE = 4096

PEM = "pem"
DER = "der"
JKS = "jks"
JCEKS = "jceks"
PKCS12 = "pkcs12"
TEXT = "text"  # text that may hold PEM blocks (classify), or holds none (detect)
KEYSTORES = (JKS, JCEKS, PKCS12)

NSS = "nss"  # the certificate file of an NSS database (store type nss: its folder)
SQLITE_MAGIC = b"SQLite format 3\x00"
_DBM_HASH_MAGIC = (b"\x00\x06\x15\x61", b"\x61\x15\x06\x00")  # Berkeley DB 1.85 hash, either order

PEM_MARKER = b"-----BEGIN"
_MAGICS = {b"\xfe\xed\xfe\xed": JKS, b"\xce\xce\xce\xce": JCEKS}


def _after_length(head: bytes, pos: int) -> Optional[int]:
    """Position after the DER/BER length octets at ``pos``; None if not in ``head``."""
    if pos >= len(head):
        return None
    first = head[pos]
    if first <= 0x80:  # short form, or BER indefinite
        return pos + 1
    count = first & 0x7F
    if count > 4 or pos + 1 + count > len(head):
        return None
    return pos + 1 + count


def _long_length(head: bytes, pos: int) -> Optional[int]:
    """Like :func:`_after_length` for a definite long-form length (any certificate has one)."""
    if pos >= len(head) or not 0x81 <= head[pos] <= 0x84:
        return None
    return _after_length(head, pos)


def classify(head: bytes) -> Optional[str]:
    """What the first bytes of a file say it may be: jks, jceks, pkcs12, der, text or None.

    Only a cheap look at the header: the caller still parses the whole file. ``None``
    means a binary file that is none of the formats (not worth reading further) or an
    empty one.
    """
    magic = _MAGICS.get(head[:4])
    if magic is not None:
        return magic
    if head[:1] == b"\x30":
        pos = _after_length(head, 1)
        if pos is not None and head[pos:pos + 4] == b"\x02\x01\x03\x30":
            return PKCS12  # PFX { version 3, authSafe ContentInfo
        pos = _long_length(head, 1)
        if pos is not None and head[pos:pos + 1] == b"\x30":
            inner = _long_length(head, pos + 1)  # tbsCertificate
            if inner is not None and head[inner:inner + 1] in (b"\xa0", b"\x02"):
                return DER
        if len(head) > 1 and head[1] >= 0x80:
            return None  # some other ASN.1 structure (key, PKCS#7, CRL...): never text
    if not head or b"\0" in head:
        return None
    return TEXT


def text_kind(data: bytes) -> str:
    """pem or text: what a file :func:`classify` calls text is, once read whole."""
    return PEM if PEM_MARKER in data else TEXT


def detect(data: bytes) -> Optional[str]:
    """What the whole ``data`` is: pem, der, jks, jceks, pkcs12, text or None (nothing known)."""
    kind = classify(data[:HEAD_SIZE])
    if kind == TEXT:
        return text_kind(data)
    if kind == PKCS12:
        try:
            _p12.outline(data)
        except StoreError as exc:
            if exc.code == UNKNOWN_FORMAT:
                return None
    return kind


def nss_database(path: str, head: bytes) -> Optional[str]:
    """``sql`` when ``path`` is the ``cert9.db`` of an NSS database (an SQLite file), ``legacy``
    for a ``cert8.db`` (Berkeley DB hash file, the dbm format), else None."""
    name = os.path.basename(path)
    if name == "cert9.db" and head.startswith(SQLITE_MAGIC):
        return "sql"
    if name == "cert8.db" and (head[:4] in _DBM_HASH_MAGIC or head[12:16] in _DBM_HASH_MAGIC):
        return "legacy"
    return None
