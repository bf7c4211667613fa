# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Folder stores (pem_dir, debian anchors): the members they read are read like a store file.

A member named like a certificate that is a FIFO or a device (or a link to one), or a file
swapped for a FIFO between the scan and the read, is skipped without a blocking open; one
over 64 MiB fails the store (unsupported, naming it) without being read into memory. The
folder is left byte-identical and nothing is written. Every wait on a FIFO is bounded
(``corpus.in_thread``: the test fails instead of hanging).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess

import pytest
from hostile import corpus

from ansible_collections.sne.guichet.plugins.module_utils._common import lock as _lock
from ansible_collections.sne.guichet.plugins.module_utils._common import reading
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    IO_ERROR,
    UNSUPPORTED,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._stores import _folder
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, StoreSpec
from ansible_collections.sne.guichet.plugins.module_utils._stores.engine import BACKENDS, converge

EXTENSION = {"pem_dir": ".pem", "debian": ".crt"}


@pytest.fixture
def world(tmp_path, pki, monkeypatch):
    """A folder holding root; the refresh command logs its runs; the locks in tmp_path."""
    monkeypatch.setattr(_lock, "LOCK_BASES", (str(tmp_path),))
    folder = tmp_path / "store"
    folder.mkdir()
    log = tmp_path / "refresh.log"
    script = tmp_path / "refresh.sh"
    script.write_text("#!/bin/sh\necho run >> %s\n" % log)
    script.chmod(0o755)
    with open(os.path.join(pki["dir"], "ac-v5.der"), "rb") as handle:
        present = [CertEntry("sne-ac-v5", handle.read())]
    return {"folder": folder, "pki": pki["dir"], "log": log, "script": str(script),
            "present": present, "backups": Backups(str(tmp_path / "backups"), "run")}


def seed(world, store_type):
    shutil.copy(os.path.join(world["pki"], "root.pem"),
                str(world["folder"] / ("root" + EXTENSION[store_type])))


def spec(world, store_type):
    return StoreSpec(str(world["folder"]), store_type,
                     refresh=world["script"] if store_type == "debian" else None)


def snapshot(folder):
    """Every entry of the folder: type, size, mtime, link target, content digest (files
    up to 1 MiB): the same snapshot, the same folder."""
    out = {}
    for name in sorted(os.listdir(str(folder))):
        full = str(folder / name)
        st = os.lstat(full)
        what = [stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode)]
        if stat.S_ISLNK(st.st_mode):
            what.append(os.readlink(full))
        elif stat.S_ISREG(st.st_mode) and st.st_size <= 1 << 20:
            with open(full, "rb") as handle:
                what.append(hashlib.sha256(handle.read()).hexdigest())
        out[name] = what
    return out


def backups_written(world):
    root = world["backups"].root
    return os.path.isdir(root) and any(files for _d, _s, files in os.walk(root))


@pytest.mark.parametrize("store_type", ["pem_dir", "debian"])
@pytest.mark.parametrize("how", ["link to a FIFO", "link to a device", "swapped for a FIFO"])
def test_a_member_that_is_no_file_is_skipped_without_waiting(world, store_type, how, monkeypatch):
    """Skipped (never opened for a blocking read): load lists the other certificates; a
    member swapped after the scan makes the write refuse (changed since it was read)."""
    seed(world, store_type)
    folder = world["folder"]
    member = folder / ("pipe" + EXTENSION[store_type])
    fifo = str(folder / "fifo")
    os.mkfifo(fifo)
    if how == "link to a FIFO":
        member.symlink_to("fifo")
    elif how == "link to a device":
        member.symlink_to("/dev/zero")  # read with a plain open(): it never ends
    else:  # a regular file when the scan looks, a FIFO when the member is read
        member.write_bytes(b"")
        real = _folder._FolderStore._read_candidates
        swapped = []  # the folder just after each swap

        def swap_then_read(store, nodes):
            if member.is_file() and not member.is_symlink():
                member.unlink()
                os.mkfifo(str(member))
                swapped.append(snapshot(folder))
            real(store, nodes)

        monkeypatch.setattr(_folder._FolderStore, "_read_candidates", swap_then_read)
    fifo = str(member) if how == "swapped for a FIFO" else fifo
    store = BACKENDS[store_type](spec(world, store_type), None, lambda name: None)
    entries = corpus.in_thread(store.load, fifo)
    assert [e.name for e in entries] == ["root" + EXTENSION[store_type]]
    if how == "swapped for a FIFO":  # a file again, swapped again while the run reads it
        member.unlink()
        member.write_bytes(b"")
    before = snapshot(folder)
    outcomes, changed, failed = corpus.in_thread(
        lambda: converge([spec(world, store_type)], world["present"], set(), False, world["backups"],
                         run_command, lambda name: None), fifo)
    result = outcomes[0].result
    if how == "swapped for a FIFO":  # the scan saw a file there: the folder changed
        assert failed and not changed and result["code"] == IO_ERROR
        assert "changed since it was read; nothing written" in result["msg"]
        assert len(swapped) == 2 and snapshot(folder) == swapped[-1] and not world["log"].exists()
        assert not backups_written(world)
    else:  # skipped: the rest of the folder converges around it
        assert changed and not failed, result
        after = snapshot(folder)
        new = sorted(set(after) - set(before))
        assert new[-1] == "sne-ac-v5" + EXTENSION[store_type]
        assert len(new) == (2 if store_type == "pem_dir" else 1), new  # + its hash link
        assert {k: v for k, v in after.items() if k in before} == before
        assert world["log"].exists() == (store_type == "debian")


def run_command(argv, data=None, environ_update=None):
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("store_type", ["pem_dir", "debian"])
@pytest.mark.parametrize("via", ["file", "link"])
def test_an_oversized_member_fails_the_store_unread(world, store_type, via, monkeypatch):
    """A sparse member one byte over 64 MiB: the store fails (unsupported, naming the member),
    nothing of it is read into memory, nothing is written, no refresh runs."""
    seed(world, store_type)
    folder = world["folder"]
    huge = folder / (("huge" + EXTENSION[store_type]) if via == "file" else "huge.bin")
    with open(str(huge), "wb") as handle:
        handle.truncate(reading.MAX_READ_SIZE + 1)
    member = huge
    if via == "link":
        member = folder / ("big" + EXTENSION[store_type])
        member.symlink_to(huge.name)
    before = snapshot(folder)
    reads = []
    real_fdopen = reading.os.fdopen
    monkeypatch.setattr(reading.os, "fdopen", lambda fd, *a, **k: Reader(real_fdopen(fd, *a, **k), reads))
    with pytest.raises(StoreError) as caught:
        BACKENDS[store_type](spec(world, store_type), None, lambda name: None).load()
    assert caught.value.code == UNSUPPORTED
    assert caught.value.reason == ("%s is larger than 64 MiB: not a keystore or certificate file, "
                                   "not read" % member)
    outcomes, changed, failed = converge([spec(world, store_type)], world["present"], set(), False,
                                         world["backups"], run_command, lambda name: None)
    assert failed and not changed and outcomes[0].result["code"] == UNSUPPORTED
    assert str(member) in outcomes[0].result["msg"]
    assert all(size is not None and size <= 1 << 20 for size in reads), reads
    assert snapshot(folder) == before and not world["log"].exists() and not backups_written(world)


class Reader:
    """A file object that records how much each read asks for."""

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
