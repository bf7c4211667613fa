# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backend for Java KeyStore files (JKS; JCEKS files are handled the same way).

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only (no keytool, no cryptography).

Trusted-certificate entries are the CertEntry list (name = alias). Private-key and
secret-key entries are never offered for removal or replacement: they are carried
over byte for byte. Their certificate chains are reported in ``details`` so that a
retired fingerprint hidden inside a key's chain is visible, but left alone.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Set

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import VERIFY_FAILED, StoreError
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._formats.jks import (
    JKS_MAGIC,
    TAG_PRIVATE_KEY,
    TAG_SECRET_KEY,
    TAG_TRUSTED_CERT,
    JksEntry,
    JksFile,
    parse,
    serialize,
)
from ansible_collections.sne.guichet.plugins.module_utils._stores._keystore import JavaKeystore
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, Plan


def now_ms() -> int:
    return int(time.time() * 1000)


class JksStore(JavaKeystore):
    """A JKS (or JCEKS) keystore read and written by the pure-Python codec."""

    TYPE = "jks"
    _keystore: Optional[JksFile] = None

    # ---------------------------------------------------------------- reading
    def load(self) -> List[CertEntry]:
        data = self.read()
        keystore = JksFile(JKS_MAGIC, 2, []) if data is None else parse(data, self.spec.password)
        self._keystore = keystore
        private_keys: List[Dict[str, Any]] = []
        secret_keys: List[str] = []
        entries: List[CertEntry] = []
        for entry in keystore.entries:
            if entry.tag == TAG_TRUSTED_CERT:
                if entry.cert_type == "X.509" and entry.der is not None:
                    entries.append(CertEntry(entry.alias, entry.der))
            elif entry.tag == TAG_PRIVATE_KEY:
                private_keys.append({"alias": entry.alias,
                                     "chain": entry.chain_fingerprints()})
            elif entry.tag == TAG_SECRET_KEY:
                secret_keys.append(entry.alias)
        self._key_details(private_keys, secret_keys, backend="stdlib",
                          format=keystore.format if data is not None else "jks",
                          exists=data is not None,
                          integrity_checked=keystore.integrity_checked)
        return entries

    # ---------------------------------------------------------------- writing
    def build(self, plan: Plan) -> JksFile:
        """The keystore as it must be after ``plan`` (removals first, then additions)."""
        if self._keystore is None:
            raise StoreError(VERIFY_FAILED, "load() must run before apply()")
        new = self._keystore.copy()
        for wanted in plan.remove:
            entry = new.find(wanted.name)
            if entry is None or entry.tag != TAG_TRUSTED_CERT or entry.sha256 != wanted.sha256:
                raise StoreError(VERIFY_FAILED, "entry %r is not the trusted certificate %s that "
                                 "was planned for removal" % (wanted.name, wanted.sha256))
            new.entries.remove(entry)
        stamp = now_ms()
        for cert in plan.add:
            new.add_trusted(cert.name, cert.der, stamp)
        return new

    def _apply(self, plan: Plan, backups: Backups) -> Optional[str]:
        password = self._password("it is required to change %s" % self.spec.path)
        new = self.build(plan)
        data = serialize(new, password)
        original = list(self._keystore.entries) if self._keystore else []
        removed = set(c.sha256 for c in plan.remove)
        added = set(c.sha256 for c in plan.add)

        def verify(tmp: str) -> None:
            try:
                with open(tmp, "rb") as handle:
                    written = parse(handle.read(), password)
            except (OSError, StoreError) as exc:
                raise StoreError(VERIFY_FAILED, "written keystore cannot be read back: %s" % exc)
            check_written(written, new, original, removed, added)

        backup = self._replace(data, verify, backups)
        self._keystore = new
        return backup


def check_written(written: JksFile, planned: JksFile, original: List[JksEntry],
                  removed: Set[str], added: Set[str]) -> None:
    """Raise VERIFY_FAILED unless ``written`` is exactly the planned keystore.

    Every entry of ``original`` must be in ``written`` byte for byte, unless it is a
    trusted certificate planned for removal; removed fingerprints must be gone and
    added ones present.
    """
    if (written.magic, written.version) != (planned.magic, planned.version):
        raise StoreError(VERIFY_FAILED, "written keystore has another format or version")
    raws = [e.raw for e in written.entries]
    if raws != [e.raw for e in planned.entries]:
        raise StoreError(VERIFY_FAILED, "written keystore differs from the planned one")
    kept = set(raws)
    for entry in original:
        if entry.raw not in kept and not (entry.tag == TAG_TRUSTED_CERT and entry.sha256 in removed):
            raise StoreError(VERIFY_FAILED, "entry %r was not planned for removal but is missing"
                             % entry.alias)
    held = set(e.sha256 for e in written.entries if e.tag == TAG_TRUSTED_CERT)
    if held & removed:
        raise StoreError(VERIFY_FAILED, "a certificate planned for removal is still present")
    if added - held:
        raise StoreError(VERIFY_FAILED, "a certificate planned for addition is missing")
