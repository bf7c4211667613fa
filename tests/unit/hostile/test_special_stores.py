"""Declared stores that are no files (a FIFO, a device, a socket) or huge ones, and hostile
zips: refused with a clear error, never opened for a blocking read, never read into memory,
never written.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import stat
import struct
import zipfile

import pytest
from hostile import corpus
from javatools import PASSWORD

from ansible_collections.sne.guichet.plugins.module_utils._bundle import fetch, intake
from ansible_collections.sne.guichet.plugins.module_utils._common import reading
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    UNKNOWN_FORMAT,
    UNSUPPORTED,
    BundleError,
    FetchError,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._stores import base
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, StoreSpec
from ansible_collections.sne.guichet.plugins.module_utils._stores.engine import BACKENDS, converge

ONE_FILE = ("pem", "der", "jks", "pkcs12")


def _special(kind, path):
    """Make a FIFO, socket or character device (the null device's numbers) at ``path``."""
    if kind == "fifo":
        os.mkfifo(path)
        return None
    if kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path)
        return sock
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root")
    return None


def _lstat(path):
    info = os.lstat(path)
    return stat.S_IFMT(info.st_mode), info.st_rdev, info.st_ino


@pytest.mark.parametrize("kind", ["fifo", "device", "socket"])
@pytest.mark.parametrize("store_type", ONE_FILE)
def test_a_store_that_is_not_a_file_is_refused_unopened(tmp_path, kind, store_type, opened, pki):
    """load refuses it (unknown_format, saying what it is) without opening it; a whole run
    (not check mode) fails that store, leaves it as it was and writes nothing beside it."""
    host = tmp_path / "host"
    host.mkdir()
    path = str(host / "store")
    sock = _special(kind, path)
    before = _lstat(path)
    spec = StoreSpec(path=path, type=store_type, password=PASSWORD, create=True)
    with open(os.path.join(pki["dir"], "ac-v5.der"), "rb") as handle:
        present = [CertEntry("ac", handle.read())]
    backups = Backups(str(tmp_path / "backups"), "run")
    try:
        with pytest.raises(StoreError) as caught:
            corpus.in_thread(lambda: BACKENDS[store_type](spec, None, shutil.which).load(), path)
        outcomes, changed, failed = corpus.in_thread(
            lambda: converge([spec], present, set(), False, backups, None, shutil.which), path)
    finally:
        if sock is not None:
            sock.close()
    assert caught.value.code == UNKNOWN_FORMAT
    what = {"fifo": "FIFO"}.get(kind, kind)
    assert caught.value.reason == "%s is a %s, not a file: not read" % (path, what)
    assert failed and not changed and outcomes[0].result["failed"]
    assert path not in opened
    assert _lstat(path) == before and os.listdir(str(host)) == ["store"]
    assert not os.path.exists(str(tmp_path / "backups")) or not any(files for _d, _s, files in os.walk(
        str(tmp_path / "backups")))


def test_a_link_to_a_fifo_is_refused_too(tmp_path, opened):
    os.mkfifo(str(tmp_path / "pipe"))
    os.symlink("pipe", str(tmp_path / "store.pem"))
    spec = StoreSpec(path=str(tmp_path / "store.pem"), type="pem")
    with pytest.raises(StoreError) as caught:
        corpus.in_thread(lambda: BACKENDS["pem"](spec, None, shutil.which).load(), str(tmp_path / "pipe"))
    assert caught.value.code == UNKNOWN_FORMAT and "is a FIFO" in caught.value.reason
    assert not {str(tmp_path / "pipe"), spec.path} & set(opened)


def test_a_fifo_that_replaces_the_store_after_the_stat_is_not_waited_on(tmp_path, monkeypatch):
    """The race: a file when stat looks, a FIFO when open opens. The open does not wait for
    a writer (O_NONBLOCK) and fstat refuses what it opened."""
    path = str(tmp_path / "store.pem")
    os.mkfifo(path)
    looks = []
    monkeypatch.setattr(reading, "_not_a_file", lambda p, mode, real=reading._not_a_file: (
        looks.append(mode) if not looks else real(p, mode)))  # the first look (stat) passes
    with pytest.raises(StoreError) as caught:
        corpus.in_thread(lambda: base.read_store_file(StoreSpec(path=path, type="pem")), path)
    assert looks, "the look before the open was not the one patched: the race is not tested"
    assert caught.value.code == UNKNOWN_FORMAT and "is a FIFO" in caught.value.reason


@pytest.mark.parametrize("store_type", ["pem_dir", "debian"])
def test_a_folder_store_holding_a_fifo_does_not_wait_on_it(tmp_path, store_type, pki):
    folder = tmp_path / "store"
    folder.mkdir()
    os.mkfifo(str(folder / "pipe.pem"))
    os.mkfifo(str(folder / "pipe.crt"))
    os.symlink("pipe.pem", str(folder / "link.pem"))
    shutil.copy(os.path.join(pki["dir"], "root.pem"), str(folder / "root.crt"))
    before = sorted(os.listdir(str(folder)))
    spec = StoreSpec(path=str(folder), type=store_type)
    store = BACKENDS[store_type](spec, None, shutil.which)
    entries = corpus.in_thread(store.load, str(folder / "pipe.pem"))
    assert [e.name for e in entries] == ["root.crt"]
    assert sorted(os.listdir(str(folder))) == before


@pytest.mark.parametrize("store_type", ["pem_dir", "debian"])
def test_a_folder_store_that_is_a_fifo_is_refused(tmp_path, store_type):
    os.mkfifo(str(tmp_path / "store"))
    spec = StoreSpec(path=str(tmp_path / "store"), type=store_type)
    with pytest.raises(StoreError) as caught:
        corpus.in_thread(lambda: BACKENDS[store_type](spec, None, shutil.which).load(), spec.path)
    assert caught.value.code == UNKNOWN_FORMAT


class NoRead:
    """A file object that fails the test when it is read from."""

    def __init__(self, fd):
        self.fd = fd

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)

    def read(self, *args):
        pytest.fail("the huge store was read")


@pytest.mark.parametrize("store_type", ONE_FILE)
def test_a_huge_store_is_refused_by_its_size_unread(tmp_path, store_type, monkeypatch):
    """A sparse 6 GiB file: refused (unsupported) on its size, before any read."""
    path = str(tmp_path / "store")
    with open(path, "wb") as handle:
        handle.truncate(corpus.SIX_GIB)
    monkeypatch.setattr(base.os, "fdopen", lambda fd, *a, **k: NoRead(fd))
    spec = StoreSpec(path=path, type=store_type, password=PASSWORD)
    with pytest.raises(StoreError) as caught:
        BACKENDS[store_type](spec, None, shutil.which).load()
    assert caught.value.code == UNSUPPORTED
    assert caught.value.reason == ("%s is larger than 64 MiB: not a keystore or certificate file, not read"
                                   % path)
    assert os.path.getsize(path) == corpus.SIX_GIB and sorted(os.listdir(str(tmp_path))) == ["store"]


def test_a_store_that_grows_past_the_limit_while_read_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "store.pem"
    path.write_bytes(b"x" * 100)
    monkeypatch.setattr(reading, "MAX_READ_SIZE", 10)  # as if it grew past it after fstat
    monkeypatch.setattr(base.os, "fstat", lambda fd, real=os.fstat: os.stat_result(
        tuple(real(fd))[:6] + (5,) + tuple(real(fd))[7:]))
    with pytest.raises(StoreError) as caught:
        base.read_store_file(StoreSpec(path=str(path), type="pem"))
    assert caught.value.code == UNSUPPORTED


# ----------------------------------------------------------------------------- zips and sources


def _zip(members, compression=zipfile.ZIP_STORED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in members:
            archive.writestr(name, content)
    return buffer.getvalue()


def test_a_zip_member_declaring_a_huge_size_is_refused_unread(monkeypatch):
    data = bytearray(_zip([("a.pem", b"hello")]))
    central = data.find(b"PK\x01\x02")
    data[central + 24:central + 28] = struct.pack("<I", 0xFFFFFFFF)  # uncompressed size
    opened = []
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: opened.append(a) or pytest.fail("read"))
    with pytest.raises(BundleError) as caught:
        intake.read_zip(bytes(data), intake.Limits())
    assert caught.value.check == "zip_limits" and "declares 4294967295 bytes" in caught.value.msg
    assert opened == []


def test_a_zip_bomb_is_refused_by_its_ratio():
    bomb = _zip([("Annexe.pdf", b"\0" * (64 * 1024 * 1024))], zipfile.ZIP_DEFLATED)  # 64 MiB in ~64 KiB
    assert len(bomb) < 200 * 1024
    with pytest.raises(BundleError) as caught:
        intake.read_zip(bomb, intake.Limits(max_member_size=128 * 1024 * 1024, max_total_size=1 << 30))
    assert caught.value.check == "zip_limits" and "compression ratio" in caught.value.msg


def test_a_zip_bomb_that_lies_about_its_size_inflates_no_further_than_the_limit(monkeypatch):
    """Declared as 1 KiB (ratio fine), it inflates to 8 MiB: the read stops at the limit + 1."""
    data = bytearray(_zip([("Annexe.pdf", os.urandom(1024 * 1024) * 8)], zipfile.ZIP_DEFLATED))
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        where = data.find(signature)
        data[where + offset:where + offset + 4] = struct.pack("<I", 1024 * 1024)
    reads = []
    real_read = zipfile.ZipExtFile.read
    monkeypatch.setattr(zipfile.ZipExtFile, "read", lambda self, n=-1: reads.append(n) or real_read(self, n))
    with pytest.raises(BundleError) as caught:
        intake.read_zip(bytes(data), intake.Limits(max_member_size=2 * 1024 * 1024))
    assert caught.value.check in ("zip_limits", "zip_format")  # cut short, or its CRC is wrong
    assert reads == [2 * 1024 * 1024 + 1]


def test_a_zip_inside_the_zip_is_a_document_never_opened():
    inner = _zip([("x.pem", b"-----BEGIN CERTIFICATE-----\n")])
    members = intake.read_zip(_zip([("inner.zip", inner)]), intake.Limits())
    assert intake.parse_members(members) == ([], ["inner.zip"], [])


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_bundle_source_that_is_not_a_file_is_refused(tmp_path, kind):
    path = str(tmp_path / "bundle.zip")
    _special(kind, path)
    with pytest.raises(FetchError, match="not a regular file"):
        corpus.in_thread(lambda: fetch.read_source(None, path, 1024, 10), path)


def test_the_hang_guard_itself_fails_a_reader_that_loops():
    """corpus.bounded, which every fuzz example runs under, turns a loop into a failure."""
    with pytest.raises(corpus.Hang):
        with corpus.bounded(1):
            while True:
                pass


def test_a_trust_anchor_that_is_not_a_file_is_refused(tmp_path):
    from ansible_collections.sne.guichet.plugins.module_utils._bundle.run import read_anchors

    path = str(tmp_path / "anchor.pem")
    os.mkfifo(path)
    with pytest.raises(BundleError, match="not a regular file") as caught:
        corpus.in_thread(lambda: read_anchors([path]), path)
    assert caught.value.check == "trust"
