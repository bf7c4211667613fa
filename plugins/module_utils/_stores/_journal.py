# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The journal of a folder change: every step backed up first, undone newest first on failure.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

Each step (mkdir, write, symlink, remove, rename) snapshots what it replaces (content,
owner, mode and SELinux context of a file; the target of a link) before it is made, so
:meth:`Journal.rollback` can put the folder back as it was.
"""

from __future__ import annotations

import os
import stat
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import StoreError
from ansible_collections.sne.guichet.plugins.module_utils._common.io import (
    Backups,
    _os_error,
    atomic_write,
    fsync_folder,
    remove_file,
    selinux_context,
    symlink_atomic,
)

Snapshot = Tuple[str, Any, Any]


def snapshot(path: str) -> Snapshot:
    """What is at ``path`` now: (kind, content or link target, (stat, SELinux context))."""
    if os.path.islink(path):
        return ("link", os.readlink(path), None)
    if os.path.isfile(path):
        with open(path, "rb") as handle:
            return ("file", handle.read(), (os.stat(path), selinux_context(path)))
    if os.path.isdir(path):
        return ("dir", None, None)
    return ("none", None, None)


def restore(path: str, snap: Snapshot) -> None:
    """Put ``path`` back as :func:`snapshot` saw it."""
    kind, value, meta = snap
    if kind == "file":
        st, context = meta
        atomic_write(path, value, owner=str(st.st_uid), group=str(st.st_gid),
                     mode="%o" % stat.S_IMODE(st.st_mode), context=context)
    elif kind == "link":
        symlink_atomic(value, path)
    elif kind == "none":
        if os.path.islink(path) or os.path.isfile(path):
            os.unlink(path)
        elif os.path.isdir(path):
            os.rmdir(path)


class Journal:
    """Changes made to a folder, each backed up first and undoable in reverse order."""

    def __init__(self, backups: Backups) -> None:
        self.backups = backups
        self.undo: List[Tuple[str, Callable[[], None]]] = []

    def _saved(self, *paths: str) -> List[Snapshot]:
        snaps = [snapshot(path) for path in paths]
        for path in paths:
            self.backups.save(path)
        return snaps

    def _undo_with(self, what: str, path: str, snap: Snapshot) -> None:
        self.undo.append((what, lambda: restore(path, snap)))

    def mkdir(self, path: str) -> None:
        self.backups.save(path)
        try:
            os.mkdir(path, 0o755)
        except OSError as exc:
            raise _os_error("create folder", path, exc)
        self.undo.append(("rmdir " + path, lambda: os.rmdir(path)))
        fsync_folder(os.path.dirname(os.path.abspath(path)))

    def _step(self, path: str, change: Callable[[], None]) -> None:
        """Make one change of ``path``, undoable. The writers fsync the folder after the
        rename: when that fails the change is made all the same, so it is undone too."""
        (snap,) = self._saved(path)
        try:
            change()
        except (OSError, StoreError):
            if snapshot(path) != snap:
                self._undo_with("restore " + path, path, snap)
            raise
        self._undo_with("restore " + path, path, snap)

    def write(self, path: str, data: bytes, verify: Callable[[str], None],
              attrs: Dict[str, Optional[str]]) -> None:
        created = not os.path.lexists(path)
        self._step(path, lambda: atomic_write(path, data, verify=verify, **(attrs if created else {})))

    def symlink(self, target: str, path: str) -> None:
        self._step(path, lambda: symlink_atomic(target, path))

    def remove(self, path: str) -> None:
        self._step(path, lambda: remove_file(path))

    def rename(self, src: str, dst: str) -> None:
        snap_src, snap_dst = self._saved(src, dst)
        try:
            os.rename(src, dst)
        except OSError as exc:
            raise _os_error("rename %s to" % src, dst, exc)

        def undo() -> None:
            restore(src, snap_src)
            restore(dst, snap_dst)

        self.undo.append(("restore %s and %s" % (src, dst), undo))
        for folder in sorted(set(os.path.dirname(os.path.abspath(p)) for p in (src, dst))):
            fsync_folder(folder)

    def rollback(self) -> List[str]:
        """Undo every step, newest first; return the ones that could not be undone."""
        failed = []
        for what, undo in reversed(self.undo):
            try:
                undo()
            except (OSError, StoreError) as exc:
                failed.append("%s (%s)" % (what, exc))
        self.undo = []
        return failed
