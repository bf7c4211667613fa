# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_common/io: atomic replace keeps the SELinux context, backups, links, reading."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.sne.guichet.plugins.module_utils._common import io as _io
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import IO_ERROR, StoreError
from ansible_collections.sne.guichet.plugins.module_utils._common.io import (
    SELINUX_XATTR,
    Backups,
    atomic_write,
    read_bytes,
    selinux_context,
    symlink_atomic,
)
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry

CONTEXT = b"system_u:object_r:cert_t:s0\x00"


class Xattrs:
    """Fake os.getxattr / os.setxattr: ``labels`` per real path, every call recorded."""

    def __init__(self, monkeypatch, labels=None, get_error=None, set_error=None):
        self.labels = dict(labels or {})
        self.gets, self.sets = [], []
        self.get_error, self.set_error = get_error, set_error
        monkeypatch.setattr(_io.os, "getxattr", self.getxattr, raising=False)
        monkeypatch.setattr(_io.os, "setxattr", self.setxattr, raising=False)

    def getxattr(self, path, name, *args, **kwargs):
        path = os.path.realpath(path)
        self.gets.append((path, name))
        if self.get_error is not None:
            raise OSError(self.get_error, os.strerror(self.get_error))
        if name != SELINUX_XATTR or path not in self.labels:
            raise OSError(errno.ENODATA, "No data available")
        return self.labels[path]

    def setxattr(self, path, name, value, *args, **kwargs):
        path = os.path.realpath(path)
        with open(path, "rb") as handle:
            content = handle.read()
        self.sets.append((path, name, value, content))
        if self.set_error is not None:
            raise OSError(self.set_error, os.strerror(self.set_error))
        self.labels[path] = value


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "store.pem"
    path.write_bytes(b"old\n")
    return path


def leftovers(folder):
    return [n for n in os.listdir(folder) if n.endswith(".sne-tmp")]


def all_leftovers(top):
    return [os.path.join(d, n) for d, _s, files in os.walk(top) for n in files if n.endswith(".sne-tmp")]


def test_context_is_read_and_put_on_the_temporary_file_before_the_rename(target, monkeypatch):
    fake = Xattrs(monkeypatch, labels={str(target): CONTEXT})
    seen = []

    def verify(tmp):
        seen.append(fake.labels.get(os.path.realpath(tmp)))

    atomic_write(str(target), b"new\n", verify=verify)
    assert (str(target), SELINUX_XATTR) in fake.gets
    ((path, name, value, content),) = fake.sets
    assert name == SELINUX_XATTR and value == CONTEXT
    assert path != str(target) and os.path.basename(path).startswith(".store.pem.")
    assert content == b"new\n"  # the temporary file, set before verify and the rename
    assert seen == [CONTEXT]
    assert target.read_bytes() == b"new\n"
    assert fake.labels[path] == CONTEXT


def test_context_of_a_symlinked_store_is_the_real_file(tmp_path, monkeypatch):
    real = tmp_path / "real.pem"
    real.write_bytes(b"old\n")
    link = tmp_path / "link.pem"
    link.symlink_to("real.pem")
    fake = Xattrs(monkeypatch, labels={str(real): CONTEXT})
    atomic_write(str(link), b"new\n")
    assert [s[2] for s in fake.sets] == [CONTEXT]
    assert link.is_symlink() and real.read_bytes() == b"new\n"


@pytest.mark.parametrize("code", [errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP])
def test_no_context_nothing_is_set(target, monkeypatch, code):
    fake = Xattrs(monkeypatch, get_error=code)
    atomic_write(str(target), b"new\n")
    assert fake.gets and fake.sets == []
    assert target.read_bytes() == b"new\n"


def test_platform_without_xattrs(target, monkeypatch):
    monkeypatch.delattr(_io.os, "getxattr", raising=False)

    def never(*args):
        raise AssertionError("setxattr must not be called")

    monkeypatch.setattr(_io.os, "setxattr", never, raising=False)
    atomic_write(str(target), b"new\n")
    assert target.read_bytes() == b"new\n"
    assert selinux_context(str(target)) is None


def test_new_file_gets_the_folder_default(tmp_path, monkeypatch):
    fake = Xattrs(monkeypatch, labels={str(tmp_path): CONTEXT})
    atomic_write(str(tmp_path / "new.pem"), b"new\n")
    assert fake.gets == [] and fake.sets == []
    assert (tmp_path / "new.pem").read_bytes() == b"new\n"


def test_explicit_context_is_set_even_on_a_new_file(tmp_path, monkeypatch):
    fake = Xattrs(monkeypatch)
    atomic_write(str(tmp_path / "new.pem"), b"new\n", context=CONTEXT)
    assert [s[2] for s in fake.sets] == [CONTEXT]


def test_context_that_cannot_be_set_is_io_error_and_the_original_stays(target, monkeypatch):
    Xattrs(monkeypatch, labels={str(target): CONTEXT}, set_error=errno.EPERM)
    with pytest.raises(StoreError) as err:
        atomic_write(str(target), b"new\n")
    assert err.value.code == IO_ERROR
    assert "SELinux context system_u:object_r:cert_t:s0" in err.value.reason
    assert target.read_bytes() == b"old\n"
    assert leftovers(str(target.parent)) == []


def test_context_that_cannot_be_read_is_io_error(target, monkeypatch):
    Xattrs(monkeypatch, get_error=errno.EACCES)
    with pytest.raises(StoreError) as err:
        atomic_write(str(target), b"new\n")
    assert err.value.code == IO_ERROR and "SELinux context" in err.value.reason
    assert target.read_bytes() == b"old\n"


def test_backup_copy_keeps_the_context(target, tmp_path, monkeypatch):
    fake = Xattrs(monkeypatch, labels={str(target): CONTEXT})
    copy = Backups(str(tmp_path / "bk"), "run").save(str(target))
    assert open(copy, "rb").read() == b"old\n"
    # set on the complete temporary copy, in the copy's folder, before its rename
    ((path, name, value, content),) = [s for s in fake.sets if s[1] == SELINUX_XATTR]
    assert (value, content) == (CONTEXT, b"old\n")
    assert os.path.dirname(path) == os.path.dirname(os.path.realpath(copy))
    assert os.path.basename(path).startswith(".store.pem.") and path.endswith(".sne-tmp")
    assert leftovers(os.path.dirname(copy)) == []


@pytest.mark.parametrize("code, fails", [(errno.ENOTSUP, False), (errno.EPERM, True)])
def test_backup_on_a_file_system_without_labels(target, tmp_path, monkeypatch, code, fails):
    Xattrs(monkeypatch, labels={str(target): CONTEXT}, set_error=code)
    backups = Backups(str(tmp_path / "bk"), "run")
    if fails:
        with pytest.raises(StoreError) as err:
            backups.save(str(target))
        assert err.value.code == IO_ERROR
    else:
        assert open(backups.save(str(target)), "rb").read() == b"old\n"
    assert all_leftovers(str(tmp_path)) == []


def test_backup_without_context_sets_nothing(target, tmp_path, monkeypatch):
    fake = Xattrs(monkeypatch)
    Backups(str(tmp_path / "bk"), "run").save(str(target))
    assert [s for s in fake.sets if s[1] == SELINUX_XATTR] == []


# ----------------------------------------------------------------------------- the rest


def test_backups_of():
    given = Backups(None, "r")
    assert Backups.of(given) is given
    assert Backups.of(None).root is None
    assert Backups.of("/var/backups/x").root.startswith("/var/backups/x/")


def test_read_bytes(tmp_path, target):
    """Still importable from io (the manifest reads with it); tested in test_reading.py."""
    assert read_bytes(str(target)) == b"old\n"
    assert read_bytes(str(tmp_path / "none")) is None
    with pytest.raises(StoreError) as err:
        read_bytes(str(target / "below-a-file"))
    assert err.value.code == IO_ERROR


def test_symlink_atomic_replaces_and_cleans_up(tmp_path, monkeypatch):
    link = tmp_path / "a.0"
    link.symlink_to("old.pem")
    symlink_atomic("new.pem", str(link))
    assert os.readlink(link) == "new.pem"

    def refuse(src, dst):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(_io.os, "rename", refuse)
    with pytest.raises(StoreError) as err:
        symlink_atomic("other.pem", str(link))
    assert err.value.code == IO_ERROR and "read-only" in err.value.reason
    assert os.readlink(link) == "new.pem" and leftovers(str(tmp_path)) == []


@pytest.mark.parametrize("kw, message", [({"owner": "no-such-user-sne"}, "unknown owner"),
                                         ({"group": "no-such-group-sne"}, "unknown group"),
                                         ({"mode": "rw"}, "not an octal number")])
def test_bad_attributes_leave_the_original(target, kw, message):
    with pytest.raises(StoreError) as err:
        atomic_write(str(target), b"new\n", **kw)
    assert err.value.code == IO_ERROR and message in err.value.reason
    assert target.read_bytes() == b"old\n" and leftovers(str(target.parent)) == []


# ----------------------------------------------------------------------------- durability


def fd_path(fd):
    return os.readlink("/proc/self/fd/%d" % fd)


def manifest_lines(root):
    path = os.path.join(str(root), "manifest.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, "rb") as handle:
        return [json.loads(line) for line in handle.read().splitlines()]


class Recorder:
    """os.fsync and os.rename recorded in order, with the paths they act on (an fsync's
    through /proc/self/fd); ``fsync_fails(path)`` / ``rename_fails(destination)`` make
    that call fail with ``code``."""

    def __init__(self, monkeypatch, fsync_fails=None, rename_fails=None, code=errno.EIO):
        self.events = []
        real_fsync, real_rename = os.fsync, os.rename

        def fsync(fd):
            path = fd_path(fd)
            self.events.append(("fsync", path))
            if fsync_fails is not None and fsync_fails(path):
                raise OSError(code, os.strerror(code))
            return real_fsync(fd)

        def rename(src, dst):
            self.events.append(("rename", os.fspath(src), os.fspath(dst)))
            if rename_fails is not None and rename_fails(os.fspath(dst)):
                raise OSError(code, os.strerror(code))
            return real_rename(src, dst)

        monkeypatch.setattr(_io.os, "fsync", fsync)
        monkeypatch.setattr(_io.os, "rename", rename)

    def index(self, *event, after=-1):
        for i, seen in enumerate(self.events):
            if i > after and seen == event:
                return i
        raise AssertionError("%s not seen after #%d in %s" % (event, after, self.events))


@pytest.fixture
def layout(tmp_path):
    """A store in its own folder and a backup folder next to it."""
    folder = tmp_path / "store"
    folder.mkdir()
    store = folder / "store.pem"
    store.write_bytes(b"old\n")
    return store, tmp_path / "bk"


def replace(store, backups, data=b"new\n"):
    """What Store._replace does: back up, then write."""
    backups.save(str(store))
    atomic_write(str(store), data)


def test_backup_and_write_are_fsynced_before_they_count(layout, monkeypatch):
    store, bk = layout
    rec = Recorder(monkeypatch)
    backups = Backups(str(bk), "run")
    replace(store, backups)
    copy = os.path.join(str(bk), "run", "files", str(store).lstrip(os.sep))
    manifest = os.path.join(backups.root, "manifest.jsonl")
    renames = [e for e in rec.events if e[0] == "rename"]
    assert [e[2] for e in renames] == [copy, manifest, str(store)]
    (_r, copy_tmp, _d), (_r, manifest_tmp, _d), (_r, store_tmp, _d) = renames
    for tmp, final in ((copy_tmp, copy), (manifest_tmp, manifest), (store_tmp, str(store))):
        assert tmp.endswith(".sne-tmp") and os.path.dirname(tmp) == os.path.dirname(final)
    steps = [("fsync", copy_tmp),  # the complete copy
             ("rename", copy_tmp, copy),  # then its final name
             ("fsync", os.path.dirname(copy)),  # then its folder
             ("fsync", manifest_tmp),  # only then the manifest with its line
             ("rename", manifest_tmp, manifest),
             ("fsync", backups.root),  # and the manifest's folder
             ("fsync", store_tmp),  # then the store
             ("rename", store_tmp, str(store)),
             ("fsync", str(store.parent))]
    order = [rec.index(*steps[0])]
    for step in steps[1:]:
        order.append(rec.index(*step, after=order[-1]))
    # and nothing of it happened earlier than that
    assert [rec.index(*step) for step in steps[:5]] == order[:5], rec.events
    assert rec.index("fsync", store_tmp) == order[6]
    # every folder the backup made was fsynced into its parent before the line was written
    made, folder = [], os.path.dirname(copy)
    while folder != os.path.dirname(str(bk)):
        made.append(folder)
        folder = os.path.dirname(folder)
    for new in made:
        assert rec.index("fsync", os.path.dirname(new)) < order[3], new
    assert open(copy, "rb").read() == b"old\n" and store.read_bytes() == b"new\n"


def in_bk(bk):
    return lambda path: path.startswith(str(bk) + os.sep)


def is_manifest(path):
    return os.path.basename(path).startswith((".manifest.jsonl.", "manifest.jsonl"))


FAILURES = {  # which call fails: (fsync_fails, rename_fails), given the backup folder
    "fsync of the backup copy":
        lambda bk: (lambda p: in_bk(bk)(p) and p.endswith(".sne-tmp") and not is_manifest(p), None),
    "fsync of a backup folder": lambda bk: (lambda p: in_bk(bk)(p) and os.path.isdir(p), None),
    "rename of the backup copy":
        lambda bk: (None, lambda p: in_bk(bk)(p) and not is_manifest(p)),
    "fsync of the manifest": lambda bk: (is_manifest, None),
    "rename of the manifest": lambda bk: (None, is_manifest),
    "fsync of the store's temporary file":
        lambda bk: (lambda p: not in_bk(bk)(p) and p.endswith(".sne-tmp"), None),
}


@pytest.mark.parametrize("failing", sorted(FAILURES))
def test_a_failed_fsync_or_write_stops_the_change(layout, monkeypatch, failing):
    store, bk = layout
    fsync_fails, rename_fails = FAILURES[failing](bk)
    Recorder(monkeypatch, fsync_fails=fsync_fails, rename_fails=rename_fails)
    backups = Backups(str(bk), "run")
    with pytest.raises(StoreError) as err:
        replace(store, backups)
    monkeypatch.undo()
    assert err.value.code == IO_ERROR and "input/output error" in err.value.reason.lower()
    assert store.read_bytes() == b"old\n"
    assert all_leftovers(str(store.parent.parent)) == []
    lines = manifest_lines(backups.root)
    if "store" in failing:  # the backup was made and listed, complete
        assert [line["action"] for line in lines] == ["replaced"]
        assert open(lines[0]["backup"], "rb").read() == b"old\n"
    else:  # no line, no copy
        assert lines == []
        assert [f for _d, _s, files in os.walk(str(bk)) for f in files if f != "manifest.jsonl"] == []


def test_a_backup_listed_before_a_failure_is_kept(layout, monkeypatch):
    store, bk = layout
    backups = Backups(str(bk), "run")
    manifest = os.path.join(backups.root, "manifest.jsonl")
    # the manifest with the line is in place, then the fsync of its folder fails
    Recorder(monkeypatch, fsync_fails=lambda p: p == backups.root and os.path.exists(manifest))
    with pytest.raises(StoreError) as err:
        replace(store, backups)
    monkeypatch.undo()
    assert err.value.code == IO_ERROR and backups.root in err.value.reason
    assert store.read_bytes() == b"old\n"
    (line,) = manifest_lines(backups.root)
    assert open(line["backup"], "rb").read() == b"old\n"  # listed, so kept
    assert all_leftovers(str(store.parent.parent)) == []


@pytest.mark.parametrize("code, fails", [(errno.EIO, True), (errno.ENOSPC, True),
                                         (errno.EINVAL, False), (errno.ENOTSUP, False)])
def test_a_folder_fsync_error_is_reported_unless_not_supported(layout, monkeypatch, code, fails):
    store, _bk = layout
    Recorder(monkeypatch, fsync_fails=lambda p: p == str(store.parent), code=code)
    if fails:
        with pytest.raises(StoreError) as err:
            atomic_write(str(store), b"new\n")
        assert err.value.code == IO_ERROR and str(store.parent) in err.value.reason
    else:
        atomic_write(str(store), b"new\n")  # a file system that cannot fsync a folder
    for make in (lambda: symlink_atomic("x", str(store.parent / "l.0")),
                 lambda: _io.remove_file(str(store))):
        if fails:
            with pytest.raises(StoreError):
                make()
        else:
            make()


# ----------------------------------------------------------------------------- backups and reruns


def test_a_backup_without_its_manifest_line_is_not_trusted(layout):
    store, bk = layout
    backups = Backups(str(bk), "run")
    copy = os.path.join(backups.root, "files", str(store).lstrip(os.sep))
    os.makedirs(os.path.dirname(copy))
    with open(copy, "wb") as handle:
        handle.write(b"ol")  # what a run killed while copying left (older versions)
    assert backups.save(str(store)) == copy
    assert open(copy, "rb").read() == b"old\n"
    assert manifest_lines(backups.root) == [{"action": "replaced", "backup": copy,
                                             "path": str(store)}]


def test_the_first_manifest_line_wins(layout):
    store, bk = layout
    copy = Backups(str(bk), "run").save(str(store))
    store.write_bytes(b"new\n")  # the store replaced, then the run killed
    again = Backups(str(bk), "run")  # the rerun
    assert again.save(str(store)) == copy
    assert open(copy, "rb").read() == b"old\n"
    assert len(manifest_lines(again.root)) == 1


def test_a_file_the_run_created_is_never_backed_up_as_an_original(tmp_path):
    path = tmp_path / "new.pem"
    backups = Backups(str(tmp_path / "bk"), "run")
    assert backups.save(str(path)) is None
    path.write_bytes(b"created by the run\n")
    assert Backups(str(tmp_path / "bk"), "run").save(str(path)) is None
    assert manifest_lines(backups.root) == [{"action": "created", "backup": None,
                                             "path": str(path)}]
    assert not os.path.exists(os.path.join(backups.root, "files"))


def test_a_manifest_line_cut_by_a_kill_is_dropped(layout):
    store, bk = layout
    backups = Backups(str(bk), "run")
    os.makedirs(backups.root)
    other = {"action": "created", "backup": None, "path": "/etc/other.pem"}
    with open(os.path.join(backups.root, "manifest.jsonl"), "w") as handle:
        handle.write(json.dumps(other, sort_keys=True) + '\n{"action": "replaced", "back')
    assert backups.recorded() == {"/etc/other.pem": other}
    copy = backups.save(str(store))
    assert manifest_lines(backups.root) == [other, {"action": "replaced", "backup": copy,
                                                    "path": str(store)}]


def test_a_backup_of_a_link_is_a_link(tmp_path):
    (tmp_path / "real.pem").write_bytes(b"x")
    (tmp_path / "a1b2c3d4.0").symlink_to("real.pem")
    backups = Backups(str(tmp_path / "bk"), "run")
    copy = backups.save(str(tmp_path / "a1b2c3d4.0"))
    assert os.readlink(copy) == "real.pem"
    assert all_leftovers(str(tmp_path)) == []


# ----------------------------------------------------------------------------- stale temporaries


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_remove_stale_temporaries_only_removes_our_dead_old_ones(tmp_path):
    dead, old = dead_pid(), time.time() - 3600
    stale = [".store.jks.%d-abcdefgh.sne-tmp" % dead,  # a killed writer
             ".store.jks.abcdefgh.sne-tmp",  # a name of the versions without the pid
             ".with\nnewline.%d-0123abcd.sne-tmp" % dead]
    kept = [".store.jks.%d-abcdefg1.sne-tmp" % os.getpid(),  # a live writer: us
            ".store.jks.1-abcdefg2.sne-tmp",  # a live writer: pid 1
            "notes.sne-tmp", ".store.jks.sne-tmp", ".store.jks.%d-abc.sne-tmp" % dead,
            ".store.jks.%d-abcdefgh.tmp" % dead, "store.jks"]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"x")
        os.utime(str(tmp_path / name), (old, old))
    young = ".store.jks.%d-young123.sne-tmp" % dead  # changed since we started
    (tmp_path / young).write_bytes(b"x")
    link = ".a1b2c3d4.0.%d-0123abcd.sne-tmp" % dead  # a link left by symlink_atomic
    os.symlink("nowhere", str(tmp_path / link))
    os.utime(str(tmp_path / link), (old, old), follow_symlinks=False)
    folder = ".dir.%d-abcdefgh.sne-tmp" % dead  # never a folder
    (tmp_path / folder).mkdir()
    os.utime(str(tmp_path / folder), (old, old))
    assert sorted(_io.remove_stale_temporaries(str(tmp_path))) == sorted(stale + [link])
    assert sorted(os.listdir(str(tmp_path))) == sorted(kept + [young, folder])
    assert _io.remove_stale_temporaries(str(tmp_path / "missing")) == []


def test_writes_clean_their_folder_and_name_their_temporaries_with_the_pid(layout):
    store, bk = layout
    old = time.time() - 3600
    planted = []
    for folder in (store.parent, bk / "run" / "files" / str(store.parent).lstrip(os.sep)):
        folder.mkdir(parents=True, exist_ok=True)
        planted.append(folder / (".store.pem.%d-abcdefgh.sne-tmp" % dead_pid()))
        planted[-1].write_bytes(b"half")
        os.utime(str(planted[-1]), (old, old))
    seen = []
    backups = Backups(str(bk), "run")
    backups.save(str(store))
    atomic_write(str(store), b"new\n", verify=seen.append)
    assert [p for p in planted if os.path.exists(str(p))] == []
    assert os.path.basename(seen[0]).startswith(".store.pem.%d-" % os.getpid())
    assert all_leftovers(str(store.parent.parent)) == []


# ----------------------------------------------------------------------------- killed backups

CHILD = r"""
import builtins, json, os, signal, sys
config = json.load(open(sys.argv[1]))
sys.path.insert(0, config["collections"])
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._stores import engine
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, StoreSpec

def die():
    os.kill(os.getpid(), signal.SIGKILL)

kill, store = config["kill"], config["store"]
if kill == "copying":  # half of the backup copy written, then killed
    real_sendfile = os.sendfile
    def sendfile(out_fd, in_fd, offset, count):
        real_sendfile(out_fd, in_fd, offset, max(1, count // 2))
        die()
    os.sendfile = sendfile
elif kill == "listing":  # the backup copy made, killed as its manifest line is written
    real_open, real_os_open = builtins.open, os.open
    def guard(path, writing):
        if writing and "manifest.jsonl" in os.path.basename(str(path)):
            die()
    builtins.open = lambda path, mode="r", *a, **k: (
        guard(path, any(c in mode for c in "wax+")) or real_open(path, mode, *a, **k))
    os.open = lambda path, flags, *a, **k: (
        guard(path, flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)) or real_os_open(path, flags, *a, **k))
elif kill == "replaced":  # killed just after the store was replaced
    real_rename = os.rename
    def rename(src, dst):
        real_rename(src, dst)
        if os.fspath(dst) == store:
            die()
    os.rename = rename
present = [CertEntry(name, open(der, "rb").read()) for name, der in config["present"]]
outcomes, changed, failed = engine.converge(
    [StoreSpec(store, "jks", password=config["password"])], present, set(config["absent"]),
    False, Backups(config["backups"], "run-1"), None, lambda tool: None)
print(json.dumps([o.result for o in outcomes], default=str))
"""
COLLECTIONS = os.path.join(os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 5)),
                           ".build", "collections")


def jks_of(pki, idents, password):
    from ansible_collections.sne.guichet.plugins.module_utils._formats import jks as _jks
    store = _jks.JksFile()
    for ident in idents:
        with open(os.path.join(pki["dir"], ident + ".der"), "rb") as handle:
            store.add_trusted(ident, handle.read(), 1452153600000)
    return _jks.serialize(store, password)


def aliases(data, password):
    from ansible_collections.sne.guichet.plugins.module_utils._formats import jks as _jks
    return sorted(e.alias for e in _jks.parse(data, password).entries)


@pytest.mark.parametrize("kill", ["copying", "listing", "replaced"])
def test_a_run_killed_during_its_backup_then_run_again(pki, tmp_path, kill):
    password = "changeit-sne"
    store = tmp_path / "host" / "app.jks"
    store.parent.mkdir()
    original = jks_of(pki, ["root", "chiffrement-v4", "ac-v4"], password)
    store.write_bytes(original)
    with open(os.path.join(pki["dir"], "chiffrement-v4.der"), "rb") as handle:
        v4 = CertEntry("", handle.read()).sha256
    config = {"collections": COLLECTIONS, "store": str(store), "password": password,
              "backups": str(tmp_path / "bk"), "absent": [v4],
              "present": [["sne-chiffrement-v5", os.path.join(pki["dir"], "chiffrement-v5.der")]]}
    script = tmp_path / "child.py"
    script.write_text(CHILD)

    def run(kill_at):
        path = tmp_path / ("config-%s.json" % kill_at)
        path.write_text(json.dumps(dict(config, kill=kill_at)))
        return subprocess.run([sys.executable, "-B", str(script), str(path)], capture_output=True,
                              text=True, check=False, timeout=120)

    killed = run(kill)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    again = run("none")  # the rerun, same run_id
    assert again.returncode == 0, again.stderr
    (result,) = json.loads(again.stdout)
    assert not result["failed"], result
    assert result["changed"] == (kill != "replaced")
    lines = [line for line in manifest_lines(tmp_path / "bk" / "run-1") if line["path"] == str(store)]
    assert len(lines) == 1 and lines[0]["action"] == "replaced", lines
    with open(lines[0]["backup"], "rb") as handle:
        assert handle.read() == original, "the backup is not the original store"
    assert aliases(store.read_bytes(), password) == ["ac-v4", "root", "sne-chiffrement-v5"]
    assert all_leftovers(str(tmp_path)) == []
