# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_common/reading: read_bytes never opens for a blocking read, never reads without bound.

It reads every one-file store, its re-read before the write (check_unchanged), each
certificate file of a folder store and the run's manifest (Backups). Every wait on a FIFO is bounded
(``corpus.in_thread``: the test fails instead of hanging).
"""

from __future__ import annotations

import os
import socket

import pytest
from hostile import corpus

from ansible_collections.sne.guichet.plugins.module_utils._common import reading
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    IO_ERROR,
    UNKNOWN_FORMAT,
    UNSUPPORTED,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.io import MANIFEST, Backups
from ansible_collections.sne.guichet.plugins.module_utils._common.reading import read_bytes
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, StoreSpec
from ansible_collections.sne.guichet.plugins.module_utils._stores.pem import PemStore


def test_a_file_a_link_and_nothing(tmp_path):
    (tmp_path / "a.pem").write_bytes(b"content\n")
    (tmp_path / "link.pem").symlink_to("a.pem")
    (tmp_path / "dangling.pem").symlink_to("gone.pem")
    assert read_bytes(str(tmp_path / "a.pem")) == b"content\n"
    assert read_bytes(str(tmp_path / "link.pem")) == b"content\n"
    assert read_bytes(str(tmp_path / "none.pem")) is None
    assert read_bytes(str(tmp_path / "dangling.pem")) is None
    with pytest.raises(StoreError) as caught:
        read_bytes(str(tmp_path / "a.pem" / "below"))
    assert caught.value.code == IO_ERROR and caught.value.reason.startswith("cannot read ")


@pytest.mark.parametrize("kind, what", [
    ("folder", "folder"), ("fifo", "FIFO"), ("link to a fifo", "FIFO"), ("socket", "socket"),
    ("/dev/zero", "device"), ("/dev/null", "device")])
def test_what_is_no_file_is_refused_unopened(tmp_path, kind, what):
    path = str(tmp_path / "store")
    fifo = str(tmp_path / "pipe")
    os.mkfifo(fifo)
    sock = None
    if kind == "folder":
        os.mkdir(path)
    elif kind == "fifo":
        os.rename(fifo, path)
        fifo = path
    elif kind == "link to a fifo":
        os.symlink("pipe", path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path)
    else:
        path = kind
    try:
        with pytest.raises(StoreError) as caught:
            corpus.in_thread(lambda: read_bytes(path), fifo)
    finally:
        if sock is not None:
            sock.close()
    assert caught.value.code == UNKNOWN_FORMAT
    assert caught.value.reason == "%s is a %s, not a file: not read" % (path, what)


def test_a_fifo_swapped_in_after_the_stat_is_not_waited_on(tmp_path, monkeypatch):
    """A file when stat looks, a FIFO when open opens: the open does not wait for a writer
    (O_NONBLOCK) and fstat refuses what it opened."""
    path = str(tmp_path / "manifest.jsonl")
    os.mkfifo(path)
    looks = []
    monkeypatch.setattr(reading, "_not_a_file", lambda p, mode, real=reading._not_a_file: (
        looks.append(mode) if not looks else real(p, mode)))  # the first look (stat) passes
    with pytest.raises(StoreError) as caught:
        corpus.in_thread(lambda: read_bytes(path), path)
    assert looks and caught.value.code == UNKNOWN_FORMAT and "is a FIFO" in caught.value.reason


class Reader:
    """A file object that records the size of the file at each read."""

    def __init__(self, handle, reads):
        self.handle, self.reads = handle, reads

    def __enter__(self):
        self.handle.__enter__()
        return self

    def __exit__(self, *exc):
        return self.handle.__exit__(*exc)

    def read(self, size=-1):
        self.reads.append(os.fstat(self.handle.fileno()).st_size)
        return self.handle.read(size)


def test_a_huge_file_is_refused_by_its_size_unread(tmp_path, monkeypatch):
    path = str(tmp_path / "manifest.jsonl")
    with open(path, "wb") as handle:
        handle.truncate(corpus.SIX_GIB)  # sparse
    reads = []
    real_fdopen = reading.os.fdopen
    monkeypatch.setattr(reading.os, "fdopen", lambda fd, *a, **k: Reader(real_fdopen(fd, *a, **k), reads))
    with pytest.raises(StoreError) as caught:
        read_bytes(path)
    assert caught.value.code == UNSUPPORTED and reads == []
    assert caught.value.reason == ("%s is larger than 64 MiB: not a keystore or certificate file, "
                                   "not read" % path)
    (tmp_path / "small").write_bytes(b"x" * 100)
    assert read_bytes(str(tmp_path / "small")) == b"x" * 100 and reads == [100]


def test_a_file_that_grows_past_the_limit_while_read_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "store.pem"
    path.write_bytes(b"x" * 100)
    monkeypatch.setattr(reading, "MAX_READ_SIZE", 10)  # as if it grew past it after fstat
    monkeypatch.setattr(reading.os, "fstat", lambda fd, real=os.fstat: os.stat_result(
        tuple(real(fd))[:6] + (5,) + tuple(real(fd))[7:]))
    with pytest.raises(StoreError) as caught:
        read_bytes(str(path))
    assert caught.value.code == UNSUPPORTED


@pytest.mark.parametrize("swap", ["fifo", "huge"])
def test_a_store_swapped_before_its_write_is_refused_without_waiting(tmp_path, pki, swap):
    """check_unchanged re-reads the store with read_bytes before writing it: a FIFO or a
    huge file put there since the load is refused (no wait, no read), nothing written."""
    path = tmp_path / "bundle.pem"
    with open(os.path.join(pki["dir"], "root.pem"), "rb") as handle:
        path.write_bytes(handle.read())
    with open(os.path.join(pki["dir"], "ac-v5.der"), "rb") as handle:
        present = [CertEntry("ac", handle.read())]
    store = PemStore(StoreSpec(str(path), "pem"), None, None)
    plan = store.plan(store.load(), present, set())
    assert plan.changed
    path.unlink()
    if swap == "fifo":
        os.mkfifo(str(path))
    else:
        with open(str(path), "wb") as handle:
            handle.truncate(corpus.SIX_GIB)
    with pytest.raises(StoreError) as caught:
        corpus.in_thread(lambda: store.apply(plan, None), str(path))
    assert caught.value.code == (UNKNOWN_FORMAT if swap == "fifo" else UNSUPPORTED)
    assert str(path) in caught.value.reason
    assert sorted(os.listdir(str(tmp_path))) == ["bundle.pem"]
    assert os.path.getsize(str(path)) == (0 if swap == "fifo" else corpus.SIX_GIB)


def test_a_manifest_that_is_a_fifo_stops_the_backup_without_waiting(tmp_path):
    """The manifest is read with read_bytes too (which copy is the original, adding a line):
    a FIFO there fails the backup, so the store is not changed, and nothing waits."""
    store = tmp_path / "app.pem"
    store.write_bytes(b"old\n")
    backups = Backups(str(tmp_path / "backups"), "run")
    os.makedirs(backups.root)
    manifest = os.path.join(backups.root, MANIFEST)
    os.mkfifo(manifest)
    with pytest.raises(StoreError) as caught:
        corpus.in_thread(lambda: backups.save(str(store)), manifest)
    assert caught.value.code == UNKNOWN_FORMAT and caught.value.reason == (
        "%s is a FIFO, not a file: not read" % manifest)
    assert os.listdir(backups.root) == [MANIFEST] and store.read_bytes() == b"old\n"
