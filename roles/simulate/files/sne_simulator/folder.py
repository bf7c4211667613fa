# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The drop-folder transport: ``outbox/*.p7m`` in, ``inbox/<message-id>.xml`` out.

A file is taken once its size and mtime held for one poll, moved to ``outbox/processed/``;
the return is written atomically (``atomic_write``: hidden temporary file, fsync, rename).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from typing import TYPE_CHECKING, Dict, Optional, Tuple

from .config import MAX_INPUT_BYTES

if TYPE_CHECKING:
    from .server import Simulator


def atomic_write(folder: str, name: str, data: bytes) -> str:
    """Write ``folder/name`` through a hidden temporary file in the same folder, fsync, rename."""
    path = os.path.join(folder, name)
    temp = os.path.join(folder, ".%s.%d.%s.tmp" % (name, os.getpid(), secrets.token_hex(4)))
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return path


class FolderWatcher:
    """Polls ``outbox`` for ``*.p7m``; a file is taken once its size and mtime held for one poll."""

    def __init__(self, simulator: Simulator, outbox: str, inbox: str, poll: float) -> None:
        self.simulator = simulator
        self.outbox, self.inbox, self.poll = outbox, inbox, poll
        self.processed = os.path.join(outbox, "processed")
        self._seen: Dict[str, Tuple[int, int]] = {}
        self._failed: Dict[str, Tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sne-folder", daemon=True)

    def start(self) -> None:
        for folder in (self.outbox, self.inbox, self.processed):
            os.makedirs(folder, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.scan()
            except Exception as error:  # keep polling whatever happens
                self.simulator.log.write("folder-error", error="%s: %s" % (type(error).__name__, error))

    def scan(self) -> None:
        seen: Dict[str, Tuple[int, int]] = {}
        for entry in sorted(os.scandir(self.outbox), key=lambda e: e.name):
            if entry.name.startswith(".") or not entry.name.lower().endswith(".p7m"):
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            stat = entry.stat(follow_symlinks=False)
            signature = (stat.st_size, stat.st_mtime_ns)
            if self._failed.get(entry.name) == signature:
                continue
            if self._seen.get(entry.name) != signature:
                seen[entry.name] = signature  # still being written, maybe: next poll
                continue
            self._take(entry.name, stat.st_size, signature)
        self._seen = seen

    def _take(self, name: str, size: int, signature: Tuple[int, int]) -> None:
        source = os.path.join(self.outbox, name)
        data: Optional[bytes] = None
        if size <= MAX_INPUT_BYTES:
            with open(source, "rb") as handle:
                data = handle.read(MAX_INPUT_BYTES + 1)
        target = os.path.join(self.processed, name)
        if os.path.exists(target):
            stem, ext = os.path.splitext(name)
            target = os.path.join(self.processed, "%s.%d%s" % (stem, time.time_ns(), ext))
        try:
            os.replace(source, target)
        except OSError as error:
            self._failed[name] = signature
            self.simulator.log.write("folder-error", file=name, error="cannot move to processed/: %s" % error)
        engine = self.simulator.engine
        if data is None:
            engine.drop("folder", engine.new_receipt(), "too large (%d bytes)" % size, file=name)
            return
        engine.submit(data, "folder", self.deliver, file=name, processed=target)

    def deliver(self, key: str, xml: bytes) -> str:
        return atomic_write(self.inbox, key + ".xml", xml)
