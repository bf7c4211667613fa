"""Crash safety of the retire run: SIGKILLed at its write-side calls, on one file system and
across two (os.rename refusing the moves into the quarantine with EXDEV).

A forked child (the pattern of ``_stores/test_crash.py``, with ``crash_child.Killer``) runs one
real retire on the host tree of ``retire_tree.Tree`` (three strays, a taken place, a bundle
needing a person, a declared store, a link, two configuration files), backups on, and kills
itself with SIGKILL at its k-th write-side call, before or after it. A first run without a kill
counts the calls (K) and gives the new tree. After each kill:

- every stray is at its place with its bytes, or in the quarantine with its bytes: never lost,
  never half; across file systems both places may hold it whole (killed between the copy and
  the removal of the original), which the next run finishes;
- every configuration file is its old or its new bytes; every other file is untouched;
- every backup the manifest lists is complete; the run's quarantine folder, which
  ``rollback.yml`` moves back from, holds no temporary file;
- a rerun (the same run_id or a new one, alternately) succeeds and leaves the tree of the run
  that was not killed (outside the quarantine and backups), every stray quarantined whole, no
  temporary file anywhere but in the backup folders; a third run changes nothing.

The default test command kills at every call on one side (before for odd k, after for even k,
and after every write: a torn write); ``-m fuzz`` kills at every call on both sides.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
import traceback

import crash_child
import pytest
from retire_tree import RUN_ID, Tree

from ansible_collections.sne.guichet.plugins.module_utils._common import lock as _lock
from ansible_collections.sne.guichet.plugins.module_utils._retire.quarantine import STAGING
from ansible_collections.sne.guichet.plugins.module_utils._retire.run import retire

TMP_SUFFIX = ".sne-tmp"
RERUN_ID = "r2"
BOUND = 120.0  # seconds: only so that a broken child cannot hang the test
FIGURES = {}


def cross_device(tree):
    """os.rename refuses every move from outside the quarantine into it (two file systems)."""
    real = os.rename

    def rename(src, dst, *args, **kwargs):
        if str(dst).startswith(tree.quarantine_dir) and not str(src).startswith(tree.quarantine_dir):
            raise OSError(18, "Invalid cross-device link")  # EXDEV
        return real(src, dst, *args, **kwargs)

    os.rename = rename


def run_child(tree, case, run_id, kill_at=0, side="before", trace=None, cross=False):
    """One retire run in a forked child; its (result, error) or None when it was killed."""
    out = os.path.join(case, "result-%s-%d-%s.json" % (run_id, kill_at, side))
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.environ["TMPDIR"] = os.path.join(case, "locks")
            tempfile.tempdir = None
            crash_child._new_process()
            _lock.LOCK_BASES = (os.path.join(case, "locks"),)
            if cross:
                cross_device(tree)
            killer = crash_child.Killer(kill_at, side, trace)
            killer.install()
            try:
                outcome = retire(tree.params(run_id))
            finally:
                killer.uninstall()
                if killer.trace:
                    killer.trace.flush()
            with crash_child._REAL_OPEN(out, "w") as handle:
                json.dump({"outcome": outcome, "calls": killer.count}, handle)
            code = 0
        except BaseException:  # noqa: BLE001 - reported to the parent, which fails the test
            with crash_child._REAL_OPEN(out + ".error", "w") as handle:
                handle.write(traceback.format_exc())
        finally:
            os._exit(code)
    deadline = time.monotonic() + BOUND
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the child did not end within %d s" % BOUND)
        time.sleep(0.001)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        with open(out) as handle:
            return json.load(handle)
    if os.path.exists(out + ".error"):
        with open(out + ".error") as handle:
            raise AssertionError("the child failed:\n" + handle.read())
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    return None


def read(path):
    if not os.path.lexists(path):
        return None
    with open(path, "rb") as handle:
        return handle.read()


def leftovers(top, skip=()):
    found = []
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) not in skip]
        found.extend(os.path.join(folder, n) for n in dirs + files if n.endswith(TMP_SUFFIX))
    return found


class Case:
    """A fresh host tree in its own folder."""

    def __init__(self, base, label, pki):
        self.dir = os.path.join(base, label)
        os.makedirs(os.path.join(self.dir, "locks"))
        self.tree = Tree(os.path.join(self.dir, "host"), pki).make()
        self.strays = {path: read(path) for path in self.tree.strays}
        self.old_config = read(self.tree.config)

    def check_killed(self, cross):
        """What a kill may leave; the strays seen at both places (whole)."""
        tree = self.tree
        both = 0
        for path, data in self.strays.items():
            here, there = read(path), read(tree.place(path))
            whole = (here, there) in ((data, None), (None, data)) or (cross and here == there == data)
            assert whole, "%s: at its place %s, in quarantine %s" % (
                path, "whole" if here == data else here and "HALF" or "no",
                "whole" if there == data else there and "HALF" or "no")
            both += here == there == data
        assert read(tree.config) in (self.old_config, tree.new_config()), "configuration half written"
        for entry in tree.manifest():
            assert read(entry["backup"]) == self.old_config, "a listed backup is not complete"
        assert leftovers(os.path.join(tree.quarantine_dir, RUN_ID)) == [], "temporary file in the quarantine"
        return both

    def check_rerun(self, ref_outside, run_ids):
        tree = self.tree
        if RERUN_ID in run_ids:  # under a new run_id the taken stray has a free place: moved too
            taken = os.path.relpath(tree.taken, tree.root)
            ref_outside = {rel: what for rel, what in ref_outside.items() if rel != taken}
            assert read(tree.place(tree.taken, RERUN_ID)) is not None
        assert tree.outside() == ref_outside, "the rerun did not converge"
        for path, data in self.strays.items():
            assert read(path) is None
            assert data in [read(tree.place(path, r)) for r in run_ids], "%s lost" % path
        listed = [entry for r in run_ids for entry in tree.manifest(r)]
        assert listed and all(read(e["backup"]) == self.old_config for e in listed)
        assert leftovers(tree.root, skip=(tree.backup_dir,)) == []


def kill_points(count, full):
    if full:
        return [(k, side) for side in ("before", "after") for k in range(1, count + 1)]
    return [(k, "before" if k % 2 else "after") for k in range(1, count + 1)]


@pytest.fixture
def base(tmp_path):
    """A tmpfs (/dev/shm) when there is one: a SIGKILL leaves there what it leaves on a disk."""
    shm = "/dev/shm"
    if not (os.path.isdir(shm) and os.access(shm, os.W_OK)):
        yield str(tmp_path)
        return
    folder = tempfile.mkdtemp(prefix="sne-retire-crash-", dir=shm)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def crash_run(mode, pki, base, full):
    cross = mode == "cross-device"
    ref = Case(base, "reference", pki)
    trace = os.path.join(ref.dir, "trace.txt")
    done = run_child(ref.tree, ref.dir, RUN_ID, trace=trace, cross=cross)
    result, error = done["outcome"]
    assert error is None and result["changed"] and len(result["quarantined"]) == 3, done
    ref_outside = ref.tree.outside()
    with open(trace) as handle:
        calls = handle.read().splitlines()
    assert len(calls) == done["calls"]
    points = kill_points(len(calls), full)
    failures = []
    both = 0  # kills that left a stray whole at both places (finished by the rerun)
    for kill_at, side in points:
        case = Case(base, "%d-%s" % (kill_at, side), pki)
        try:
            assert run_child(case.tree, case.dir, RUN_ID, kill_at, side, cross=cross) is None, "not killed"
            both += case.check_killed(cross) > 0
            rerun_id = RUN_ID if kill_at % 2 else RERUN_ID
            again = run_child(case.tree, case.dir, rerun_id, cross=cross)
            assert again["outcome"][1] is None, again
            case.check_rerun(ref_outside, sorted({RUN_ID, rerun_id}))
            third = run_child(case.tree, case.dir, rerun_id, cross=cross)
            assert third["outcome"][1] is None and not third["outcome"][0]["changed"], third
        except AssertionError as exc:
            first_line = str(exc).split("\n", maxsplit=1)[0]
            failures.append("killed %s call %s: %s" % (side, calls[kill_at - 1], first_line))
        shutil.rmtree(case.dir)
    assert not failures, "%s: %d of %d kills failed:\n%s" % (mode, len(failures), len(points),
                                                             "\n".join(failures[:40]))
    assert (both > 0) == cross, "kills between the copy and the removal of the original: %d" % both
    FIGURES[mode] = {"calls": len(calls), "kills": len(points), "both_places": both}
    print("\nretire crash %s: %d write-side calls, %d kills, %d left a stray whole at both places"
          % (mode, len(calls), len(points), both))


@pytest.mark.parametrize("mode", ["same-fs", "cross-device"])
def test_killed_at_every_call(mode, pki, base):
    crash_run(mode, pki, base, full=False)


@pytest.mark.fuzz
@pytest.mark.parametrize("mode", ["same-fs", "cross-device"])
def test_killed_at_every_call_both_sides(mode, pki, base):
    crash_run(mode, pki, base, full=True)


def test_the_staging_folder_is_outside_every_run_folder():
    assert STAGING.startswith(".") and "/" not in STAGING
