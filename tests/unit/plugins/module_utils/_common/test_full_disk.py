# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A full disk and a read-only file system during a write, through the real backends.

A small real tmpfs (``mount -t tmpfs``: root only, skipped with the reason elsewhere) is
filled up, leaving less room than the store needs, or remounted read-only. It holds the
store and its backups, only the backups (the store's own folder has room), or only the
store. A JKS, a PEM bundle and a pem_dir store are converged on it through
``_stores/engine.converge`` with backups on. Each time: the store fails with io_error and a
message naming the store and the cause; the store is byte-identical (every file and link
of a pem_dir); every backup the manifest lists is complete and every copy in the backup
folder is listed (no partial backup passes for a complete one); no temporary file is left.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess

import pytest

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import IO_ERROR
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._formats import jks as _jks
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, StoreSpec
from ansible_collections.sne.guichet.plugins.module_utils._stores.engine import converge
from ansible_collections.sne.guichet.plugins.module_utils._x509 import subject_hash

PASSWORD = "changeit-sne"
SIZE = "256k"
OLD = ("root", "chiffrement-v4", "ac-v4")
NEW = (("sne-chiffrement-v5", "chiffrement-v5"), ("sne-ac-v5", "ac-v5"))
RETIRED = ("chiffrement-v4", "ac-v4")
LAYOUTS = ("store and backups", "backups only", "store only")  # what is on the small tmpfs


def read(pki, ident, ext="der"):
    with open(os.path.join(pki["dir"], "%s.%s" % (ident, ext)), "rb") as handle:
        return handle.read()


def make_jks(pki, path):
    store = _jks.JksFile()
    for ident in OLD:
        store.add_trusted(ident, read(pki, ident), 1452153600000)
    with open(path, "wb") as handle:
        handle.write(_jks.serialize(store, PASSWORD))


def make_pem(pki, path):
    # 64 KiB of comments: a copy cut by a full disk is really cut, not all or nothing
    padding = b"".join(b"# line %05d of the guichet bundle notes\n" % i for i in range(1600))
    with open(path, "wb") as handle:
        handle.write(padding + b"".join(read(pki, ident, "pem") for ident in OLD))


def make_pem_dir(pki, path):
    os.mkdir(path)
    for ident in OLD:
        with open(os.path.join(path, ident + ".pem"), "wb") as handle:
            handle.write(read(pki, ident, "pem"))
        os.symlink(ident + ".pem", os.path.join(path, subject_hash(read(pki, ident)) + ".0"))


STORES = {"jks": ("app.jks", make_jks), "pem": ("bundle.pem", make_pem),
          "pem_dir": ("certs", make_pem_dir)}


def tree(top):
    """rel -> what is there (file content, link target, folder) below ``top``."""
    found = {}
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            full = os.path.join(folder, name)
            rel = os.path.relpath(full, top)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir",)
            else:
                with open(full, "rb") as handle:
                    found[rel] = ("file", handle.read())
    return found


def snapshot(path):
    if os.path.isdir(path):
        return tree(path)
    with open(path, "rb") as handle:
        return handle.read()


@pytest.fixture
def mounts(tmp_path):
    """mount(name): a fresh small tmpfs below tmp_path; all unmounted afterwards."""
    made = []

    def mount(name):
        point = tmp_path / name
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + SIZE, "tmpfs", str(point)],
                              capture_output=True, text=True, check=False)
        if done.returncode:
            pytest.skip("a full disk needs a real tmpfs and `mount -t tmpfs` failed (not root?): "
                        + (done.stderr.strip() or "exit %d" % done.returncode))
        made.append(point)
        return point

    yield mount
    for point in reversed(made):
        subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


def fill(folder, leave=0):
    """Fill the file system of ``folder`` up, then give back ``leave`` bytes (whole pages)."""
    filler = os.path.join(str(folder), "filler")
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as handle:
        while True:
            try:
                if handle.write(chunk) < len(chunk):
                    chunk = chunk[:4096]
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                if len(chunk) == 4096:
                    break
                chunk = chunk[:4096]
    if leave:
        os.truncate(filler, max(0, os.path.getsize(filler) - leave))
    with pytest.raises(OSError):  # nothing bigger than what was left fits
        with open(os.path.join(str(folder), "probe"), "wb") as handle:
            handle.write(b"x" * (leave + 8192))
    os.unlink(os.path.join(str(folder), "probe"))


def remount_ro(point):
    done = subprocess.run(["mount", "-o", "remount,ro", str(point)], capture_output=True, text=True,
                          check=False)
    if done.returncode:
        pytest.skip("cannot remount a tmpfs read-only: " + done.stderr.strip())


def place(tmp_path, mounts, layout):
    """(host folder, backup folder, the mount points on the small tmpfs)."""
    if layout == "store and backups":
        small = mounts("small")
        return small / "host", small / "backups", [small]
    if layout == "backups only":
        host = tmp_path / "host"
        return host, mounts("backups"), []
    return mounts("host"), tmp_path / "backups", []


def converge_one(pki, kind, path, backup_dir):
    spec = StoreSpec(str(path), kind, password=PASSWORD if kind == "jks" else None)
    present = [CertEntry(name, read(pki, ident)) for name, ident in NEW]
    absent = set(CertEntry("", read(pki, ident)).sha256 for ident in RETIRED)
    outcomes, _changed, failed = converge([spec], present, absent, False,
                                          Backups(str(backup_dir), "run-1"), None, lambda t: None)
    assert failed
    return outcomes[0].result


def check(result, path, before, backup_dir, host, cause):
    """The failure is clear, the store as it was, the backups complete, no leftover."""
    assert result["failed"] and result["code"] == IO_ERROR, result
    assert str(path) in result["msg"] and cause in result["msg"].lower(), result["msg"]
    assert snapshot(str(path)) == before, "the store changed"
    root = os.path.join(str(backup_dir), "run-1")
    lines = []
    if os.path.exists(os.path.join(root, "manifest.jsonl")):
        with open(os.path.join(root, "manifest.jsonl"), "rb") as handle:
            lines = [json.loads(line) for line in handle.read().splitlines()]
    listed = set()
    for line in lines:
        rel = os.path.relpath(line["path"], str(path))
        old = before if rel == "." else (before.get(rel) if isinstance(before, dict) else None)
        if line["action"] == "created":
            assert old is None and not os.path.lexists(line["path"]), line
            continue
        saved = snapshot(line["backup"]) if not os.path.islink(line["backup"]) else \
            ("link", os.readlink(line["backup"]))
        assert saved == (old[1] if isinstance(old, tuple) else old), "incomplete backup %s" % line
        listed.add(line["backup"])
    copies = set(os.path.join(root, "files", rel) for rel, what in
                 tree(os.path.join(root, "files")).items() if what[0] != "dir") \
        if os.path.isdir(os.path.join(root, "files")) else set()
    assert copies <= listed, "copies not listed in the manifest: %s" % sorted(copies - listed)
    leftovers = [rel for top in (host, backup_dir) if os.path.isdir(str(top))
                 for rel in tree(str(top)) if rel.endswith(".sne-tmp")]
    assert leftovers == [], leftovers


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", sorted(STORES))
def test_full_disk(pki, tmp_path, mounts, kind, layout):
    host, backup_dir, _small = place(tmp_path, mounts, layout)
    os.makedirs(str(host), exist_ok=True)
    name, make = STORES[kind]
    path = host / name
    make(pki, str(path))
    before = snapshot(str(path))
    full = backup_dir if layout == "backups only" else host
    size = len(before) if isinstance(before, bytes) else 0
    fill(full, leave=size // 2)  # room for half a copy of the store at most
    result = converge_one(pki, kind, path, backup_dir)
    check(result, path, before, backup_dir, host, "no space left on device")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", sorted(STORES))
def test_read_only_file_system(pki, tmp_path, mounts, kind, layout):
    host, backup_dir, small = place(tmp_path, mounts, layout)
    os.makedirs(str(host), exist_ok=True)
    name, make = STORES[kind]
    path = host / name
    make(pki, str(path))
    before = snapshot(str(path))
    remount_ro(small[0] if small else (backup_dir if layout == "backups only" else host))
    result = converge_one(pki, kind, path, backup_dir)
    check(result, path, before, backup_dir, host, "read-only file system")
