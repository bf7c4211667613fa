# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filter sne.guichet.strays (documented in strays.yml)."""

from __future__ import annotations

from typing import Any, Dict

# The sort the sne.guichet.retire module makes, written once in module_utils.
from ansible_collections.sne.guichet.plugins.module_utils._retire.sort import strays
from ansible_collections.sne.guichet.plugins.plugin_utils._fleet import stores_without


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {"strays": strays, "stores_without": stores_without}
