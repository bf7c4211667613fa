# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Moving a stray copy into the quarantine: never deleted, never written over, never half.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

A stray ``/opt/app/x.cer`` goes to ``<quarantine_dir>/<run_id>/opt/app/x.cer`` (the layout
``rollback.yml`` moves back from), in folders made mode 0700. A place already taken (an
earlier run of the same run_id quarantined another file of that path, or a folder on the way
is a link or a file) is never written over: the stray is left where it is and reported.

On one file system the move is one ``os.rename``: the file is at its place or in quarantine,
whatever kills the run. Across file systems it is a durable copy (content, mode, owner, times,
SELinux context; fsynced) made under a temporary name in ``<quarantine_dir>/.sne-staging``
(outside every run folder, so a rollback never finds a half copy), renamed to its place, and
only then the original removed. A run killed between the two leaves the same bytes at both
places: the next run sees a place that holds exactly the stray (bytes, mode, owner) and
finishes the move by removing the original. Links are never followed nor moved.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Dict, Optional

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import IO_ERROR, StoreError

# Private helpers of io.py, used as they are (one copy routine, one way to make folders).
from ansible_collections.sne.guichet.plugins.module_utils._common.io import (
    _copy_durably,
    _discard,
    _make_folders,
    _os_error,
    _temporary_path,
    fsync_folder,
    remove_file,
    remove_stale_temporaries,
)

STAGING = ".sne-staging"  # where cross-device copies are made, below the quarantine folder
MOVE, FINISH, TAKEN = "move", "finish", "taken"
_CHUNK = 1024 * 1024


def run_folder(quarantine_dir: str, run_id: str) -> str:
    """``<quarantine_dir>/<run_id>``: the quarantine of one run."""
    return os.path.join(os.path.normpath(quarantine_dir), run_id)


def quarantine_place(quarantine_dir: str, run_id: str, path: str) -> str:
    """``<quarantine_dir>/<run_id><absolute path>``: where ``path`` is quarantined."""
    return os.path.join(run_folder(quarantine_dir, run_id), os.path.abspath(path).lstrip(os.sep))


class Move:
    """The plan for one stray: ``action`` MOVE, FINISH (the place already holds exactly
    it: an interrupted move, only the original is left to remove) or TAKEN (left, ``why``)."""

    def __init__(self, source: str, quarantine_dir: str, run_id: str) -> None:
        self.source = source
        self.quarantine_dir = os.path.normpath(quarantine_dir)
        self.run_root = run_folder(quarantine_dir, run_id)
        self.place = quarantine_place(quarantine_dir, run_id, source)
        self.action = MOVE
        self.why = ""

    def took_effect(self) -> bool:
        """Whether the stray is gone from its place and is in the quarantine (a step after the
        rename, such as a folder fsync, may still have failed)."""
        return not os.path.lexists(self.source) and os.path.lexists(self.place)

    def diff(self) -> Dict[str, str]:
        return {"path": self.source, "quarantine": self.place,
                "before_header": self.source, "after_header": self.place,
                "before": "%s\n" % self.source, "after": "%s\n" % self.place}


def _blocked(run_root: str, folder: str) -> Optional[str]:
    """Why the folders from ``run_root`` down to ``folder`` cannot hold a quarantined file
    (one that exists is a link or not a folder); None when they can (or do not exist yet)."""
    relative = os.path.relpath(folder, run_root)
    folders = [run_root]
    for part in [] if relative == os.curdir else relative.split(os.sep):
        folders.append(os.path.join(folders[-1], part))
    for current in folders:
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return "cannot look at %s: %s" % (current, exc.strerror or exc)
        if not stat.S_ISDIR(st.st_mode):
            return "%s is in the way (%s, not a folder)" % (
                current, "a link" if stat.S_ISLNK(st.st_mode) else "a file")
    return None


def _same_file(source: str, place: str, st: os.stat_result) -> bool:
    """Whether ``place`` is a regular file with the bytes, mode and owner of ``source``."""
    try:
        there = os.lstat(place)
        if not stat.S_ISREG(there.st_mode) or (there.st_size, there.st_mode, there.st_uid,
                                               there.st_gid) != (st.st_size, st.st_mode,
                                                                 st.st_uid, st.st_gid):
            return False
        with open(source, "rb") as one, open(place, "rb") as other:
            while True:
                chunk = one.read(_CHUNK)
                if chunk != other.read(_CHUNK):
                    return False
                if not chunk:
                    return True
    except OSError:
        return False


def plan_move(source: str, quarantine_dir: str, run_id: str) -> Optional[Move]:
    """What moving ``source`` into the quarantine of ``run_id`` takes; None when ``source``
    is no longer a regular file (gone, or replaced by a link or something else)."""
    try:
        st = os.lstat(source)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    move = Move(source, quarantine_dir, run_id)
    move.why = _blocked(move.run_root, os.path.dirname(move.place)) or ""
    if not move.why and os.path.lexists(move.place):
        if _same_file(source, move.place, st):
            move.action = FINISH
            return move
        move.why = "%s is already there" % move.place
    if move.why:
        move.action = TAKEN
    return move


def apply_move(move: Move) -> None:
    """Carry out a MOVE or FINISH plan; StoreError(IO_ERROR) naming the file and the cause,
    the stray then left where it was (byte-identical) and nothing of it in the quarantine."""
    source, place = move.source, move.place
    if move.action == FINISH:
        remove_file(source)
        return
    folder = os.path.dirname(place)
    _refuse_if_taken(move)  # a link on the way is never followed, not even to make a folder
    try:
        _make_folders(folder)
    except OSError as exc:
        raise _os_error("make the quarantine folder", folder, exc)
    _refuse_if_taken(move)  # taken meanwhile by another run
    try:
        os.rename(source, place)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise _os_error("move %s to" % source, place, exc)
        _move_across(source, place, move.quarantine_dir)
        return
    fsync_folder(folder)
    fsync_folder(os.path.dirname(os.path.abspath(source)))


def clean_staging(quarantine_dir: str) -> None:
    """Remove what killed runs left in the staging folder (half copies), if it is there."""
    staging = os.path.join(os.path.normpath(quarantine_dir), STAGING)
    if os.path.isdir(staging):
        remove_stale_temporaries(staging)


def _refuse_if_taken(move: Move) -> None:
    why = _blocked(move.run_root, os.path.dirname(move.place)) or (
        "%s is already there" % move.place if os.path.lexists(move.place) else None)
    if why:
        raise StoreError(IO_ERROR, "cannot quarantine %s: %s" % (move.source, why))


def _move_across(source: str, place: str, quarantine_dir: str) -> None:
    """The move between two file systems: staged durable copy, rename to its place, then
    the original removed (the copy taken back if it cannot be)."""
    staging = os.path.join(quarantine_dir, STAGING)
    try:
        _make_folders(staging)
        remove_stale_temporaries(staging)
        staged = _temporary_path(staging, os.path.basename(source))
        _copy_durably(source, staged)
    except OSError as exc:
        raise _os_error("copy %s into" % source, staging, exc)
    try:
        if not _same_file(source, staged, os.lstat(source)):
            raise StoreError(IO_ERROR, "cannot quarantine %s: the copy in %s is not identical "
                             "to it" % (source, staging))
        os.rename(staged, place)
    except OSError as exc:
        _discard(staged)
        raise _os_error("move the copy of %s to" % source, place, exc)
    except BaseException:
        _discard(staged)
        raise
    fsync_folder(os.path.dirname(place))
    try:
        remove_file(source)
    except StoreError as exc:
        _discard(place)  # the stray stays where it was: no copy of it left in the quarantine
        fsync_folder(os.path.dirname(place))
        raise StoreError(IO_ERROR, "%s (copied to %s, copy removed again)" % (exc.reason, place))
