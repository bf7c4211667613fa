# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backend ``der``: a single DER (or PEM) certificate file.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.
"""

from __future__ import annotations

import os
from typing import Any, Callable, List, Optional, Set

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    CORRUPT,
    IO_ERROR,
    UNKNOWN_FORMAT,
    UNSUPPORTED,
    VERIFY_FAILED,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.io import (
    Backups,
    atomic_write,
    remove_file,
)
from ansible_collections.sne.guichet.plugins.module_utils._stores._files import (
    _dedupe,
    _new_file_attrs,
    _newline,
    _pem_text,
    _read,
    _wanted,
)
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import (
    CertEntry,
    Plan,
    Store,
    StoreSpec,
)
from ansible_collections.sne.guichet.plugins.module_utils._x509 import (
    cert_info,
    der_to_pem,
    load_certificates,
    looks_like_pem,
)

# --------------------------------------------------------------------------- der


class DerStore(Store):
    """A file holding exactly one certificate (e.g. ``Chiffrement_SNEV5.cer``).

    Written as DER; a file that was PEM (some ``.cer`` files are) stays PEM.
    Plan: see :meth:`plan`.
    """

    TYPE = "der"

    def __init__(self, spec: StoreSpec, run_command: Callable[..., Any],
                 find_tool: Callable[[str], Optional[str]]) -> None:
        super().__init__(spec, run_command, find_tool)
        self._loaded = False
        self._data: Optional[bytes] = None
        self._pem = False

    def _parse(self, data: bytes) -> List[bytes]:
        path = self.spec.path
        if not data:
            return []
        if looks_like_pem(data):
            try:
                certs = load_certificates(data)
            except ValueError as exc:
                raise StoreError(CORRUPT, "%s: %s" % (path, exc))
            if not certs:
                raise StoreError(UNKNOWN_FORMAT, "%s is PEM without a certificate block"
                                 % path)
            self._pem = True
        else:
            if data[:1] != b"\x30":
                raise StoreError(UNKNOWN_FORMAT, "%s is not a DER certificate" % path)
            try:
                certs = load_certificates(data)
                for cert in certs:
                    cert_info(cert)
            except ValueError as exc:
                raise StoreError(CORRUPT, "%s: malformed DER certificate: %s" % (path, exc))
            self._pem = False
        if len(certs) != 1:
            raise StoreError(UNSUPPORTED, "%s holds %d certificates; a der store holds "
                             "exactly one (declare it with type pem)" % (path, len(certs)))
        return certs

    def load(self) -> List[CertEntry]:
        data = _read(self.spec.path, self.spec.create)
        self._data = data
        self._loaded = True
        self.details["encoding"] = "pem" if data and looks_like_pem(data) else "der"
        certs = self._parse(data) if data is not None else []
        return [CertEntry(os.path.basename(self.spec.path), der) for der in certs]

    def plan(self, entries: List[CertEntry], present: List[CertEntry],
             absent: Set[str]) -> Plan:
        """One certificate fits: pick it, replace a retired one, refuse to overwrite others.

        The wanted certificate is the one named in ``spec.names``; otherwise the first
        present certificate of the same kind (CA or not) as the one the file holds;
        otherwise the first non-CA one; otherwise the first. If the file holds a
        certificate that is neither wanted nor retired, it is a conflict: overwriting it
        could lose something nobody asked to remove, so StoreError(UNSUPPORTED) is raised
        and the file is left alone.
        """
        candidates = [p for p in _wanted(present, self.spec.names) if p.sha256 not in absent]
        current = entries[0] if entries else None
        if self.spec.names is not None and len(_dedupe(candidates)) > 1:
            raise StoreError(UNSUPPORTED, "%s: a der store holds one certificate but names "
                             "%s select %d" % (self.spec.path, ", ".join(self.spec.names),
                                               len(_dedupe(candidates))))
        wanted = None
        if candidates:
            kinds = [(c, bool(cert_info(c.der)["is_ca"])) for c in candidates]
            if current is not None and self.spec.names is None:
                current_ca = bool(cert_info(current.der)["is_ca"])
                same = [c for c, ca in kinds if ca == current_ca]
                wanted = same[0] if same else None
            if wanted is None:
                leaves = [c for c, ca in kinds if not ca]
                wanted = leaves[0] if leaves else candidates[0]
        if current is None:
            return Plan(add=[wanted] if wanted else [], remove=[])
        if wanted is not None and current.sha256 == wanted.sha256:
            return Plan(add=[], remove=[])
        if current.sha256 in absent:
            return Plan(add=[wanted] if wanted else [], remove=[current])
        if wanted is None:
            return Plan(add=[], remove=[])
        raise StoreError(UNSUPPORTED, "%s holds another certificate (%s, SHA-256 %s) that "
                         "is neither wanted nor retired; left untouched (list its "
                         "fingerprint in absent to replace it, or point the store elsewhere)"
                         % (self.spec.path, cert_info(current.der)["subject"], current.sha256))

    def apply(self, plan: Plan, backups: Backups) -> Optional[str]:
        if not self._loaded:
            self.load()
        if not plan.changed:
            return None
        path = self.spec.path
        now = _read(path, self.spec.create)
        if now != self._data:
            raise StoreError(IO_ERROR, "%s changed while it was being updated; "
                             "nothing written, run again" % path)
        adds = _dedupe(plan.add)
        if len(adds) > 1:
            raise StoreError(UNSUPPORTED, "%s: a der store holds one certificate, the plan "
                             "adds %d" % (path, len(adds)))
        real = os.path.realpath(path) if os.path.islink(path) else path
        if not adds:
            if self._data is None:
                return None
            backup = backups.save(real)
            remove_file(path)
            self._data = None
            return backup
        der = adds[0].der
        new = der_to_pem(der) if self._pem else der
        if self._pem and self._data:
            new = _pem_text(der, _newline(self._data))

        def verify(tmp: str) -> None:
            with open(tmp, "rb") as handle:
                written = handle.read()
            if written != new or self._parse(written) != [der]:
                raise StoreError(VERIFY_FAILED, "%s: re-read content is not the planned "
                                 "certificate" % path)

        backup = backups.save(real)
        attrs = _new_file_attrs(self.spec) if self._data is None else {}
        atomic_write(path, new, verify=verify, **attrs)
        self._data = new
        return backup
