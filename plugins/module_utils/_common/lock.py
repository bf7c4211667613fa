# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One exclusive lock per store, so two runs on the same store take turns.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

A run locks every store it converges for the whole load -> plan -> apply (check mode
too), so no other run can change a store between the moment it is read and the moment
it is replaced. The locks of a run are taken in one order (sorted real paths), so two
runs over overlapping store lists cannot deadlock; they wait at most ``timeout``
seconds in all, then the stores not locked fail with code ``locked`` and the holder's
pid, run and start time.

Where: one file per store in a per-host folder, ``/run/lock/sne-guichet/<sha256 of the
store's real path>`` (``sne-guichet-<uid>`` for a user other than root; ``/var/lock``,
then the temporary folder, where ``/run/lock`` cannot be used). Not next to the store:
that would fail when the store's folder is read-only even if nothing is to be written,
leave a file in the store's folder (a pem_dir or anchors folder the scan, the report and
our own changed-since-read check look at), and would have to be created in folders that
are not ours. The real path makes a store reached through a symlink the same lock. The
folder is local to the host: a store on a network share written by two hosts is not
serialised across hosts.

The lock is ``flock`` on an open descriptor: the kernel drops it when its process ends,
however it ends, so a lock file left by a killed run never blocks. A holder removes its
file before it lets go; a waiter that then holds a removed file sees that the name no
longer leads to it and tries again (no two holders, no file left after a clean run).
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import hashlib
import os
import re
import stat
import tempfile
import time
from typing import Dict, List, Optional, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import LOCKED, StoreError

DEFAULT_TIMEOUT = 60
# Where the lock folder may go, first usable wins (then tempfile.gettempdir()).
LOCK_BASES: Tuple[str, ...] = ("/run/lock", "/var/lock")
_HOLDER = re.compile(r"pid (\d+) since (\S+) run (.*)")
_POLL_FIRST, _POLL_MAX = 0.01, 0.2


def _unsafe(folder: str, st: os.stat_result) -> Optional[str]:
    if not stat.S_ISDIR(st.st_mode):
        return "is not a folder (a link or a file)"
    if st.st_uid != os.geteuid():
        return "belongs to uid %d, not %d" % (st.st_uid, os.geteuid())
    if st.st_mode & 0o022:
        return "is writable by others (mode %o)" % stat.S_IMODE(st.st_mode)
    return None


def lock_folder() -> str:
    """The folder of this user's store locks, made if needed (mode 0700).

    StoreError(LOCKED) when none can be made, or when the folder is there but is not a
    private folder of this user (a link, another owner, writable by others): its locks
    could be taken or removed by someone else.
    """
    name = "sne-guichet" if os.geteuid() == 0 else "sne-guichet-%d" % os.geteuid()
    bases: List[str] = []
    for base in LOCK_BASES + (tempfile.gettempdir(),):
        if os.path.isdir(base) and os.path.realpath(base) not in bases:
            bases.append(os.path.realpath(base))
    tried = []
    for base in bases:
        folder = os.path.join(base, name)
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            tried.append("%s: %s" % (folder, exc.strerror or exc))
            continue
        why = _unsafe(folder, os.lstat(folder))
        if why:
            raise StoreError(LOCKED, "the lock folder %s %s; nothing done (remove it or fix "
                             "it)" % (folder, why))
        return folder
    raise StoreError(LOCKED, "no folder to keep the store locks in (%s); nothing done"
                     % "; ".join(tried or ["no %s" % ", ".join(LOCK_BASES)]))


class StoreLock:
    """The lock of one store (by its real path) in ``folder``."""

    def __init__(self, real_path: str, folder: str, run_id: str) -> None:
        self.real_path = real_path
        self.run_id = run_id
        self.file = os.path.join(folder, hashlib.sha256(os.fsencode(real_path)).hexdigest())
        self.fd: Optional[int] = None

    def _try(self) -> Optional[bool]:
        """True: now ours; False: held by another; None: the file went away, try again."""
        fd = os.open(self.file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                return False
            raise
        try:
            now = os.stat(self.file, follow_symlinks=False)
        except FileNotFoundError:
            now = None
        mine = os.fstat(fd)
        if now is None or (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
            os.close(fd)  # the holder before us removed it as we opened it
            return None
        since = datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(
            timespec="seconds")
        line = "pid %d since %s run %s\nstore %s\n" % (os.getpid(), since, self.run_id,
                                                       self.real_path)
        os.ftruncate(fd, 0)
        os.pwrite(fd, line.encode("utf-8", "surrogateescape"), 0)
        self.fd = fd
        return True

    def holder(self) -> str:
        """Who holds the lock, as its file says: ``pid N (run X) since T``."""
        try:
            with open(self.file, "rb") as handle:
                first = handle.read(4096).decode("utf-8", "replace").split("\n", 1)[0]
        except OSError:
            first = ""
        found = _HOLDER.match(first)
        if not found:
            return "another run (it has not said which yet)"
        return "pid %s (run %s) since %s" % (found.group(1), found.group(3), found.group(2))

    def acquire(self, deadline: float, store: str) -> None:
        """Take the lock, waiting until ``deadline`` (time.monotonic()); StoreError(LOCKED)
        naming ``store`` and the holder if it is still held then."""
        start = time.monotonic()
        delay = _POLL_FIRST
        while True:
            try:
                got = self._try()
            except OSError as exc:
                raise StoreError(LOCKED, "cannot lock %s (%s): %s; nothing done"
                                 % (store, self.file, exc.strerror or exc))
            if got:
                return
            now = time.monotonic()
            if now >= deadline:
                shown = store if os.path.abspath(store) == self.real_path else \
                    "%s (%s)" % (store, self.real_path)
                raise StoreError(LOCKED, "%s is locked by %s; waited %.1f s; nothing done, "
                                 "run again when it has finished"
                                 % (shown, self.holder(), now - start))
            if got is False:
                time.sleep(min(delay, deadline - now))
                delay = min(delay * 2, _POLL_MAX)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.file)  # still ours: nobody else removes it while we hold it
        except OSError:
            pass
        os.close(self.fd)  # the kernel drops the lock with the last descriptor
        self.fd = None


class StoreLocks:
    """The locks of all the stores of a run: taken in sorted real-path order, within one
    ``timeout`` for all, held until :meth:`release` (or the end of the ``with`` block).

    ``refused(path)`` is the StoreError(LOCKED) of a store that could not be locked (the
    run must not touch it), None for a locked one. Paths that lead to the same file
    share one lock.
    """

    def __init__(self, paths: List[str], timeout: float, run_id: str,
                 folder: Optional[str] = None) -> None:
        self.paths = list(paths)
        self.timeout = timeout
        self.run_id = run_id
        self.folder = folder
        self.held: List[StoreLock] = []
        self.errors: Dict[str, StoreError] = {}

    def acquire(self) -> StoreLocks:
        reals = {path: os.path.realpath(path) for path in self.paths}
        first: Dict[str, str] = {}  # real path -> the first path given for it
        for path in self.paths:
            first.setdefault(reals[path], path)
        by_real: Dict[str, StoreError] = {}
        try:
            folder = self.folder or lock_folder()
        except StoreError as exc:
            by_real = dict.fromkeys(first, exc)
        else:
            deadline = time.monotonic() + self.timeout
            try:
                for real_path in sorted(first):
                    lock = StoreLock(real_path, folder, self.run_id)
                    try:
                        lock.acquire(deadline, first[real_path])
                    except StoreError as exc:
                        by_real[real_path] = exc
                        continue
                    self.held.append(lock)
            except BaseException:
                self.release()
                raise
        self.errors = {path: by_real[reals[path]] for path in self.paths if reals[path] in by_real}
        return self

    def refused(self, path: str) -> Optional[StoreError]:
        return self.errors.get(path)

    def release(self) -> None:
        while self.held:
            self.held.pop().release()

    def __enter__(self) -> StoreLocks:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()
