# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backend ``pem``: a PEM bundle file; every byte outside the removed blocks is kept.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

Removing cuts a certificate block and the line end after it; adding appends PEM blocks
at the end of the file. Keys, CRLs and text around the certificates stay byte for byte.
The plan is the contract's default (``names`` selects, absent ones go).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    CORRUPT,
    UNKNOWN_FORMAT,
    VERIFY_FAILED,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._stores._files import (
    _dedupe,
    _is_text,
    _only_comments,
    _splice,
)
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, Plan, Store
from ansible_collections.sne.guichet.plugins.module_utils._x509 import (
    CERTIFICATE_LABELS,
    cert_info,
    certificate_from_block,
    load_certificates,
    looks_like_pem,
    pem_blocks,
)

Blocks = List[Tuple[str, bytes, int, int]]


class PemStore(Store):
    """A PEM file with one or more certificates, maybe keys, CRLs and text around them.

    Entries are named ``#<n> (line <l>)``: n counts every PEM block of the file from 0.
    Removing cuts the certificate block and the line end after it; adding appends at
    the end of the file. Every other byte is kept. The plan is the default one.
    """

    TYPE = "pem"
    _blocks: Blocks = []

    def _parse(self, data: bytes) -> Tuple[Blocks, List[CertEntry]]:
        path = self.spec.path
        if not looks_like_pem(data):
            if _only_comments(data):
                return [], []
            if data[:1] == b"\x30":
                try:
                    load_certificates(data)
                    raise StoreError(UNKNOWN_FORMAT, "%s holds a DER certificate, not PEM; "
                                     "declare it with type der" % path)
                except ValueError:
                    pass
            if not _is_text(data):
                raise StoreError(UNKNOWN_FORMAT, "%s is not a PEM file (binary content)" % path)
            raise StoreError(UNKNOWN_FORMAT, "%s holds text but no PEM block: not a "
                             "certificate bundle, left untouched" % path)
        try:
            raw = pem_blocks(data)
        except ValueError as exc:
            raise StoreError(CORRUPT, "%s: %s" % (path, exc))
        blocks = []
        entries = []
        line, counted = 1, 0  # lines counted as the blocks come (not from byte 0 for each)
        for index, (label, der, start, end) in enumerate(raw):
            if label in CERTIFICATE_LABELS:
                line, counted = line + data.count(b"\n", counted, start), start
                try:
                    der = certificate_from_block(label, der)
                    cert_info(der)
                except ValueError as exc:
                    raise StoreError(CORRUPT, "%s: certificate block #%d (line %d) is "
                                     "malformed: %s" % (path, index, line, exc))
                entries.append(CertEntry("#%d (line %d)" % (index, line), der))
                blocks.append((label, der, start, end))
        return blocks, entries

    def load(self) -> List[CertEntry]:
        data = self.read()
        self._blocks, entries = self._parse(data) if data is not None else ([], [])
        return entries

    def _apply(self, plan: Plan, backups: Backups) -> Optional[str]:
        path = self.spec.path
        remove = set(e.sha256 for e in plan.remove)
        add = [e.der for e in _dedupe(plan.add) if e.sha256 not in remove]
        new = _splice(self._original or b"", self._blocks, remove, add)
        kept = [sha256_fingerprint(der) for _l, der, _s, _e in self._blocks
                if sha256_fingerprint(der) not in remove]
        expected = kept + [sha256_fingerprint(der) for der in add]

        def verify(tmp: str) -> None:
            with open(tmp, "rb") as handle:
                written = handle.read()
            if written != new:
                raise StoreError(VERIFY_FAILED, "%s: re-read content differs from what was "
                                 "written" % path)
            blocks, _entries = self._parse(written)
            if [sha256_fingerprint(der) for _l, der, _s, _e in blocks] != expected:
                raise StoreError(VERIFY_FAILED, "%s: certificates after the change are not "
                                 "the planned ones" % path)

        backup = self._replace(new, verify, backups, attrs_when_created_only=True)
        self._blocks, _entries = self._parse(new)
        return backup
