# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backups and atomic, verified file replacement.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

Every write is: back up, write to a temporary file in the same folder, give it the
owner/group/mode and the SELinux context of the file it replaces (or the requested ones),
fsync, let the caller verify the temporary file by re-reading it, rename over the
original, fsync the folder. If anything fails the original is untouched and the
temporary file removed. A new file gets its folder's default SELinux context.

A backup is written the same way and only then listed in the run's manifest: a copy the
manifest does not list is not a backup. Temporary names carry the writer's pid, so the
leftovers of a killed run are told from the files of a live one (remove_stale_temporaries).
Files are read (``read_bytes``: bounded, never a blocking open) by ``reading.py``.
"""

from __future__ import annotations

import errno
import fcntl
import grp
import json
import os
import pwd
import re
import shutil
import stat
import tempfile
import time
from contextlib import suppress
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import IO_ERROR, StoreError
from ansible_collections.sne.guichet.plugins.module_utils._common.reading import _os_error, read_bytes

SELINUX_XATTR = "security.selinux"
# getxattr errors that mean "no context to keep": no label, no xattr support, no file.
_NO_CONTEXT = (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOENT)
# fsync errors of a file system that cannot fsync a folder at all (some FUSE and network
# ones): nothing more can be done there, and refusing every write would make them unusable.
_NO_FOLDER_FSYNC = (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP)
MANIFEST = "manifest.jsonl"
TMP_SUFFIX = ".sne-tmp"
# Our temporary names: ".<name>.<pid>-<8 random>.sne-tmp" (files and links), and the
# ".<name>.<8 random>.sne-tmp" of the versions before the pid was put in the name.
_TEMPORARY = re.compile(r"\..+\.(?:(?P<pid>[0-9]{1,10})-)?[a-z0-9_]{8}\.sne-tmp", re.DOTALL)
# When this process began writing (an Ansible module is a new process for each task).
_STARTED = time.time()


def _resolve_id(value: Optional[str], lookup: Callable[[str], int], what: str) -> int:
    """A numeric uid/gid from a name or number; -1 (keep) for None."""
    if value is None:
        return -1
    if value.isdigit():
        return int(value)
    try:
        return lookup(value)
    except KeyError:
        raise StoreError(IO_ERROR, "unknown %s %r" % (what, value))


def _mode(mode: Optional[str]) -> Optional[int]:
    if mode is None:
        return None
    try:
        return int(str(mode), 8)
    except ValueError:
        raise StoreError(IO_ERROR, "mode %r is not an octal number" % mode)


# --------------------------------------------------------------------------- SELinux


def selinux_context(path: str) -> Optional[bytes]:
    """The SELinux context of ``path`` (through links), or None when it has none.

    No file, no label, a file system or platform without extended attributes: None.
    """
    getxattr = getattr(os, "getxattr", None)
    if getxattr is None:
        return None
    try:
        return getxattr(path, SELINUX_XATTR)
    except OSError as exc:
        if exc.errno in _NO_CONTEXT:
            return None
        raise _os_error("read the SELinux context of", path, exc)


def set_selinux_context(path: str, context: Optional[bytes], tolerate_unsupported: bool = False
                        ) -> None:
    """Give ``path`` the SELinux ``context`` (nothing when None); StoreError(IO_ERROR) if
    it cannot be set (with ``tolerate_unsupported``, a file system without labels is
    accepted: a backup folder may live on one)."""
    if context is None:
        return
    try:
        os.setxattr(path, SELINUX_XATTR, context)
    except OSError as exc:
        if tolerate_unsupported and exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return
        label = context.rstrip(b"\0").decode("utf-8", "replace")
        raise StoreError(IO_ERROR, "cannot give %s the SELinux context %s: %s"
                         % (path, label, exc.strerror or exc))


# --------------------------------------------------------------------------- durability


def fsync_folder(folder: str) -> None:
    """Make durable a rename, unlink, link or mkdir in ``folder``; StoreError(IO_ERROR) if
    it fails, except where a folder cannot be fsynced at all (``_NO_FOLDER_FSYNC``)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        raise _os_error("open folder", folder, exc)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NO_FOLDER_FSYNC:
            raise _os_error("fsync folder", folder, exc)
    finally:
        os.close(fd)


def _temporary_prefix(base: str) -> str:
    return ".%s.%d-" % (base[:200], os.getpid())


def _temporary_path(folder: str, base: str) -> str:  # for a link: mkstemp makes files
    return os.path.join(folder, _temporary_prefix(base) + os.urandom(4).hex() + TMP_SUFFIX)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process; no such pid at all
        return False
    except OSError:  # EPERM: another user's process
        pass
    return True


def stale_leftovers(folder: str, pattern: re.Pattern) -> List[Tuple[str, os.stat_result]]:
    """(name, lstat) of the entries named by ``pattern`` that killed runs left in ``folder``:
    changed before this process started AND, if the name has a ``pid`` group, no such process
    runs. The pid keeps what a live run (even one older than us) writes; the age covers a pid
    we cannot see (a pid namespace, a shared folder) and names without one."""
    found: List[Tuple[str, os.stat_result]] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return found
    for name in names:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        try:
            st = os.lstat(os.path.join(folder, name))
        except OSError:
            continue
        pid = match.groupdict().get("pid")
        if st.st_mtime < _STARTED and not (pid and _running(int(pid))):
            found.append((name, st))
    return found


def remove_stale_folders(folder: str, pattern: re.Pattern) -> List[str]:
    """Remove the private folders named by ``pattern`` that killed runs left in ``folder``
    (:func:`stale_leftovers`): only a folder (not a link) of this user, private (0700); their
    names. Best effort (scratch folders of keytool and certutil, NSS working copies)."""
    removed: List[str] = []
    for name, st in stale_leftovers(folder, pattern):
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not stat.S_IMODE(st.st_mode) & 0o077:
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
            removed.append(name)
    return removed


def remove_stale_temporaries(folder: str) -> List[str]:
    """Remove our temporary files and links (never a folder) that killed runs left in
    ``folder`` (:func:`stale_leftovers`); their names. Best effort: a leftover is harmless
    (scans skip *.sne-tmp), an unwritable folder is reported by the write itself."""
    removed: List[str] = []
    for name, st in stale_leftovers(folder, _TEMPORARY):
        if not stat.S_ISDIR(st.st_mode):
            with suppress(OSError):
                os.unlink(os.path.join(folder, name))  # garbage: no folder fsync needed
                removed.append(name)
    return removed


def _discard(path: str) -> None:
    """Remove a temporary file or link left by a failed step, if it is there."""
    with suppress(OSError):
        os.unlink(path)


def _make_folders(folder: str) -> None:
    """``os.makedirs(folder)``, each new folder mode 0700 and fsynced into its parent."""
    parent = os.path.dirname(folder) or os.curdir
    if os.path.isdir(folder):
        return
    _make_folders(parent)
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        if not os.path.isdir(folder):
            raise
        return  # made meanwhile by another run
    fsync_folder(parent)


def _copy_durably(source: str, target: str) -> None:
    """Copy a file (content, mode, times, owner, SELinux context) or a link to ``target``:
    under a temporary name in its folder, fsynced, renamed, the folder fsynced."""
    folder, base = os.path.split(target)
    remove_stale_temporaries(folder)
    link = os.path.islink(source)
    if link:
        tmp = _temporary_path(folder, base)
    else:
        fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(base), suffix=TMP_SUFFIX, dir=folder)
        os.close(fd)
    try:
        if link:
            os.symlink(os.readlink(source), tmp)
        else:
            shutil.copy2(source, tmp)
            set_selinux_context(tmp, selinux_context(source), tolerate_unsupported=True)
            st = os.stat(source)
            with suppress(OSError):
                os.chown(tmp, st.st_uid, st.st_gid)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.rename(tmp, target)
    except BaseException:
        _discard(tmp)
        raise
    fsync_folder(folder)


# --------------------------------------------------------------------------- backups


class Backups:
    """Copies of the files a run changes, under ``<backup_dir>/<run_id>/``.

    Each copy keeps the absolute path of the original below the run folder, and a
    ``manifest.jsonl`` line records (original, copy, action) so a rollback can put
    every file back, including files the run created (action ``created``: the
    rollback removes them). A copy keeps the owner, mode, times and SELinux context.
    """

    def __init__(self, backup_dir: Optional[str], run_id: Optional[str]) -> None:
        self.enabled = bool(backup_dir)
        self.run_id = run_id or time.strftime("%Y%m%dT%H%M%S")
        self.root = os.path.join(backup_dir, self.run_id) if backup_dir else None

    @classmethod
    def of(cls, backups: Union[Backups, str, None]) -> Backups:
        """Accept a Backups object, a backup folder, or None (no backup)."""
        if isinstance(backups, Backups):
            return backups
        return cls(backups, None)

    def recorded(self) -> Dict[str, Dict[str, Any]]:
        """The first manifest line of each path (whole lines only: older versions could cut one)."""
        if self.root is None:
            return {}
        data = read_bytes(os.path.join(self.root, MANIFEST))
        if data is None:
            return {}
        lines = data.split(b"\n")[:-1]
        first: Dict[str, Dict[str, Any]] = {}
        for line in lines:
            try:
                entry = json.loads(line.decode("utf-8"))
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                first.setdefault(entry["path"], entry)
        return first

    def _record(self, root: str, original: str, copy: Optional[str], action: str) -> None:
        """Add a manifest line: the manifest is rewritten with it by :func:`atomic_write`, so
        no kill or full disk leaves a line cut for its other readers (rollback.yml), under a
        lock of the run folder (runs of one run_id at once; best effort)."""
        line = (json.dumps({"path": original, "backup": copy, "action": action},
                           sort_keys=True) + "\n").encode("utf-8")
        path = os.path.join(root, MANIFEST)
        fd = os.open(root, os.O_RDONLY)
        try:
            with suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
            kept = read_bytes(path) or b""
            kept = kept[:kept.rfind(b"\n") + 1]  # not a line an older version left cut
            atomic_write(path, kept + line, mode=None if kept else "0600")
        finally:
            os.close(fd)

    def save(self, path: str) -> Optional[str]:
        """Back up ``path`` (file or link) durably: the copy fsynced and renamed into place,
        its folders fsynced, then its manifest line added, fsynced. Returns the copy;
        None when disabled or when ``path`` does not exist (recorded as ``created``).

        The first manifest line of a path wins: a rerun of a killed run neither trusts a
        copy without its line (made again) nor backs up a store it already replaced. Any
        failure: StoreError(IO_ERROR), no copy left, no line; do not change ``path``.
        """
        root = self.root
        if root is None:
            return None
        absolute = os.path.abspath(path)
        first = self.recorded().get(absolute)
        if first is not None:
            return first.get("backup")
        target = os.path.join(root, "files", absolute.lstrip(os.sep))
        try:
            if not os.path.lexists(absolute):
                _make_folders(root)
                self._record(root, absolute, None, "created")
                return None
            _make_folders(os.path.dirname(target))
            _copy_durably(absolute, target)
            try:
                self._record(root, absolute, target, "replaced")
            except BaseException:
                with suppress(StoreError):
                    if absolute not in self.recorded():  # not listed: not a backup
                        _discard(target)
                raise
        except OSError as exc:
            raise _os_error("back up %s in" % path, root, exc)
        return target


# --------------------------------------------------------------------------- writes


def _settle(tmp: str, current: Optional[os.stat_result], owner: Optional[str],
            group: Optional[str], mode: Optional[str]) -> None:
    """Give the temporary file the mode and owner of the file it replaces (or those asked)."""
    want_mode = _mode(mode)
    if want_mode is None:
        want_mode = stat.S_IMODE(current.st_mode) if current else 0o644
    os.chmod(tmp, want_mode)
    uid = _resolve_id(owner, lambda name: pwd.getpwnam(name).pw_uid, "owner")
    gid = _resolve_id(group, lambda name: grp.getgrnam(name).gr_gid, "group")
    if current is not None:
        uid = current.st_uid if uid == -1 else uid
        gid = current.st_gid if gid == -1 else gid
    made = os.stat(tmp)
    if uid not in (-1, made.st_uid) or gid not in (-1, made.st_gid):
        os.chown(tmp, uid, gid)


def atomic_write(path: str, data: bytes, verify: Optional[Callable[[str], None]] = None,
                 owner: Optional[str] = None, group: Optional[str] = None,
                 mode: Optional[str] = None, context: Optional[bytes] = None) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    ``verify(tmp_path)`` is called on the fsynced temporary file before the rename and
    must raise StoreError if the content is not what was planned. Ownership, mode and
    SELinux context of an existing file are kept unless given (``context``: the raw
    ``security.selinux`` value); a new file gets 0644 (or ``mode``), the process owner and
    its folder's default context. Leftovers of killed runs are removed first.
    """
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    try:
        current = os.stat(path)  # follows a symlinked store to its real file
    except OSError:
        current = None
    if os.path.islink(path):
        real = os.path.realpath(path)
        folder, base = os.path.dirname(real), os.path.basename(real)
        path = real
    if context is None and current is not None:
        context = selinux_context(path)
    remove_stale_temporaries(folder)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(base), suffix=TMP_SUFFIX, dir=folder)
    except OSError as exc:
        raise _os_error("write in", folder, exc)
    try:
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                _settle(tmp, current, owner, group, mode)
                set_selinux_context(tmp, context)
                os.fsync(handle.fileno())  # content and attributes, before the rename
        except OSError as exc:
            raise _os_error("write", path, exc)
        if verify is not None:
            verify(tmp)
        try:
            os.rename(tmp, path)
        except OSError as exc:
            raise _os_error("replace", path, exc)
        fsync_folder(folder)
    except BaseException:
        _discard(tmp)
        raise


def symlink_atomic(target: str, path: str) -> None:
    """Make ``path`` a link to ``target``, replacing what is there in one rename; durable."""
    folder = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(folder)
    tmp = _temporary_path(folder, os.path.basename(path))
    try:
        os.symlink(target, tmp)
    except OSError as exc:
        raise _os_error("create link in", folder, exc)
    try:
        os.rename(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise _os_error("replace", path, exc)
    fsync_folder(folder)


def remove_file(path: str) -> None:
    """Remove a file or link (after it was backed up); fsync the folder."""
    try:
        os.unlink(path)
    except OSError as exc:
        raise _os_error("remove", path, exc)
    fsync_folder(os.path.dirname(os.path.abspath(path)))
