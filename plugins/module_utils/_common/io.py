# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backups and atomic, verified file replacement.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

Every write is: back up, write to a temporary file in the same folder, fsync, give it
the owner/group/mode of the file it replaces (or the requested ones), let the caller
verify the temporary file by re-reading it, rename over the original, fsync the
folder. If anything fails the original is untouched and the temporary file removed.
"""

from __future__ import annotations

import errno
import grp
import json
import os
import pwd
import shutil
import stat
import tempfile
import time
from typing import Callable, Optional

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import IO_ERROR, StoreError


def _os_error(action: str, path: str, exc: OSError) -> StoreError:
    if exc.errno in (errno.EROFS,):
        why = "read-only file system"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        why = "permission denied"
    elif exc.errno == errno.ENOSPC:
        why = "no space left on device"
    else:
        why = exc.strerror or str(exc)
    return StoreError(IO_ERROR, "cannot %s %s: %s" % (action, path, why))


def _resolve_owner(owner: Optional[str]) -> int:
    if owner is None:
        return -1
    if owner.isdigit():
        return int(owner)
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise StoreError(IO_ERROR, "unknown owner %r" % owner)


def _resolve_group(group: Optional[str]) -> int:
    if group is None:
        return -1
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise StoreError(IO_ERROR, "unknown group %r" % group)


def _mode(mode: Optional[str]) -> Optional[int]:
    if mode is None:
        return None
    try:
        return int(str(mode), 8)
    except ValueError:
        raise StoreError(IO_ERROR, "mode %r is not an octal number" % mode)


class Backups:
    """Copies of the files a run changes, under ``<backup_dir>/<run_id>/``.

    Each copy keeps the absolute path of the original below the run folder, and a
    ``manifest.jsonl`` line records (original, copy, action) so a rollback can put
    every file back, including files the run created (action ``created``: the
    rollback removes them).
    """

    def __init__(self, backup_dir: Optional[str], run_id: Optional[str]) -> None:
        self.enabled = bool(backup_dir)
        self.run_id = run_id or time.strftime("%Y%m%dT%H%M%S")
        self.root = os.path.join(backup_dir, self.run_id) if backup_dir else None

    def _record(self, root: str, original: str, copy: Optional[str], action: str) -> None:
        line = json.dumps({"path": original, "backup": copy, "action": action},
                          sort_keys=True)
        with open(os.path.join(root, "manifest.jsonl"), "a") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def save(self, path: str) -> Optional[str]:
        """Copy ``path`` (file or symlink) into the run folder; None when disabled."""
        root = self.root
        if root is None:
            return None
        absolute = os.path.abspath(path)
        target = os.path.join(root, "files", absolute.lstrip(os.sep))
        try:
            os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
            if os.path.lexists(target):
                # Already saved earlier in this run: the first copy is the original.
                return target
            if os.path.islink(absolute):
                os.symlink(os.readlink(absolute), target)
            elif os.path.lexists(absolute):
                shutil.copy2(absolute, target)
                st = os.stat(absolute)
                try:
                    os.chown(target, st.st_uid, st.st_gid)
                except OSError:
                    pass
            else:
                self._record(root, absolute, None, "created")
                return None
            self._record(root, absolute, target, "replaced")
        except OSError as exc:
            raise _os_error("back up", path, exc)
        return target


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, verify: Optional[Callable[[str], None]] = None,
                 owner: Optional[str] = None, group: Optional[str] = None,
                 mode: Optional[str] = None) -> None:
    """Replace ``path`` with ``data`` atomically.

    ``verify(tmp_path)`` is called on the fsynced temporary file before the rename and
    must raise StoreError if the content is not what was planned. Ownership and mode of
    an existing file are kept unless given explicitly; a new file gets 0644 (or
    ``mode``) and the process owner.
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
    try:
        fd, tmp = tempfile.mkstemp(prefix=".%s." % base, suffix=".sne-tmp", dir=folder)
    except OSError as exc:
        raise _os_error("write in", folder, exc)
    try:
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            want_mode = _mode(mode)
            if want_mode is None:
                want_mode = stat.S_IMODE(current.st_mode) if current else 0o644
            os.chmod(tmp, want_mode)
            uid = _resolve_owner(owner)
            gid = _resolve_group(group)
            if current is not None:
                uid = current.st_uid if uid == -1 else uid
                gid = current.st_gid if gid == -1 else gid
            made = os.stat(tmp)
            if uid not in (-1, made.st_uid) or gid not in (-1, made.st_gid):
                os.chown(tmp, uid, gid)
        except OSError as exc:
            raise _os_error("write", tmp, exc)
        if verify is not None:
            verify(tmp)
        try:
            os.rename(tmp, path)
        except OSError as exc:
            raise _os_error("replace", path, exc)
        _fsync_dir(folder)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def remove_file(path: str) -> None:
    """Remove a file or link (after it was backed up); fsync the folder."""
    try:
        os.unlink(path)
    except OSError as exc:
        raise _os_error("remove", path, exc)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))
