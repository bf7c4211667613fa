# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filter sne.guichet.strays (documented in strays.yml)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible_collections.sne.guichet.plugins.plugin_utils._fleet import inside, stores_without

MOVABLE_FORMATS = ("pem", "der", "base64")


def strays(files: Dict[str, Dict[str, Any]], declared: Optional[List[str]] = None) -> Dict[str, List[str]]:
    declared_paths = set(declared or [])
    movable: List[str] = []
    attention: List[str] = []
    for path, info in sorted((files or {}).items()):
        if any(inside(path, d) for d in declared_paths):
            continue
        if info.get("format") in MOVABLE_FORMATS and info.get("matched") == info.get("certificates"):
            movable.append(path)
        else:
            attention.append(path)
    return {"movable": movable, "attention": attention}


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {"strays": strays, "stores_without": stores_without}
