# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backend ``pem``: a PEM bundle file; every byte outside the removed blocks is kept.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.
"""

from __future__ import annotations

import os
from typing import Any, Callable, List, Optional, Set, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    CORRUPT,
    IO_ERROR,
    UNKNOWN_FORMAT,
    VERIFY_FAILED,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint
from ansible_collections.sne.guichet.plugins.module_utils._common.io import (
    Backups,
    atomic_write,
)
from ansible_collections.sne.guichet.plugins.module_utils._stores._files import (
    _dedupe,
    _is_text,
    _new_file_attrs,
    _only_comments,
    _read,
    _splice,
    _wanted,
)
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import (
    CertEntry,
    Plan,
    Store,
    StoreSpec,
)
from ansible_collections.sne.guichet.plugins.module_utils._x509 import (
    CERTIFICATE_LABELS,
    cert_info,
    certificate_from_block,
    load_certificates,
    looks_like_pem,
    pem_blocks,
)

# --------------------------------------------------------------------------- pem


class PemStore(Store):
    """A PEM file with one or more certificates, maybe keys, CRLs and text around them.

    Entries are named ``#<n> (line <l>)``: n counts every PEM block of the file from 0.
    Removing cuts the certificate block and the line end after it; adding appends at
    the end of the file. Every other byte is kept.
    """

    TYPE = "pem"

    def __init__(self, spec: StoreSpec, run_command: Callable[..., Any],
                 find_tool: Callable[[str], Optional[str]]) -> None:
        super().__init__(spec, run_command, find_tool)
        self._loaded = False
        self._data: Optional[bytes] = None
        self._blocks: List[Tuple[str, bytes, int, int]] = []

    def _parse(self, data: bytes) -> Tuple[List[Tuple[str, bytes, int, int]], List[CertEntry]]:
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
        for index, (label, der, start, end) in enumerate(raw):
            if label in CERTIFICATE_LABELS:
                try:
                    der = certificate_from_block(label, der)
                    cert_info(der)
                except ValueError as exc:
                    line = data.count(b"\n", 0, start) + 1
                    raise StoreError(CORRUPT, "%s: certificate block #%d (line %d) is "
                                     "malformed: %s" % (path, index, line, exc))
                line = data.count(b"\n", 0, start) + 1
                entries.append(CertEntry("#%d (line %d)" % (index, line), der))
                blocks.append((label, der, start, end))
        return blocks, entries

    def load(self) -> List[CertEntry]:
        data = _read(self.spec.path, self.spec.create)
        self._data = data
        self._loaded = True
        if data is None:
            self._blocks = []
            return []
        self._blocks, entries = self._parse(data)
        return entries

    def plan(self, entries: List[CertEntry], present: List[CertEntry],
             absent: Set[str]) -> Plan:
        return Store.plan(self, entries, _dedupe(_wanted(present, self.spec.names)), absent)

    def apply(self, plan: Plan, backups: Backups) -> Optional[str]:
        if not self._loaded:
            self.load()
        if not plan.changed:
            return None
        path = self.spec.path
        before = self._data
        now = _read(path, self.spec.create)
        if now != before:
            raise StoreError(IO_ERROR, "%s changed while it was being updated; "
                             "nothing written, run again" % path)
        data = before or b""
        remove = set(e.sha256 for e in plan.remove)
        add = [e.der for e in _dedupe(plan.add) if e.sha256 not in remove]
        new = _splice(data, self._blocks, remove, add)
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
            got = [sha256_fingerprint(der) for _l, der, _s, _e in blocks]
            if got != expected:
                raise StoreError(VERIFY_FAILED, "%s: certificates after the change are not "
                                 "the planned ones" % path)

        real = os.path.realpath(path) if os.path.islink(path) else path
        backup = backups.save(real)
        attrs = _new_file_attrs(self.spec) if before is None else {}
        atomic_write(path, new, verify=verify, **attrs)
        self._data = new
        self._blocks, _entries = self._parse(new)
        return backup
