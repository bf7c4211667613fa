# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backend ``trust_anchors``: the OS trust anchor folders (update-ca-certificates, update-ca-trust).

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

Its policy, built on the shared selection by ``names``: authorities only, unless
``names`` picks. The refresh command runs once, after the files are written.

A run killed between the files and the refresh would leave the OS bundle stale while the
folder is already right, so a rerun would see nothing to do. Before the first write into
the folder, a *refresh-pending mark* is written (atomically, fsynced) in the lock folder
(``_common/lock.py``: ``<sha256 of the folder's real path>.refresh-pending``; not in the
anchor folder, whose every file the refresh command reads), and it is removed only once
the refresh command succeeded. A folder whose mark is there plans the refresh even when
no certificate changes (``details["refresh_pending"]``, a change; check mode only says so).
The lock folder is on ``/run/lock`` (a tmpfs): the mark outlives a killed run, not a reboot.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shlex
from contextlib import suppress
from typing import Any, Callable, List, Optional, Set

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    IO_ERROR,
    TOOL_MISSING,
    UNSUPPORTED,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups, atomic_write, remove_file
from ansible_collections.sne.guichet.plugins.module_utils._common.lock import lock_folder
from ansible_collections.sne.guichet.plugins.module_utils._common.reading import read_bytes
from ansible_collections.sne.guichet.plugins.module_utils._stores._folder import _FolderStore
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, Plan, StoreSpec
from ansible_collections.sne.guichet.plugins.module_utils._x509 import cert_info

PENDING_SUFFIX = ".refresh-pending"


def _is_anchor(entry: CertEntry) -> bool:
    """A CA certificate, or a self-issued v1 certificate (an old-style root)."""
    info = cert_info(entry.der)
    return bool(info["is_ca"] or (info["version"] == 1 and info["self_issued"]))


def _mark_words(data: bytes) -> str:
    """`` (run X, pid N, since T)`` from a mark's content; empty if it cannot be read."""
    try:
        mark = json.loads(data.decode("utf-8"))
        return " (run %s, pid %s, since %s)" % (mark["run"], mark["pid"], mark["since"])
    except (ValueError, KeyError, TypeError):
        return ""


class _AnchorPlan(Plan):
    """The default plan, and whether the refresh an interrupted run left undone is to run."""

    def __init__(self, add: List[CertEntry], remove: List[CertEntry], refresh_pending: bool) -> None:
        super().__init__(add, remove)
        self.refresh_pending = refresh_pending

    @property
    def changed(self) -> bool:
        return bool(self.add or self.remove or self.refresh_pending)


class TrustAnchorStore(_FolderStore):
    """The OS trust anchors folder (Debian ``update-ca-certificates``, RHEL
    ``update-ca-trust``).

    Only CA certificates from ``present`` are installed (a self-issued v1 certificate
    counts as a CA), unless ``spec.names`` picks them. After all files are written the
    refresh command runs, once, only if something changed or a refresh is pending (see the
    module's docstring); the tool is looked up before anything is written (TOOL_MISSING
    leaves the folder untouched).
    """

    TYPE = "debian"
    DEFAULTS = {
        "debian": ("/usr/local/share/ca-certificates", ".crt", "update-ca-certificates"),
        "redhat": ("/etc/pki/ca-trust/source/anchors", ".pem", "update-ca-trust extract"),
    }

    def __init__(self, spec: StoreSpec, run_command: Callable[..., Any],
                 find_tool: Callable[[str], Optional[str]]) -> None:
        if spec.type not in self.DEFAULTS:
            raise StoreError(UNSUPPORTED, "trust anchors of type %r: use debian or redhat"
                             % spec.type)
        if not spec.path:
            spec.path = self.DEFAULTS[spec.type][0]
        super().__init__(spec, run_command, find_tool)
        self.RECURSIVE = spec.type == "debian"  # update-ca-certificates reads subfolders
        self.NEW_EXTENSION = self.DEFAULTS[spec.type][1]
        self._pending: Optional[str] = None  # a mark was found: who left it, as words
        self._mark_file = ""  # the mark's path (load() looks it up)

    def _is_candidate(self, name: str) -> bool:
        if self.spec.type == "debian":
            return name.endswith(".crt")
        return not os.path.basename(name).startswith(".")  # p11-kit reads any file

    def select(self, present: List[CertEntry]) -> List[CertEntry]:
        """What ``names`` selects; without names, the authorities only."""
        chosen = super().select(present)
        if self.spec.names is not None:
            return chosen
        return [entry for entry in chosen if _is_anchor(entry)]

    # ---- the refresh-pending mark

    def mark_path(self) -> str:
        """This folder's refresh-pending mark, in the lock folder (made if needed)."""
        real = os.fsencode(os.path.realpath(self.spec.path))
        return os.path.join(lock_folder(), hashlib.sha256(real).hexdigest() + PENDING_SUFFIX)

    def load(self) -> List[CertEntry]:
        entries = super().load()
        self._mark_file = self.mark_path()
        data = read_bytes(self._mark_file)
        self._pending = None if data is None else _mark_words(data)
        return entries

    def policy(self, entries: List[CertEntry], wanted: List[CertEntry],
               absent: Set[str]) -> Plan:
        """The default plan, plus the refresh a mark says an interrupted run left undone."""
        base = super().policy(entries, wanted, absent)
        if self._pending is not None:
            self.details["refresh_pending"] = self._pending_words(
                self.spec.refresh or self.DEFAULTS[self.spec.type][2], "to run")
        return _AnchorPlan(base.add, base.remove, self._pending is not None)

    def _pending_words(self, command: str, done: str) -> str:
        return "refresh pending from an interrupted run%s: %s %s" % (self._pending, command, done)

    def _mark(self, command: str, run_id: str) -> None:
        """Write the mark (durably) before the first write into the folder."""
        since = datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(
            timespec="seconds")
        data = json.dumps({"store": os.path.realpath(self.spec.path), "command": command,
                           "run": run_id, "pid": os.getpid(), "since": since}, sort_keys=True)
        try:
            atomic_write(self._mark_file, data.encode("utf-8") + b"\n", mode="0600")
        except StoreError as exc:
            raise StoreError(exc.code, "%s: cannot note its refresh as pending (%s); nothing "
                             "written" % (self.spec.path, exc.reason))

    def _unmark(self, untouched: bool = False) -> None:
        """Remove the mark: after the refresh succeeded, or (``untouched``) when the folder
        is still exactly as it was read (a failed change undone: no refresh needed)."""
        if untouched:
            try:
                self.check_unchanged()
            except StoreError:
                return  # changed, or cannot tell: the refresh stays pending
        if os.path.lexists(self._mark_file):
            remove_file(self._mark_file)

    # ---- apply

    def refresh_argv(self) -> List[str]:
        text = self.spec.refresh or self.DEFAULTS[self.spec.type][2]
        argv = shlex.split(text)
        if not argv:
            raise StoreError(UNSUPPORTED, "empty refresh command for %s" % self.spec.path)
        if not os.path.isabs(argv[0]):
            found = self.find_tool(argv[0])
            if not found:
                raise StoreError(TOOL_MISSING, "refresh command %s not found; nothing written "
                                 "to %s" % (argv[0], self.spec.path))
            argv[0] = found
        elif not os.access(argv[0], os.X_OK):
            raise StoreError(TOOL_MISSING, "refresh command %s is not executable; nothing "
                             "written to %s" % (argv[0], self.spec.path))
        return argv

    def _apply(self, plan: Plan, backups: Backups) -> Optional[str]:
        argv = self.refresh_argv()
        command = " ".join(shlex.quote(a) for a in argv)
        ops, expected, _placed = self._file_ops(plan, self._nodes)
        backup = None
        if ops:
            fresh = self._pending is None
            if fresh:
                self._mark(command, backups.run_id)
            writes = [op for op in ops if op[0] != "remove"]
            removes = [op for op in ops if op[0] == "remove"]
            try:
                self._run(writes + removes, expected, plan, backups)
            except StoreError:
                if fresh:
                    with suppress(StoreError):
                        self._unmark(untouched=True)
                raise
            backup = self._backup_path(backups)
        rc, out, err = self.run_command(argv)
        self.details["refresh"] = {"command": command, "rc": rc}
        if rc != 0:
            what = "certificates were written but the refresh command" if ops else \
                "the refresh an interrupted run left pending,"
            raise StoreError(IO_ERROR, "%s: %s %s failed (rc=%s): %s; the files stay written "
                             "(backup: %s) and the refresh stays pending: fix the cause, the "
                             "next run runs it again"
                             % (self.spec.path, what, " ".join(argv), rc,
                                (err or out or "").strip()[:500],
                                backup or ("disabled" if ops else "none needed")))
        try:
            self._unmark()
        except StoreError as exc:
            raise StoreError(exc.code, "%s: refreshed, but %s; the next run refreshes again"
                             % (self.spec.path, exc.reason))
        if self._pending is not None:
            self.details["refresh_pending"] = self._pending_words(command, "run")
            self._pending = None
        return backup
