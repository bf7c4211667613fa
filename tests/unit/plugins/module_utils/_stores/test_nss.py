# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backend ``nss`` with real certutil databases (made by ``certutil -N``, with and without a
password): a key pair, V4 under an odd nickname and its authority. What the database holds
afterwards is read back with ``certutil -L`` and ``certutil -K`` (tests/unit/nsstools.py,
not the backend's parser)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import tempfile

import pytest
from nsstools import NSS_PASSWORD, add, certutil, contents, files, fingerprint, keys, make_db, needs_certutil

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    CORRUPT,
    IO_ERROR,
    TOOL_MISSING,
    UNSUPPORTED,
    WRONG_PASSWORD,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._stores import nss as _nss
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, StoreSpec
from ansible_collections.sne.guichet.plugins.module_utils._stores.engine import converge

pytestmark = needs_certutil
V4_NICK = "Chiffrement SNE (ancien) 2014/v4"  # spaces, parentheses, a slash
CA_V4_NICK = "AC SNE V4"
SEEN = []  # every argv run, to look for the password


def run_command(argv, data=None, environ_update=None):
    SEEN.append((list(argv), dict(environ_update or {}), data))
    env = dict(os.environ, **(environ_update or {}))
    done = subprocess.run(argv, input=data, capture_output=True, text=True, env=env, check=False)
    return done.returncode, done.stdout, done.stderr


class Pki:
    def __init__(self, pki):
        self.der, self.files = {}, {}
        for ident in ("root", "ac-v4", "ac-v5", "chiffrement-v4", "chiffrement-v5"):
            self.files[ident] = os.path.join(pki["dir"], ident + ".der")
            with open(self.files[ident], "rb") as handle:
                self.der[ident] = handle.read()
        self.sha = dict((i, fingerprint(d)) for i, d in self.der.items())
        self.present = [CertEntry("sne-chiffrement-v5", self.der["chiffrement-v5"]),
                        CertEntry("sne-ac-v5", self.der["ac-v5"])]
        self.absent = {self.sha["chiffrement-v4"], self.sha["ac-v4"]}


@pytest.fixture(scope="module")
def world(pki):
    return Pki(pki)


def make_guichet_db(folder, world, password):
    make_db(folder, password)
    add(folder, "root", "C,,", world.files["root"], password)
    add(folder, V4_NICK, "P,,", world.files["chiffrement-v4"], password)
    add(folder, CA_V4_NICK, "C,,", world.files["ac-v4"], password)
    return str(folder)


def converge_db(world, path, password, check_mode=False, backup_dir=None, run_id="r1", **kw):
    spec = StoreSpec(path, "nss", password=password, **kw)
    outcomes, changed, failed = converge([spec], world.present, world.absent, check_mode,
                                         Backups(backup_dir, run_id), run_command, shutil.which)
    return outcomes[0], changed, failed


@pytest.mark.parametrize("password", [NSS_PASSWORD, None], ids=["password", "no-password"])
def test_rotation_read_back_with_certutil(world, tmp_path, password):
    path = make_guichet_db(tmp_path / "nssdb", world, password)
    keys_before = keys(path, password)
    assert len(keys_before) == 1 and keys_before[0].endswith("NSS Certificate DB:mykey")
    mykey = contents(path)["mykey"]
    del SEEN[:]
    outcome, changed, failed = converge_db(world, path, password, backup_dir=str(tmp_path / "b"))
    result = outcome.result
    assert changed and not failed, result.get("msg")
    assert sorted(r["name"] for r in result["removed"]) == sorted([V4_NICK, CA_V4_NICK])
    assert result["trust"] == {"sne-chiffrement-v5": "P,,", "sne-ac-v5": "C,,"}
    after = contents(path)  # certutil -L, read independently
    assert after == {
        "mykey": mykey,
        "root": ("C,,", [world.sha["root"]]),
        "sne-chiffrement-v5": ("P,,", [world.sha["chiffrement-v5"]]),
        "sne-ac-v5": ("C,,", [world.sha["ac-v5"]]),
    }
    assert keys(path, password) == keys_before  # certutil -K: the key pair is intact
    # the diff lists the entries before and after
    assert V4_NICK in outcome.diff["before"] and V4_NICK not in outcome.diff["after"]
    assert "sne-ac-v5" in outcome.diff["after"]
    # backups of the database files, listed in the manifest
    backup = result["backup"]
    assert backup.endswith(path.lstrip("/"))
    assert "cert9.db" in os.listdir(backup)
    # the password: never on a command line nor in the environment; certutil reads it from
    # its standard input (-f /dev/stdin), so no file ever holds it
    for argv, env, data in SEEN:
        assert not password or not any(password in a for a in argv) and password not in env.values(), argv
        if "-f" in argv:
            assert argv[argv.index("-f") + 1] == "/dev/stdin" and data == (password or "") + "\n", argv
        else:
            assert data is None, argv
    assert [a for a, _e, _d in SEEN if "-A" in a] and all("-f" in a for a, _e, _d in SEEN if "-K" in a)
    scratch = "sne-certutil-%d-" % os.getpid()
    assert not [n for n in os.listdir(tempfile.gettempdir()) if n.startswith(scratch)]
    assert [n for n in os.listdir(str(tmp_path)) if n.endswith(".sne-tmp")] == []
    # the second run changes nothing
    before = files(path)
    again, changed, failed = converge_db(world, path, password)
    assert not changed and not failed and again.result["added"] == [] and again.result["removed"] == []
    assert files(path) == before


def test_check_mode_is_byte_identical(world, tmp_path):
    path = make_guichet_db(tmp_path / "nssdb", world, NSS_PASSWORD)
    before = files(path)
    outcome, changed, failed = converge_db(world, path, NSS_PASSWORD, check_mode=True,
                                           backup_dir=str(tmp_path / "b"))
    assert changed and not failed and len(outcome.result["added"]) == 2
    assert files(path) == before and not os.path.exists(str(tmp_path / "b"))


def test_owner_and_mode_kept(world, tmp_path):
    path = make_guichet_db(tmp_path / "nssdb", world, None)
    os.chmod(os.path.join(path, "cert9.db"), 0o640)
    if os.geteuid() == 0:
        os.chown(os.path.join(path, "cert9.db"), 0, 4242)
    st = os.stat(os.path.join(path, "cert9.db"))
    _outcome, changed, failed = converge_db(world, path, None)
    assert changed and not failed
    now = os.stat(os.path.join(path, "cert9.db"))
    assert (now.st_mode, now.st_uid, now.st_gid) == (st.st_mode, st.st_uid, st.st_gid)
    assert now.st_ino != st.st_ino  # replaced by a rename, not rewritten in place


@pytest.mark.parametrize("given", ["wrong-password", None], ids=["wrong", "none-given"])
def test_wrong_password_is_byte_identical(world, tmp_path, given):
    path = make_guichet_db(tmp_path / "nssdb", world, NSS_PASSWORD)
    before = files(path)
    outcome, changed, failed = converge_db(world, path, given)
    assert failed and not changed and outcome.result["code"] == WRONG_PASSWORD
    assert "password incorrect" in outcome.result["msg"]
    assert files(path) == before


def test_corrupt_cert9_is_byte_identical(world, tmp_path):
    path = make_guichet_db(tmp_path / "nssdb", world, None)
    cert9 = os.path.join(path, "cert9.db")
    with open(cert9, "r+b") as handle:
        data = handle.read()
        handle.seek(0)
        handle.write(data[:100] + b"\xff" * 4096 + data[4196:])
    before = files(path)
    outcome, changed, failed = converge_db(world, path, None)
    assert failed and outcome.result["code"] == CORRUPT, outcome.result
    assert files(path) == before


def test_not_sqlite_is_corrupt(world, tmp_path):
    path = make_guichet_db(tmp_path / "nssdb", world, None)
    with open(os.path.join(path, "cert9.db"), "wb") as handle:
        handle.write(b"garbage" * 100)
    before = files(path)
    outcome, _changed, failed = converge_db(world, path, None)
    assert failed and outcome.result["code"] == CORRUPT and "not an SQLite file" in outcome.result["msg"]
    assert files(path) == before


def test_read_only_folder_is_byte_identical(world, tmp_path, monkeypatch):
    """The working copy cannot be made beside the database (a read-only file system)."""
    path = make_guichet_db(tmp_path / "nssdb", world, None)
    before = files(path)
    real = tempfile.mkdtemp

    def refuse(*args, **kw):
        if kw.get("dir") == str(tmp_path):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, **kw)

    monkeypatch.setattr(_nss.tempfile, "mkdtemp", refuse)
    outcome, changed, failed = converge_db(world, path, None)
    assert failed and not changed and outcome.result["code"] == IO_ERROR
    assert "read-only file system" in outcome.result["msg"]
    assert files(path) == before


def test_rename_failing_midway_puts_the_database_back(world, tmp_path, monkeypatch):
    """The second file's rename fails: the first one is put back byte for byte. key4.db (where
    NSS signs the trust) goes first, cert9.db last."""
    path = make_guichet_db(tmp_path / "nssdb", world, NSS_PASSWORD)
    before = files(path)
    real = os.rename
    calls = []

    def second_fails(src, dst):
        if dst.startswith(path + os.sep) and ".nss-" in src:
            calls.append(dst)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(_nss.os, "rename", second_fails)
    outcome, changed, failed = converge_db(world, path, NSS_PASSWORD)
    monkeypatch.setattr(_nss.os, "rename", real)
    assert [os.path.basename(c) for c in calls] == ["key4.db", "cert9.db"], calls
    assert failed and outcome.result["code"] == IO_ERROR and "is as it was" in outcome.result["msg"]
    assert files(path) == before
    assert [n for n in os.listdir(str(tmp_path)) if n.endswith(".sne-tmp")] == []


def test_legacy_cert8_is_reported_not_converted(world, tmp_path):
    folder = tmp_path / "legacy"
    folder.mkdir()
    for name in ("cert8.db", "key3.db", "secmod.db"):
        (folder / name).write_bytes(b"\x00\x06\x15\x61" + os.urandom(60))  # Berkeley DB hash
    before = files(str(folder))
    outcome, _changed, failed = converge_db(world, str(folder), None, create=True)
    assert failed and outcome.result["code"] == UNSUPPORTED
    assert "legacy NSS database" in outcome.result["msg"] and "not converted" in outcome.result["msg"]
    assert files(str(folder)) == before


def test_missing_certutil_names_the_package(world, tmp_path):
    path = make_guichet_db(tmp_path / "nssdb", world, None)
    before = files(path)
    spec = StoreSpec(path, "nss")
    outcomes, _changed, failed = converge([spec], world.present, world.absent, False,
                                          Backups(None, None), run_command, lambda name: None)
    result = outcomes[0].result
    assert failed and result["code"] == TOOL_MISSING and "libnss3-tools" in result["msg"]
    assert files(path) == before


def test_created_database_has_the_password(world, tmp_path):
    path = str(tmp_path / "new-db")
    outcome, changed, failed = converge_db(world, path, NSS_PASSWORD, create=True)
    assert changed and not failed, outcome.result.get("msg")
    assert set(contents(path)) == {"sne-chiffrement-v5", "sne-ac-v5"}
    bad = certutil(path, "-K", password="not-it", check=False)
    assert bad.returncode != 0 and "SEC_ERROR_BAD_PASSWORD" in bad.stderr


def test_retired_found_whatever_its_nickname_and_other_entries_kept(world, tmp_path):
    """The retired certificates go whatever their nicknames; V5's authority already held
    under a V4-looking nickname is recognised by its SHA-256, kept and not added twice."""
    path = make_guichet_db(tmp_path / "nssdb", world, None)
    add(path, "AC SNE V4 (copie)", "C,,", world.files["ac-v5"])  # ac-v5 under a V4-ish name
    outcome, changed, failed = converge_db(world, path, None)
    assert changed and not failed, outcome.result.get("msg")
    after = contents(path)
    assert after["AC SNE V4 (copie)"] == ("C,,", [world.sha["ac-v5"]])  # already held: kept
    assert "sne-ac-v5" not in after and CA_V4_NICK not in after and V4_NICK not in after
    assert after["sne-chiffrement-v5"] == ("P,,", [world.sha["chiffrement-v5"]])


def test_linked_database_file_is_refused(world, tmp_path):
    path = make_guichet_db(tmp_path / "nssdb", world, None)
    os.rename(os.path.join(path, "key4.db"), str(tmp_path / "key4.db"))
    os.symlink(str(tmp_path / "key4.db"), os.path.join(path, "key4.db"))
    before = files(path)
    outcome, _changed, failed = converge_db(world, path, None)
    assert failed and outcome.result["code"] == UNSUPPORTED and "symbolic link" in outcome.result["msg"]
    assert files(path) == before and os.path.islink(os.path.join(path, "key4.db"))


def test_backups_put_the_database_back_byte_for_byte(world, tmp_path):
    """What playbooks/rollback.yml does with the manifest (``cp -a --remove-destination`` of
    each replaced file) gives the database back byte for byte: V4 and its trust again."""
    path = make_guichet_db(tmp_path / "nssdb", world, NSS_PASSWORD)
    before, listed = files(path), contents(path)
    _outcome, changed, failed = converge_db(world, path, NSS_PASSWORD, backup_dir=str(tmp_path / "b"))
    assert changed and not failed and files(path) != before
    with open(str(tmp_path / "b" / "r1" / "manifest.jsonl")) as handle:
        entries = [json.loads(line) for line in handle]
    assert set(e["action"] for e in entries) == {"replaced"}
    assert os.path.join(path, "cert9.db") in [e["path"] for e in entries]
    for entry in entries:
        subprocess.run(["cp", "-a", "--remove-destination", "--", entry["backup"], entry["path"]], check=True)
    assert files(path) == before and contents(path) == listed
