# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The contract every keystore backend the keystores module converges keeps.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

A backend reads its store into a list of CertEntry (the trusted certificates it can
see, with a locator ``name``: alias, file name or block index) and applies a plan
(certificates to add, entries to remove) atomically, verifying the result before it
replaces the original. Identity is the SHA-256 of the certificate DER.

What is the same for every backend lives here, once: the selection of the wanted
certificates by the store's ``names`` (:meth:`Store.select`), the reading of a store
file with the same error codes (:func:`read_store_file`), and the refusal to write a
store that changed since it was read (:meth:`Store.check_unchanged`, ``io_error``: a
concurrent change is not a failed verification of our write).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Set, Union

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    IO_ERROR,
    NOT_FOUND,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import sha256_fingerprint
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups, atomic_write
from ansible_collections.sne.guichet.plugins.module_utils._common.reading import read_bytes
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
    """One declared store, as the module received it (password never printed).

    ``names``: the names (from the module's ``present`` list) this store should hold;
    None = all the backend accepts (CA certificates only for OS trust anchors, one for
    der).
    """

    __slots__ = ("path", "type", "password", "owner", "group", "mode", "refresh", "create",
                 "names")
    path: str
    type: str
    password: Optional[str]
    owner: Optional[str]
    group: Optional[str]
    mode: Optional[str]
    refresh: Optional[str]
    create: bool
    names: Optional[List[str]]

    def __init__(self, path: str, type: str, password: Optional[str] = None,
                 owner: Optional[str] = None, group: Optional[str] = None,
                 mode: Optional[str] = None, refresh: Optional[str] = None,
                 create: bool = False, names: Optional[List[str]] = None) -> None:
        given = (path, type, password, owner, group, mode, refresh, create, names)
        for field, value in zip(self.__slots__, given):
            setattr(self, field, value)

    def file_attrs(self) -> Dict[str, Optional[str]]:
        """owner/group/mode keyword arguments for :func:`atomic_write`."""
        return {"owner": self.owner, "group": self.group, "mode": self.mode}

    def __repr__(self) -> str:  # never shows the password
        return "StoreSpec(%r, %r)" % (self.path, self.type)


def changed_since_read(path: str, how: str = "changed") -> StoreError:
    """The one error of every backend for a store that is not what load() read."""
    return StoreError(IO_ERROR, "%s %s since it was read; nothing written, run again"
                      % (path, how))


def read_store_file(spec: StoreSpec) -> Optional[bytes]:
    """The bytes of a one-file store; None when it does not exist and may be created.

    Every backend reads its file here, so the codes are the same everywhere: a missing
    file without ``create``, or with ``create`` in a folder that does not exist, is
    NOT_FOUND; the rest is :func:`read_bytes`'s: a folder, FIFO, socket or device where a
    file is expected UNKNOWN_FORMAT (never opened for a blocking read: a FIFO would block,
    a device may never end); a file over ``MAX_READ_SIZE`` (64 MiB) UNSUPPORTED (never
    read into memory); any other failure IO_ERROR.
    """
    data = read_bytes(spec.path)
    if data is None:
        check_creatable(spec)
    return data


def check_creatable(spec: StoreSpec) -> None:
    """For a store that does not exist: StoreError(NOT_FOUND) unless ``create`` is set and
    the folder it goes in exists."""
    if not spec.create:
        raise StoreError(NOT_FOUND, "%s does not exist" % spec.path)
    folder = os.path.dirname(os.path.abspath(spec.path))
    if not os.path.isdir(folder):
        raise StoreError(NOT_FOUND, "cannot create %s: folder %s does not exist"
                         % (spec.path, folder))


class Store:
    """Base class of the backends: the contract.

    Subclasses implement :meth:`load` (must not modify anything; a one-file store reads
    through :meth:`read`), may refine :meth:`select` and :meth:`policy`, and implement
    :meth:`_apply`: back up, write to a temporary file in the same folder, fsync,
    re-read and check that every entry not in the plan is identical and that the plan
    is fulfilled, then rename (``_common.io.atomic_write``). On any failure the store
    is left byte-identical and StoreError is raised.
    """

    TYPE = ""

    def __init__(self, spec: StoreSpec, run_command: CommandRunner,
                 find_tool: Callable[[str], Optional[str]]) -> None:
        self.spec = spec
        self.run_command = run_command
        self.find_tool = find_tool
        self.details: Dict[str, Any] = {}  # e.g. {"backend": "keytool"}
        self._loaded = False
        self._original: Optional[bytes] = None  # the file load() read; None = no file

    # ---------------------------------------------------------------- reading
    def load(self) -> List[CertEntry]:
        raise NotImplementedError

    def read(self) -> Optional[bytes]:
        """Read the store file for :meth:`load` (see :func:`read_store_file`) and keep it
        for :meth:`check_unchanged`."""
        self._original = read_store_file(self.spec)
        self._loaded = True
        return self._original

    # ---------------------------------------------------------------- planning
    def select(self, present: List[CertEntry]) -> List[CertEntry]:
        """The certificates of ``present`` this store should hold, each once: those
        ``spec.names`` names (all when None). Backends narrow it further."""
        names = self.spec.names
        seen: Set[str] = set()
        wanted = []
        for entry in present:
            if (names is None or entry.name in names) and entry.sha256 not in seen:
                seen.add(entry.sha256)
                wanted.append(entry)
        return wanted

    def plan(self, entries: List[CertEntry], present: List[CertEntry],
             absent: Set[str]) -> Plan:
        """What the store needs: :meth:`policy` applied to :meth:`select` of ``present``."""
        return self.policy(entries, self.select(present), absent)

    def policy(self, entries: List[CertEntry], wanted: List[CertEntry],
               absent: Set[str]) -> Plan:
        """Default policy: add what is wanted and missing, remove every absent one."""
        held = set(e.sha256 for e in entries)
        add = [p for p in wanted if p.sha256 not in held and p.sha256 not in absent]
        remove = [e for e in entries if e.sha256 in absent]
        return Plan(add=add, remove=remove)

    # ---------------------------------------------------------------- writing
    def check_unchanged(self) -> None:
        """StoreError(IO_ERROR) when the store file is not the one :meth:`load` read."""
        if read_bytes(self.spec.path) != self._original:
            raise changed_since_read(self.spec.path)

    def apply(self, plan: Plan, backups: Union[Backups, str, None]) -> Optional[str]:
        """Carry out the plan, saving every file first with ``backups.save(path)`` (a
        Backups, a backup folder or None); return the backup path (None when no backup
        or nothing to do). The store must be as :meth:`load` read it."""
        if not self._loaded:
            self.load()
        if not plan.changed:
            return None
        self.check_unchanged()
        return self._apply(plan, Backups.of(backups))

    def _apply(self, plan: Plan, backups: Backups) -> Optional[str]:
        raise NotImplementedError

    def _replace(self, data: bytes, verify: Callable[[str], None], backups: Backups,
                 attrs_when_created_only: bool = False) -> Optional[str]:
        """Back up the store file, then replace it with ``data`` once ``verify`` accepts
        the temporary copy; returns the backup path. The spec's owner/group/mode apply
        (only to a new file with ``attrs_when_created_only``)."""
        path = self.spec.path
        backup = backups.save(os.path.realpath(path) if os.path.islink(path) else path)
        created = self._original is None
        attrs = self.spec.file_attrs() if created or not attrs_when_created_only else {}
        atomic_write(path, data, verify=verify, **attrs)
        self._original = data
        return backup
