# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which files a scan for retired fingerprints found can be moved away, and which need a person.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only. The ``sne.guichet.strays`` filter is a thin
shim over :func:`strays`.

A file outside the declared stores that holds nothing but retired certificates, as a PEM, DER
or base64 file, can be moved away whole (``movable``). Any other file that holds one (a
keystore nobody declared, a PEM bundle that also holds other certificates) cannot be moved
without losing something (``attention``). Files inside a declared store are left to
``sne.guichet.keystores``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

MOVABLE_FORMATS = ("pem", "der", "base64")


def inside(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or below it."""
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root.rstrip("/") + "/")


def strays(files: Dict[str, Dict[str, Any]], declared: Optional[List[str]] = None,
           kept: Sequence[str] = ()) -> Dict[str, List[str]]:
    """Sort the ``files`` result of a scan into ``movable`` and ``attention`` (sorted paths).

    ``declared``: paths of the declared stores (files below them are left out). ``kept``:
    files that must stay where they are although they could be moved (the configuration files
    the run rewrites): a retired certificate in one needs a person.
    """
    declared_paths = set(declared or [])
    movable: List[str] = []
    attention: List[str] = []
    for path, info in sorted((files or {}).items()):
        if any(inside(path, d) for d in declared_paths):
            continue
        if (info.get("format") in MOVABLE_FORMATS and info.get("matched") == info.get("certificates")
                and path not in kept):
            movable.append(path)
        else:
            attention.append(path)
    return {"movable": movable, "attention": attention}
