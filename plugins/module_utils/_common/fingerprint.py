# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Certificate identity: the SHA-256 of the DER, as ``openssl x509 -fingerprint -sha256`` prints it.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.
"""

from __future__ import annotations

import hashlib


def sha256_fingerprint(der: bytes) -> str:
    """SHA-256 of a DER blob, formatted as ``openssl x509 -fingerprint -sha256`` prints it."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def normalize_fingerprint(value: str) -> str:
    """Accept AA:BB.., aabb.., 'sha256 Fingerprint=AA:..' and return the canonical form."""
    text = value.strip()
    if "=" in text:
        text = text.split("=", 1)[1]
    hexdigits = "".join(ch for ch in text if ch not in ": \t\r\n").upper()
    if len(hexdigits) != 64 or any(ch not in "0123456789ABCDEF" for ch in hexdigits):
        raise ValueError("not a SHA-256 fingerprint: %r" % value)
    return ":".join(hexdigits[i:i + 2] for i in range(0, 64, 2))
