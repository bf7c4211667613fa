# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One interface for every keystore format the keystores module converges.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

A backend reads its store into a list of CertEntry (the trusted certificates it can
see, with a locator ``name``: alias, file name or block index) and applies a plan
(certificates to add, entries to remove) atomically, verifying the result before it
replaces the original. Identity is the SHA-256 of the certificate DER.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint
from ansible_collections.sne.guichet.plugins.module_utils._common.tools import CommandRunner


class CertEntry:
    """A certificate held in a store.

    ``name`` locates it inside the store (JKS alias, file name, ``#3`` for the fourth
    PEM block); ``der`` is the certificate; ``sha256`` its identity.
    """

    __slots__ = ("name", "der", "sha256")

    def __init__(self, name: str, der: bytes) -> None:
        self.name = name
        self.der = der
        self.sha256 = sha256_fingerprint(der)

    def __repr__(self) -> str:
        return "CertEntry(%r, %s)" % (self.name, self.sha256[:11])


class Plan:
    """What a store needs: certificates to add (name, der) and entries to remove."""

    def __init__(self, add: List[CertEntry], remove: List[CertEntry]) -> None:
        self.add = add
        self.remove = remove

    @property
    def changed(self) -> bool:
        return bool(self.add or self.remove)


class StoreSpec:
    """One declared store, as the module received it (password never printed)."""

    def __init__(self, path: str, type: str, password: Optional[str] = None,
                 owner: Optional[str] = None, group: Optional[str] = None,
                 mode: Optional[str] = None, refresh: Optional[str] = None,
                 create: bool = False, names: Optional[List[str]] = None) -> None:
        self.path = path
        self.type = type
        self.password = password
        self.owner = owner
        self.group = group
        self.mode = mode
        self.refresh = refresh
        self.create = create
        # Names (from the module's ``present`` list) this store should hold; None = all
        # the backend accepts (CA certificates only for OS trust anchors, one for der).
        self.names = names

    def __repr__(self) -> str:  # never shows the password
        return "StoreSpec(%r, %r)" % (self.path, self.type)



class Store:
    """Base class of the backends.

    Subclasses implement :meth:`load` and :meth:`apply`. ``load`` must not modify
    anything; ``apply`` must back up, write to a temporary file in the same folder,
    fsync, re-read and check that every entry not in the plan is identical and that
    the plan is fulfilled, then rename (see ``_atomic``). On any failure the store is
    left byte-identical and StoreError is raised.
    """

    TYPE = ""

    def __init__(self, spec: StoreSpec, run_command: CommandRunner,
                 find_tool: Callable[[str], Optional[str]]) -> None:
        self.spec = spec
        self.run_command = run_command
        self.find_tool = find_tool
        self.details: Dict[str, Any] = {}  # e.g. {"backend": "keytool"}

    def load(self) -> List[CertEntry]:
        raise NotImplementedError

    def plan(self, entries: List[CertEntry], present: List[CertEntry],
             absent: set[str]) -> Plan:
        """Default policy: add what is wanted and missing, remove every absent one."""
        held = set(e.sha256 for e in entries)
        add = [p for p in present if p.sha256 not in held and p.sha256 not in absent]
        remove = [e for e in entries if e.sha256 in absent]
        return Plan(add=add, remove=remove)

    def apply(self, plan: Plan, backups: Any) -> Optional[str]:
        """Carry out the plan, saving every file first with ``backups.save(path)``
        (an ``_atomic.Backups``); return the backup path (or None when no backup)."""
        raise NotImplementedError

