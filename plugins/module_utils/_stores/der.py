# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backend ``der``: a single DER (or PEM) certificate file.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

Its policy, built on the shared selection by ``names``: one certificate fits the file.
"""

from __future__ import annotations

import os
from typing import List, Optional, Set

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    CORRUPT,
    UNKNOWN_FORMAT,
    UNSUPPORTED,
    VERIFY_FAILED,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups, remove_file
from ansible_collections.sne.guichet.plugins.module_utils._stores._files import (
    _dedupe,
    _der_certificates,
    _newline,
    _pem_text,
)
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, Plan, Store
from ansible_collections.sne.guichet.plugins.module_utils._x509 import (
    cert_info,
    der_to_pem,
    load_certificates,
    looks_like_pem,
)


class DerStore(Store):
    """A file holding exactly one certificate (e.g. ``Chiffrement_SNEV5.cer``).

    Written as DER; a file that was PEM (some ``.cer`` files are) stays PEM.
    Plan: see :meth:`policy`.
    """

    TYPE = "der"
    _pem = False

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
            certs = _der_certificates(data, path, "malformed DER certificate")
            self._pem = False
        if len(certs) != 1:
            raise StoreError(UNSUPPORTED, "%s holds %d certificates; a der store holds "
                             "exactly one (declare it with type pem)" % (path, len(certs)))
        return certs

    def load(self) -> List[CertEntry]:
        data = self.read()
        self.details["encoding"] = "pem" if data and looks_like_pem(data) else "der"
        certs = self._parse(data) if data is not None else []
        return [CertEntry(os.path.basename(self.spec.path), der) for der in certs]

    def policy(self, entries: List[CertEntry], wanted: List[CertEntry],
               absent: Set[str]) -> Plan:
        """One certificate fits: pick it, replace a retired one, refuse to overwrite others.

        The wanted certificate is the one ``spec.names`` selects; otherwise the first
        wanted certificate of the same kind (CA or not) as the one the file holds;
        otherwise the first non-CA one; otherwise the first. If the file holds a
        certificate that is neither wanted nor retired, it is a conflict: overwriting it
        could lose something nobody asked to remove, so StoreError(UNSUPPORTED) is raised
        and the file is left alone.
        """
        candidates = [p for p in wanted if p.sha256 not in absent]
        current = entries[0] if entries else None
        if self.spec.names is not None and len(candidates) > 1:
            raise StoreError(UNSUPPORTED, "%s: a der store holds one certificate but names "
                             "%s select %d" % (self.spec.path, ", ".join(self.spec.names),
                                               len(candidates)))
        choice = None
        if candidates:
            kinds = [(c, bool(cert_info(c.der)["is_ca"])) for c in candidates]
            if current is not None and self.spec.names is None:
                current_ca = bool(cert_info(current.der)["is_ca"])
                same = [c for c, ca in kinds if ca == current_ca]
                choice = same[0] if same else None
            if choice is None:
                leaves = [c for c, ca in kinds if not ca]
                choice = leaves[0] if leaves else candidates[0]
        if current is None:
            return Plan(add=[choice] if choice else [], remove=[])
        if choice is not None and current.sha256 == choice.sha256:
            return Plan(add=[], remove=[])
        if current.sha256 in absent:
            return Plan(add=[choice] if choice else [], remove=[current])
        if choice is None:
            return Plan(add=[], remove=[])
        raise StoreError(UNSUPPORTED, "%s holds another certificate (%s, SHA-256 %s) that "
                         "is neither wanted nor retired; left untouched (list its "
                         "fingerprint in absent to replace it, or point the store elsewhere)"
                         % (self.spec.path, cert_info(current.der)["subject"], current.sha256))

    def _apply(self, plan: Plan, backups: Backups) -> Optional[str]:
        path = self.spec.path
        adds = _dedupe(plan.add)
        if len(adds) > 1:
            raise StoreError(UNSUPPORTED, "%s: a der store holds one certificate, the plan "
                             "adds %d" % (path, len(adds)))
        if not adds:
            if self._original is None:
                return None
            backup = backups.save(os.path.realpath(path) if os.path.islink(path) else path)
            remove_file(path)
            self._original = None
            return backup
        der = adds[0].der
        new = der_to_pem(der) if self._pem else der
        if self._pem and self._original:
            new = _pem_text(der, _newline(self._original))

        def verify(tmp: str) -> None:
            with open(tmp, "rb") as handle:
                written = handle.read()
            if written != new or self._parse(written) != [der]:
                raise StoreError(VERIFY_FAILED, "%s: re-read content is not the planned "
                                 "certificate" % path)

        return self._replace(new, verify, backups, attrs_when_created_only=True)
