# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the two Java keystore backends (jks, pkcs12) share on top of the store contract.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

A keystore needs its password to be changed; its private-key and secret-key entries
are never offered for removal or replacement, and a retired fingerprint found only
in a private key's certificate chain is reported, never removed.
"""

from __future__ import annotations

from typing import Any, Dict, List, Set

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import WRONG_PASSWORD, StoreError
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, Plan, Store


class JavaKeystore(Store):
    """Base of :class:`JksStore` and :class:`Pkcs12Store`.

    ``load`` fills ``details["private_keys"]`` ({alias, chain: [sha256, ...]}) and
    ``details["secret_keys"]`` (aliases); :meth:`policy` adds
    ``details["retired_in_private_keys"]``.
    """

    def _password(self, why: str) -> str:
        """The store password; StoreError(WRONG_PASSWORD) when none was given."""
        if self.spec.password is None:
            raise StoreError(WRONG_PASSWORD, "no store password given: " + why)
        return self.spec.password

    def _key_details(self, private_keys: List[Dict[str, Any]], secret_keys: List[str],
                     **facts: Any) -> None:
        self.details.update(facts, private_keys=private_keys, secret_keys=secret_keys)

    def private_key_matches(self, fingerprints: Set[str]) -> List[Dict[str, str]]:
        """Private-key entries whose chain holds one of ``fingerprints`` (not touched)."""
        found = []
        for key in self.details.get("private_keys", []):
            for position, fingerprint in enumerate(key["chain"]):
                if fingerprint in fingerprints:
                    found.append({"alias": key["alias"], "sha256": fingerprint,
                                  "position": str(position)})
        return found

    def policy(self, entries: List[CertEntry], wanted: List[CertEntry],
               absent: Set[str]) -> Plan:
        """The default plan; retired fingerprints in key chains go to ``details``."""
        self.details["retired_in_private_keys"] = self.private_key_matches(set(absent))
        return super().policy(entries, wanted, absent)
