# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Guarded import of ``cryptography`` and its minimum version, in one place.

This API is private to the sne.guichet collection; it may change without notice.
"""

from __future__ import annotations

import traceback
from typing import Optional

# PKCS#7/CMS builder, x509.verification extension policies, serialize_java_truststore.
MINIMUM_CRYPTOGRAPHY_VERSION = "45.0.0"

CRYPTOGRAPHY_IMPORT_ERROR: Optional[str]
try:
    import cryptography

    CRYPTOGRAPHY_VERSION: Optional[str] = cryptography.__version__
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:
    CRYPTOGRAPHY_VERSION = None
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()


def _version_tuple(text: str) -> tuple:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def cryptography_problem() -> Optional[str]:
    """None when a recent enough cryptography is importable, else why not."""
    if CRYPTOGRAPHY_VERSION is None:
        return "the Python library cryptography is not installed"
    if _version_tuple(CRYPTOGRAPHY_VERSION) < _version_tuple(MINIMUM_CRYPTOGRAPHY_VERSION):
        return "cryptography %s is too old, %s or newer is needed" % (
            CRYPTOGRAPHY_VERSION, MINIMUM_CRYPTOGRAPHY_VERSION)
    return None
