# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_common/lock: one exclusive lock per store (real path), a clear message when it is held,
released by the kernel when the holder dies, locks taken in one order (no deadlock).

The other processes are real (fork); every wait is bounded and event-driven, no timing is
asserted."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import time
import types

import pytest

from ansible_collections.sne.guichet.plugins.module_utils._common import lock as _lock
from ansible_collections.sne.guichet.plugins.module_utils._common.errors import LOCKED, StoreError
from ansible_collections.sne.guichet.plugins.module_utils._common.lock import StoreLock, StoreLocks

FORK = multiprocessing.get_context("fork")
BOUND = 30  # seconds: only so that a broken test cannot hang


@pytest.fixture
def locks(tmp_path, monkeypatch):
    """The lock folder is under tmp_path: the tests never touch /run/lock."""
    base = tmp_path / "run-lock"
    base.mkdir()
    monkeypatch.setattr(_lock, "LOCK_BASES", (str(base),))
    monkeypatch.setattr(_lock.tempfile, "gettempdir", lambda: str(base))
    return base / ("sne-guichet" if os.geteuid() == 0 else "sne-guichet-%d" % os.geteuid())


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "etc" / "app.jks"
    path.parent.mkdir()
    path.write_bytes(b"keystore")
    return str(path)


def _files(folder):
    return sorted(os.listdir(str(folder))) if os.path.isdir(str(folder)) else []


def _hold(paths, run_id, held, release, kill=False):
    """Child: lock ``paths``, say so, then wait for ``release`` (or die by SIGKILL)."""
    with StoreLocks(paths, 0, run_id) as taken:
        assert not taken.errors, taken.errors
        held.set()
        if kill:
            os.kill(os.getpid(), signal.SIGKILL)
        release.wait(BOUND)


def _holder(paths, run_id="holder-run", kill=False):
    held, release = FORK.Event(), FORK.Event()
    child = FORK.Process(target=_hold, args=(paths, run_id, held, release, kill))
    child.start()
    assert held.wait(BOUND), "the holder did not get the lock"
    return child, release


def test_lock_file_says_who_holds_it_and_is_gone_after(locks, store):
    with StoreLocks([store], 0, "run-7") as taken:
        assert not taken.errors
        (name,) = _files(locks)
        text = (locks / name).read_text()
        assert re.match(r"pid %d since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\S* run run-7\n" % os.getpid(), text)
        assert "store %s" % os.path.realpath(store) in text
        assert oct(os.stat(str(locks)).st_mode & 0o777) == "0o700"
    assert _files(locks) == []  # a clean run leaves no file behind
    assert os.path.exists(store) and _files(os.path.dirname(store)) == ["app.jks"]


def test_held_by_another_process_the_message_names_it(locks, store):
    child, release = _holder([store])
    try:
        with StoreLocks([store], 0.3, "waiter") as taken:
            error = taken.refused(store)
    finally:
        release.set()
        child.join(BOUND)
    assert isinstance(error, StoreError) and error.code == LOCKED
    assert re.match(r"%s is locked by pid %d \(run holder-run\) since \S+; waited \d+\.\d s; "
                    r"nothing done" % (re.escape(store), child.pid), error.reason), error.reason
    assert child.exitcode == 0


def test_a_waiting_run_gets_the_lock_when_the_holder_lets_go(locks, store, monkeypatch):
    child, release = _holder([store])
    waits = []

    def sleep(seconds):  # the first time we wait, the holder finishes
        waits.append(seconds)
        release.set()
        time.sleep(seconds)

    monkeypatch.setattr(_lock, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=sleep))
    try:
        with StoreLocks([store], BOUND, "waiter") as taken:
            assert taken.errors == {}
            (name,) = _files(locks)
            assert "run waiter" in (locks / name).read_text()
    finally:
        release.set()
        child.join(BOUND)
    assert waits, "the lock was not held when we asked: the test proved nothing"


def test_a_killed_holder_leaves_a_file_that_does_not_block(locks, store):
    child, _release = _holder([store], run_id="killed-run", kill=True)
    child.join(BOUND)
    assert child.exitcode == -signal.SIGKILL
    (name,) = _files(locks)  # the killed run could not remove its file ...
    assert "pid %d " % child.pid in (locks / name).read_text()
    with StoreLocks([store], 0, "next") as taken:  # ... and it does not block: no wait at all
        assert taken.errors == {}
        assert (locks / name).read_text().startswith("pid %d " % os.getpid())
    assert _files(locks) == []


def test_a_store_reached_through_a_link_is_the_same_lock(locks, store, tmp_path):
    link = tmp_path / "conf"
    link.symlink_to(os.path.dirname(store))
    other = str(link / "app.jks")
    child, release = _holder([other])
    try:
        with StoreLocks([store], 0, "direct") as taken:
            error = taken.refused(store)
    finally:
        release.set()
        child.join(BOUND)
    assert error is not None and error.code == LOCKED
    assert "(%s)" % os.path.realpath(store) not in error.reason  # the path given is the real one
    # Both paths in one run: one lock, taken once (a second flock of our own would block).
    with StoreLocks([store, other], 0, "both") as taken:
        assert taken.errors == {} and len(taken.held) == 1


def test_a_store_that_does_not_exist_yet_is_locked_too(locks, tmp_path):
    new = str(tmp_path / "etc" / "new.jks")
    with StoreLocks([new], 0, "create") as taken:
        assert taken.errors == {} and len(_files(locks)) == 1


def test_a_waiter_on_a_removed_lock_file_tries_again(locks, store, monkeypatch):
    """The holder removes its file as it lets go; a waiter that opened the file just before
    gets the flock of a removed file: it must see that and take the new one, or two runs
    would hold "the" lock at once."""
    first = StoreLock(os.path.realpath(store), str(locks), "first")
    os.makedirs(str(locks), 0o700)
    first.acquire(time.monotonic(), store)
    real_fcntl = _lock.fcntl
    calls = []

    def flock(fd, how):
        calls.append(how)
        if len(calls) == 1:
            first.release()  # between the waiter's open() and its flock()
        return real_fcntl.flock(fd, how)

    monkeypatch.setattr(_lock, "fcntl", types.SimpleNamespace(
        flock=flock, LOCK_EX=real_fcntl.LOCK_EX, LOCK_NB=real_fcntl.LOCK_NB))
    second = StoreLock(os.path.realpath(store), str(locks), "second")
    second.acquire(time.monotonic() + BOUND, store)
    monkeypatch.setattr(_lock, "fcntl", real_fcntl)
    assert len(calls) == 2  # flock of the removed file, then of the new one
    third = StoreLock(os.path.realpath(store), str(locks), "third")
    with pytest.raises(StoreError, match="locked by pid %d \\(run second\\)" % os.getpid()):
        third.acquire(time.monotonic(), store)
    second.release()
    assert _files(locks) == []


def _take_in_turn(paths, run_id, first_held, other_waits, done):
    """Child: lock ``paths``; after the first lock, wait until the other run is waiting."""
    real_acquire = StoreLock.acquire
    real_sleep = time.sleep

    def acquire(self, deadline, store):
        real_acquire(self, deadline, store)
        if not first_held.is_set():
            first_held.set()
            other_waits.wait(BOUND)

    def sleep(seconds):
        other_waits.set()
        real_sleep(seconds)

    StoreLock.acquire = acquire
    _lock.time = types.SimpleNamespace(monotonic=time.monotonic, sleep=sleep)
    with StoreLocks(paths, 3, run_id) as taken:
        done.put((run_id, sorted(taken.errors), [lock.real_path for lock in taken.held]))


def test_overlapping_runs_lock_in_one_order_and_cannot_deadlock(locks, tmp_path):
    """Run A is stopped holding its first store while run B, whose list is in the other
    order, starts: taken in the order given, A would hold x waiting for y and B hold y
    waiting for x until both time out."""
    x, y = str(tmp_path / "x.jks"), str(tmp_path / "y.jks")
    first_held, other_waits, done = FORK.Event(), FORK.Event(), FORK.Queue()
    a = FORK.Process(target=_take_in_turn, args=([x, y], "A", first_held, other_waits, done))
    a.start()
    assert first_held.wait(BOUND)
    b = FORK.Process(target=_take_in_turn, args=([y, x], "B", first_held, other_waits, done))
    b.start()
    results = sorted(done.get(timeout=BOUND) for _round in range(2))
    a.join(BOUND)
    b.join(BOUND)
    assert results == [("A", [], sorted([x, y])), ("B", [], sorted([x, y]))]


@pytest.mark.parametrize("spoil,why", [
    (lambda folder: folder.symlink_to(folder.parent), "is not a folder"),
    (lambda folder: (folder.mkdir(), folder.chmod(0o777)), "is writable by others"),
    (lambda folder: (folder.mkdir(), os.chown(str(folder), 4242, -1)), "belongs to uid 4242"),
])
def test_a_lock_folder_someone_else_could_use_is_refused(locks, store, spoil, why):
    if why.startswith("belongs") and os.geteuid() != 0:
        pytest.skip("needs root to give the folder away")
    spoil(locks)
    with StoreLocks([store], 0, "run") as taken:
        error = taken.refused(store)
    assert error is not None and error.code == LOCKED
    assert "the lock folder %s %s" % (locks, why) in error.reason


def test_lock_folder_falls_back_when_one_cannot_be_made(tmp_path, monkeypatch):
    missing, readonly, usable = tmp_path / "missing", tmp_path / "ro", tmp_path / "tmp"
    readonly.mkdir()
    usable.mkdir()
    monkeypatch.setattr(_lock, "LOCK_BASES", (str(missing), str(readonly)))
    monkeypatch.setattr(_lock.tempfile, "gettempdir", lambda: str(usable))
    real_mkdir = os.mkdir

    def mkdir(path, mode=0o777):
        if path.startswith(str(readonly)):
            raise PermissionError(13, "Permission denied", path)
        return real_mkdir(path, mode)

    monkeypatch.setattr(_lock.os, "mkdir", mkdir)
    assert os.path.dirname(_lock.lock_folder()) == str(usable)
    monkeypatch.setattr(_lock.tempfile, "gettempdir", lambda: str(readonly))
    with pytest.raises(StoreError, match="no folder to keep the store locks in .*Permission denied"):
        _lock.lock_folder()
