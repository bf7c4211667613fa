# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the file and folder backends share: PEM text, certificate files, splicing blocks.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

Used by the one-file backends (pem, der) and by the folder backends (pem_dir, OS trust
anchors): what a certificate file holds, how a PEM block is written, how blocks are cut
out of a file keeping every other byte.
"""

from __future__ import annotations

import os
import re
from typing import List, Set, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import CORRUPT, StoreError
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry
from ansible_collections.sne.guichet.plugins.module_utils._x509 import (
    CERTIFICATE_LABELS,
    cert_info,
    certificate_from_block,
    der_to_pem,
    load_certificates,
    looks_like_pem,
    pem_blocks,
)

CERT_EXTENSIONS = (".pem", ".crt", ".cer")
_HASH_NAME = re.compile(r"^[0-9a-f]{8}\.[0-9]+$")
_TMP_SUFFIX = ".sne-tmp"


# --------------------------------------------------------------------------- helpers


def _is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t\r\n\f\v" for ch in text.lstrip("\ufeff"))


def _only_comments(data: bytes) -> bool:
    """Empty, blank or only ``#`` comment lines: an empty PEM bundle."""
    return all(not line.strip() or line.lstrip().startswith(b"#")
               for line in data.splitlines())


def _newline(data: bytes) -> bytes:
    return b"\r\n" if b"\r\n" in data else b"\n"


def _pem_text(der: bytes, newline: bytes) -> bytes:
    text = der_to_pem(der)
    return text.replace(b"\n", newline) if newline != b"\n" else text


def _safe_stem(name: str, sha256: str) -> str:
    """A file name stem from a present entry's name (never a hash-link name)."""
    stem = os.path.basename(name.replace("\\", "/"))
    for ext in CERT_EXTENSIONS + (".der",):
        if stem.lower().endswith(ext):
            stem = stem[:-len(ext)]
    stem = re.sub(r"[^A-Za-z0-9._+-]", "_", stem).strip("._")
    if not stem or _HASH_NAME.match(stem):
        stem = "cert-" + sha256.replace(":", "")[:16].lower()
    return stem


def _parse_cert_file(data: bytes, where: str) -> List[Tuple[str, bytes, int, int]]:
    """Certificates of a file in a folder store as PEM blocks or DER.

    Returns (label, certificate DER, start, end); start/end are -1 for DER. A file
    that is text without certificate blocks (a key, a README) holds none. A broken
    certificate raises StoreError(CORRUPT).
    """
    if looks_like_pem(data):
        try:
            blocks = pem_blocks(data)
        except ValueError as exc:
            raise StoreError(CORRUPT, "%s: %s" % (where, exc))
        found = []
        for label, der, start, end in blocks:
            if label not in CERTIFICATE_LABELS:
                continue
            try:
                cert = certificate_from_block(label, der)
                cert_info(cert)
            except ValueError as exc:
                raise StoreError(CORRUPT, "%s: certificate block at offset %d: %s"
                                 % (where, start, exc))
            found.append((label, cert, start, end))
        return found
    if not data.strip() or _is_text(data):
        return []
    certs = _der_certificates(data, where, "neither PEM nor a DER certificate")
    return [("DER", cert, -1, -1) for cert in certs]


def _der_certificates(data: bytes, where: str, what: str) -> List[bytes]:
    """The DER certificates of ``data``, each one parsed; StoreError(CORRUPT) naming
    ``what`` it is when one is broken."""
    try:
        certs = load_certificates(data)
        for cert in certs:
            cert_info(cert)
    except ValueError as exc:
        raise StoreError(CORRUPT, "%s: %s (%s)" % (where, what, exc))
    return certs


def _splice(data: bytes, blocks: List[Tuple[str, bytes, int, int]], remove: Set[str],
            add: List[bytes]) -> bytes:
    """``data`` without the certificate blocks whose SHA-256 is in ``remove`` (each with
    the line end that follows it), with ``add`` appended as PEM; all else unchanged."""
    out = []
    pos = 0
    for _label, der, start, end in blocks:
        if sha256_fingerprint(der) not in remove:
            continue
        out.append(data[pos:start])
        if data[end:end + 2] == b"\r\n":
            end += 2
        elif data[end:end + 1] == b"\n":
            end += 1
        pos = end
    out.append(data[pos:])
    result = b"".join(out)
    if add:
        newline = _newline(data)
        if result and not result.endswith(b"\n"):
            result += newline
        result += b"".join(_pem_text(der, newline) for der in add)
    return result


def _dedupe(entries: List[CertEntry]) -> List[CertEntry]:
    seen: Set[str] = set()
    out = []
    for entry in entries:
        if entry.sha256 not in seen:
            seen.add(entry.sha256)
            out.append(entry)
    return out
