# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""OS trust anchors: the refresh-pending mark (a refresh an interrupted run left undone).

The kill itself is in test_crash.py (a real SIGKILL before the refresh command); here the
run is interrupted in-process (the refresh command raises a BaseException, as a kill
would stop it there) and each outcome is checked: check mode, the rerun, a failed
refresh, a mark that cannot be written, a failed change that was undone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess

import pytest

from ansible_collections.sne.guichet.plugins.module_utils._common import lock as _lock
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import IO_ERROR, StoreError
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._stores import _journal
from ansible_collections.sne.guichet.plugins.module_utils._stores import trust_anchors as _anchors
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import CertEntry, StoreSpec
from ansible_collections.sne.guichet.plugins.module_utils._stores.engine import converge
from ansible_collections.sne.guichet.plugins.module_utils._stores.trust_anchors import TrustAnchorStore


class Killed(BaseException):
    """Stands for the SIGKILL: nothing after it runs, no cleanup catches it."""


@pytest.fixture
def locks(tmp_path, monkeypatch):
    folder = tmp_path / "locks"
    folder.mkdir()
    monkeypatch.setattr(_lock, "LOCK_BASES", (str(folder),))
    return folder / "sne-guichet"


@pytest.fixture
def world(tmp_path, pki, locks):
    def der(ident):
        with open(os.path.join(pki["dir"], ident + ".der"), "rb") as handle:
            return handle.read()

    def pem(ident):
        with open(os.path.join(pki["dir"], ident + ".pem"), "rb") as handle:
            return handle.read()

    folder = tmp_path / "anchors"
    folder.mkdir()
    (folder / "root.crt").write_bytes(pem("root"))
    (folder / "ac-v4.crt").write_bytes(pem("ac-v4"))
    log = tmp_path / "refresh.log"
    script = tmp_path / "refresh.sh"
    script.write_text("#!/bin/sh\necho run >> %s\nexit ${SNE_FAIL:-0}\n" % log)
    script.chmod(0o755)
    absent = {CertEntry("", der("ac-v4")).sha256}
    return {"folder": folder, "log": log, "script": str(script), "locks": locks,
            "present": [CertEntry("sne-ac-v5", der("ac-v5"))], "absent": absent,
            "backup_dir": str(tmp_path / "backups"), "ac-v4": pem("ac-v4")}


def run_command(argv, data=None, environ_update=None):
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def killed_at_refresh(argv, data=None, environ_update=None):
    raise Killed()


def run(world, check_mode=False, runner=run_command, run_id="run2"):
    """One keystores convergence of the anchor folder; its store result."""
    spec = StoreSpec(str(world["folder"]), "debian", refresh=world["script"])
    outcomes, _changed, _failed = converge([spec], world["present"], world["absent"], check_mode,
                                           Backups(world["backup_dir"], run_id), runner,
                                           lambda name: None)
    return outcomes[0].result


def tree(folder):
    return dict((name, hashlib.sha256((folder / name).read_bytes()).hexdigest())
                for name in sorted(os.listdir(folder)))


def refreshes(world):
    return world["log"].read_text().count("run\n") if world["log"].exists() else 0


def marks(world):
    locks = world["locks"]
    return sorted(n for n in os.listdir(locks) if n.endswith(".refresh-pending")) if locks.is_dir() else []


def interrupt(world):
    """A run killed after the folder's files were written, before the refresh ran."""
    with pytest.raises(Killed):
        run(world, runner=killed_at_refresh, run_id="run1")
    assert sorted(os.listdir(world["folder"])) == ["root.crt", "sne-ac-v5.crt"]
    assert refreshes(world) == 0 and len(marks(world)) == 1


def test_a_refresh_left_pending_is_reported_in_check_mode_and_run_by_the_rerun(world):
    interrupt(world)
    folder = tree(world["folder"])
    checked = run(world, check_mode=True)
    assert checked["changed"] and not checked["failed"]
    assert checked["added"] == [] and checked["removed"] == []
    words = r"refresh pending from an interrupted run \(run run1, pid %d, since [0-9T:+-]+\): %s %s"
    assert re.fullmatch(words % (os.getpid(), re.escape(world["script"]), "to run"),
                        checked["refresh_pending"]), checked["refresh_pending"]
    assert refreshes(world) == 0 and len(marks(world)) == 1 and tree(world["folder"]) == folder

    rerun = run(world)
    assert rerun["changed"] and not rerun["failed"] and rerun["backup"] is None
    assert re.fullmatch(words % (os.getpid(), re.escape(world["script"]), "run"),
                        rerun["refresh_pending"]), rerun["refresh_pending"]
    assert rerun["refresh"] == {"command": world["script"], "rc": 0}
    assert refreshes(world) == 1 and marks(world) == [] and tree(world["folder"]) == folder

    third = run(world)
    assert not third["changed"] and "refresh_pending" not in third and "refresh" not in third
    assert refreshes(world) == 1


def test_the_mark_is_outside_the_folder_private_and_keyed_by_the_real_path(world, tmp_path):
    interrupt(world)
    (name,) = marks(world)
    real = os.path.realpath(str(world["folder"]))
    assert name == hashlib.sha256(os.fsencode(real)).hexdigest() + ".refresh-pending"
    mark = world["locks"] / name
    assert stat.S_IMODE(os.stat(mark).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(world["locks"]).st_mode) == 0o700
    content = json.loads(mark.read_text())
    assert content["store"] == real and content["command"] == world["script"] and content["run"] == "run1"
    # the same folder through a link is the same store: its rerun finds the mark
    link = tmp_path / "anchors-link"
    link.symlink_to(world["folder"])
    store = TrustAnchorStore(StoreSpec(str(link), "debian", refresh=world["script"]), run_command,
                             lambda name: None)
    plan = store.plan(store.load(), world["present"], world["absent"])
    assert plan.changed and not plan.add and not plan.remove
    assert store.mark_path() == str(mark)


def test_the_mark_is_written_before_the_first_write_into_the_folder(world, monkeypatch):
    seen = []
    real_write = _journal.Journal.write

    def write(journal, path, *args, **kwargs):
        seen.append((os.path.basename(path), list(marks(world))))
        return real_write(journal, path, *args, **kwargs)

    monkeypatch.setattr(_journal.Journal, "write", write)
    result = run(world)
    assert result["changed"] and not result["failed"], result
    assert [name for name, _marks in seen] == ["sne-ac-v5.crt"]
    assert len(seen[0][1]) == 1, "the folder was written before its refresh was marked pending"
    assert marks(world) == [] and refreshes(world) == 1 and "refresh_pending" not in result


def test_a_failed_refresh_keeps_the_mark_and_says_so(world, monkeypatch):
    monkeypatch.setenv("SNE_FAIL", "4")
    failed = run(world)
    assert failed["failed"] and failed["code"] == IO_ERROR
    assert "certificates were written but the refresh command %s failed (rc=4)" % world["script"] \
        in failed["msg"]
    assert "the refresh stays pending: fix the cause, the next run runs it again" in failed["msg"]
    assert len(marks(world)) == 1 and refreshes(world) == 1
    again = run(world)  # still failing: the pending refresh alone fails the same way
    assert again["failed"] and "the refresh an interrupted run left pending, %s failed (rc=4)" \
        % world["script"] in again["msg"] and "(backup: none needed)" in again["msg"]
    assert len(marks(world)) == 1 and refreshes(world) == 2
    monkeypatch.setenv("SNE_FAIL", "0")
    fixed = run(world)
    assert fixed["changed"] and not fixed["failed"] and fixed["refresh_pending"].endswith(" run")
    assert marks(world) == [] and refreshes(world) == 3
    assert not run(world)["changed"]


def test_a_mark_that_cannot_be_written_stops_the_change(world, monkeypatch):
    before = tree(world["folder"])

    def refuse(path, *args, **kwargs):
        raise StoreError(IO_ERROR, "cannot write in %s: no space left on device" % os.path.dirname(path))

    monkeypatch.setattr(_anchors, "atomic_write", refuse)
    result = run(world)
    assert result["failed"] and result["code"] == IO_ERROR
    assert "cannot note its refresh as pending (cannot write in %s: no space left on device); nothing " \
        "written" % world["locks"] in result["msg"]
    assert tree(world["folder"]) == before and refreshes(world) == 0 and marks(world) == []


def test_a_change_undone_leaves_no_mark_unless_one_was_pending(world, monkeypatch):
    before = tree(world["folder"])
    real_write = _journal.Journal.write

    def full(journal, path, *args, **kwargs):
        raise StoreError(IO_ERROR, "cannot write %s: no space left on device" % path)

    monkeypatch.setattr(_journal.Journal, "write", full)
    result = run(world)
    assert result["failed"] and "were undone" in result["msg"]
    assert tree(world["folder"]) == before and marks(world) == [] and refreshes(world) == 0
    # a refresh already pending stays pending when this run's change fails and is undone
    monkeypatch.setattr(_journal.Journal, "write", real_write)
    interrupt(world)
    (world["folder"] / "ac-v4.crt").write_bytes(world["ac-v4"])  # to be removed again
    before = tree(world["folder"])
    monkeypatch.setattr(_journal.Journal, "remove", full)
    result = run(world)
    assert result["failed"] and "were undone" in result["msg"]
    assert tree(world["folder"]) == before and len(marks(world)) == 1 and refreshes(world) == 0
