# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backups and atomic, verified file replacement.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

Every write is: back up, write to a temporary file in the same folder, fsync, give it
the owner/group/mode and the SELinux context of the file it replaces (or the requested
ones), let the caller verify the temporary file by re-reading it, rename over the
original, fsync the folder. If anything fails the original is untouched and the
temporary file removed. A new file gets its folder's default SELinux context.
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
from contextlib import suppress
from typing import Callable, Optional, Union

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import IO_ERROR, StoreError

SELINUX_XATTR = "security.selinux"
# getxattr errors that mean "no context to keep": no label, no xattr support, no file.
_NO_CONTEXT = (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOENT)


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


def read_bytes(path: str) -> Optional[bytes]:
    """The content of ``path`` (through links); None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _os_error("read", path, exc)


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
                set_selinux_context(target, selinux_context(absolute), tolerate_unsupported=True)
                st = os.stat(absolute)
                with suppress(OSError):
                    os.chown(target, st.st_uid, st.st_gid)
            else:
                self._record(root, absolute, None, "created")
                return None
            self._record(root, absolute, target, "replaced")
        except OSError as exc:
            raise _os_error("back up", path, exc)
        return target


# --------------------------------------------------------------------------- writes


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


def _discard(path: str) -> None:
    """Remove a temporary file or link left by a failed step, if it is there."""
    with suppress(OSError):
        os.unlink(path)


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
    """Replace ``path`` with ``data`` atomically.

    ``verify(tmp_path)`` is called on the fsynced temporary file before the rename and
    must raise StoreError if the content is not what was planned. Ownership, mode and
    SELinux context of an existing file are kept unless given explicitly (``context``:
    the raw ``security.selinux`` value); a new file gets 0644 (or ``mode``), the process
    owner and its folder's default context.
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
            _settle(tmp, current, owner, group, mode)
        except OSError as exc:
            raise _os_error("write", tmp, exc)
        set_selinux_context(tmp, context)
        if verify is not None:
            verify(tmp)
        try:
            os.rename(tmp, path)
        except OSError as exc:
            raise _os_error("replace", path, exc)
        _fsync_dir(folder)
    except BaseException:
        _discard(tmp)
        raise


def symlink_atomic(target: str, path: str) -> None:
    """Make ``path`` a link to ``target``, replacing what is there in one rename."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, ".%s.%s.sne-tmp" % (os.path.basename(path), os.urandom(4).hex()))
    try:
        os.symlink(target, tmp)
    except OSError as exc:
        raise _os_error("create link in", folder, exc)
    try:
        os.rename(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise _os_error("replace", path, exc)


def remove_file(path: str) -> None:
    """Remove a file or link (after it was backed up); fsync the folder."""
    try:
        os.unlink(path)
    except OSError as exc:
        raise _os_error("remove", path, exc)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))
