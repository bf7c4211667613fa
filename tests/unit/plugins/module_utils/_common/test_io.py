# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_common/io: atomic replace keeps the SELinux context, backups, links, reading."""

from __future__ import annotations

import errno
import os

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
    assert (os.path.realpath(copy), SELINUX_XATTR, CONTEXT, b"old\n") in fake.sets


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
    assert read_bytes(str(target)) == b"old\n"
    assert read_bytes(str(tmp_path / "none")) is None
    with pytest.raises(StoreError) as err:
        read_bytes(str(tmp_path))
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
