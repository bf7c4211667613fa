# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading a file whole: never a blocking open, never an unbounded read.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

Every file the stores read whole goes through :func:`read_bytes`: a one-file store (and its
re-read before it is replaced), each certificate file of a folder store, the run's manifest.
A FIFO would block the open until a writer comes, a device may never end, a huge file would
be read into memory: each is refused with a named error instead, by ``stat`` before the open
and by ``fstat`` after it (the open does not wait, so one swapped in between cannot block).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Optional

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    IO_ERROR,
    UNKNOWN_FORMAT,
    UNSUPPORTED,
    StoreError,
)

# A file bigger than this is refused unread (the largest trust stores are a few MiB).
MAX_READ_SIZE = 64 * 1024 * 1024
# Opening never waits (a FIFO that has no writer) nor takes a terminal.
_NO_WAIT = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)


def _os_error(action: str, path: str, exc: OSError) -> StoreError:
    """StoreError(IO_ERROR) "cannot <action> <path>: <why>", the cause in plain words."""
    if exc.errno in (errno.EROFS,):
        why = "read-only file system"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        why = "permission denied"
    elif exc.errno == errno.ENOSPC:
        why = "no space left on device"
    else:
        why = exc.strerror or str(exc)
    return StoreError(IO_ERROR, "cannot %s %s: %s" % (action, path, why))


def _not_a_file(path: str, mode: int) -> Optional[StoreError]:
    """UNKNOWN_FORMAT for a folder, FIFO, socket or device where a file is expected."""
    if stat.S_ISREG(mode):
        return None
    kind = "folder" if stat.S_ISDIR(mode) else "FIFO" if stat.S_ISFIFO(mode) else (
        "socket" if stat.S_ISSOCK(mode) else "device")
    return StoreError(UNKNOWN_FORMAT, "%s is a %s, not a file: not read" % (path, kind))


def read_bytes(path: str) -> Optional[bytes]:
    """The content of the regular file ``path`` (through links); None when it does not exist.

    A folder, FIFO, socket or device (or a link to one) is StoreError(UNKNOWN_FORMAT), never
    opened for a blocking read; a file over MAX_READ_SIZE is StoreError(UNSUPPORTED), never
    read into memory (nor one that grows past it while it is read); any other failure
    IO_ERROR.
    """
    too_large = StoreError(UNSUPPORTED, "%s is larger than %d MiB: not a keystore or certificate "
                           "file, not read" % (path, MAX_READ_SIZE // (1024 * 1024)))
    try:
        refused = _not_a_file(path, os.stat(path).st_mode)
        if refused is not None:
            raise refused
        fd = os.open(path, os.O_RDONLY | _NO_WAIT)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            refused = _not_a_file(path, info.st_mode)  # replaced since the stat
            if refused is not None:
                raise refused
            if info.st_size > MAX_READ_SIZE:
                raise too_large
            data = handle.read(MAX_READ_SIZE + 1)  # the file may grow meanwhile
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _os_error("read", path, exc)
    if len(data) > MAX_READ_SIZE:
        raise too_large
    return data
