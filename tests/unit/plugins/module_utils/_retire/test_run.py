"""_retire/run: one retire run on a real host tree - what it moves, leaves and rewrites; check
mode writes nothing and says what a real run does; the diff holds no unchanged line; a second
run changes nothing; rollback.yml's steps give back the tree byte for byte; a held lock or a
failed write stops the run with a clear message and what was done before."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os

import pytest
from retire_tree import PASSWORD, RUN_ID

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import ArgumentError
from ansible_collections.sne.guichet.plugins.module_utils._common.lock import StoreLocks
from ansible_collections.sne.guichet.plugins.module_utils._retire import quarantine as _q
from ansible_collections.sne.guichet.plugins.module_utils._retire import run as _run
from ansible_collections.sne.guichet.plugins.module_utils._retire.run import retire, run_retire

FORK = multiprocessing.get_context("fork")
BOUND = 30  # seconds: only so that a broken test cannot hang


def expected(tree):
    return {"quarantined": sorted(tree.strays), "quarantine_taken": [tree.taken],
            "needs_attention": tree.attention, "config_rewritten": [tree.config]}


def summary(result):
    return {key: sorted(result[key]) if key == "quarantined" else result[key]
            for key in ("quarantined", "quarantine_taken", "needs_attention", "config_rewritten")}


def test_one_run_moves_leaves_and_rewrites(tree):
    with open(tree.taken, "rb") as handle:
        taken = handle.read()
    strays = {}
    for path in tree.strays:
        with open(path, "rb") as handle:
            strays[path] = handle.read()
    quiet = os.stat(tree.quiet_config)
    result, error = retire(tree.params())
    assert error is None and result["changed"] and result["run_id"] == RUN_ID
    assert summary(result) == expected(tree)
    for path, data in strays.items():
        assert not os.path.lexists(path)
        with open(tree.place(path), "rb") as handle:
            assert handle.read() == data
    with open(tree.taken, "rb") as handle:
        assert handle.read() == taken  # its place was taken: left where it was
    assert os.readlink(tree.link) == "lib/Chiffrement_SNEV4.cer"  # a link is never moved (now dangling)
    assert os.path.isfile(os.path.join(tree.declared, "v4.pem"))  # declared: keystores' business
    with open(tree.config, "rb") as handle:
        assert handle.read() == tree.new_config()
    assert os.stat(tree.quiet_config).st_mtime_ns == quiet.st_mtime_ns  # nothing to change: not written
    assert tree.manifest() == [{"action": "replaced", "path": tree.config,
                                "backup": os.path.join(tree.backup_dir, RUN_ID, "files") + tree.config}]
    found = {place["path"] for places in result["found"].values() for place in places}
    assert set(tree.strays) | {tree.link, tree.taken} | set(tree.attention) <= found
    assert not any(p.startswith(tree.quarantine_dir) for p in found)  # the quarantine is never scanned


def test_check_mode_writes_nothing_and_says_what_a_real_run_does(tree):
    before = tree.snapshot(times=True)
    checked, error = retire(tree.params(), check_mode=True, diff=True)
    assert error is None
    assert tree.snapshot(times=True) == before  # not a byte, not a folder, not a time
    real, error = retire(tree.params(), diff=True)
    assert error is None
    assert checked == real and checked["changed"]


def test_the_diff_shows_no_unchanged_line_of_the_configuration(tree):
    result, error = retire(tree.params(), check_mode=True, diff=True)
    assert error is None
    text = json.dumps(result)
    assert PASSWORD not in text and "other=unchanged line" not in text and "# guichet" not in text
    config = [d for d in result["diff"] if d["path"] == tree.config]
    assert len(config) == 1 and config[0]["replacements"] == 3
    moves = {d["before"]: d["after"] for d in result["diff"] if "quarantine" in d}
    assert moves == {p + "\n": tree.place(p) + "\n" for p in tree.strays}
    assert not any(d["path"] == tree.quiet_config for d in result["diff"])
    assert "diff" not in retire(tree.params(), check_mode=True)[0]  # only in diff mode


def test_a_second_run_changes_nothing(tree):
    first, error = retire(tree.params())
    assert error is None and first["changed"]
    after = tree.snapshot(times=True)
    second, error = retire(tree.params(), diff=True)
    assert error is None and not second["changed"]
    assert second["quarantined"] == [] and second["config_rewritten"] == [] and second["diff"] == []
    assert second["quarantine_taken"] == [tree.taken] and second["needs_attention"] == tree.attention
    assert tree.snapshot(times=True) == after


def test_rollback_gives_back_the_tree_byte_for_byte(tree):
    before = tree.outside()
    result, error = retire(tree.params())
    assert error is None and result["changed"]
    assert tree.outside() != before
    tree.rollback()
    assert tree.outside() == before  # contents, modes, owners, links


def test_the_quarantine_and_backup_folders_are_never_scanned(tree):
    earlier = [os.path.join(tree.quarantine_dir, "r0", "old.cer"),
               os.path.join(tree.backup_dir, "r0", "files", "sne.pem")]
    for path in earlier:
        tree.write(path, tree.cert("chiffrement-v4"))
    result, error = retire(tree.params())
    assert error is None
    found = {place["path"] for places in result["found"].values() for place in places}
    assert not found & set(earlier) and all(os.path.isfile(p) for p in earlier)
    assert not os.path.lexists(tree.place(earlier[0]))


def test_no_fingerprint_looks_for_nothing(tree):
    """An empty sha256 would make the scan report every certificate: nothing is looked for."""
    result, error = retire(tree.params(sha256=[]))
    assert error is None and result["found"] == {} and result["quarantined"] == []
    assert result["config_rewritten"] == [tree.config]  # the configuration is still rewritten


def test_quarantine_off_moves_nothing(tree):
    result, error = retire(tree.params(quarantine=False))
    assert error is None and result["quarantined"] == [] and result["quarantine_taken"] == []
    assert all(os.path.isfile(p) for p in tree.strays)


def test_a_missing_configuration_file_fails_before_any_write(tree):
    before = tree.snapshot(times=True)
    params = tree.params()
    params["config_files"].append({"path": tree.p("etc/none.properties"), "regexp": "a", "replace": "b"})
    result, error = retire(params)
    missing = tree.p("etc/none.properties")
    assert error == "configuration file %s does not exist; nothing was changed" % missing
    assert not result["changed"] and tree.snapshot(times=True) == before


@pytest.mark.parametrize("run_id", ["a/b", "..", ".", _q.STAGING])
def test_a_run_id_that_is_not_a_folder_name_is_refused(tree, run_id):
    with pytest.raises(ArgumentError, match="run_id"):
        retire(tree.params(run_id=run_id))


def test_a_stray_changed_before_it_is_locked_is_not_moved(tree, monkeypatch):
    """Each stray is scanned again under its lock: one that now also holds another
    certificate needs a person, one that holds no retired certificate any more is left."""
    acquire = StoreLocks.acquire

    def meanwhile(self):
        with open(tree.strays[1], "ab") as handle:  # the AC V4 file gets the root too
            handle.write(tree.cert("root", "pem"))
        with open(tree.strays[2], "wb") as handle:  # V4 replaced by V5
            handle.write(tree.cert("chiffrement-v5", "pem"))
        return acquire(self)

    monkeypatch.setattr(StoreLocks, "acquire", meanwhile)
    result, error = retire(tree.params())
    assert error is None
    assert result["quarantined"] == [tree.strays[0]]
    assert result["needs_attention"] == sorted(tree.attention + [tree.strays[1]])
    assert os.path.isfile(tree.strays[1]) and os.path.isfile(tree.strays[2])


def _hold(path, held, release):
    with StoreLocks([path], 0, "other-run") as taken:
        assert not taken.errors, taken.errors
        held.set()
        release.wait(BOUND)


def test_a_file_locked_by_another_run_stops_the_run_before_anything(tree):
    held, release = FORK.Event(), FORK.Event()
    child = FORK.Process(target=_hold, args=(tree.config, held, release))
    child.start()
    try:
        assert held.wait(BOUND)
        before = tree.snapshot(times=True)
        result, error = retire(tree.params(lock_timeout=0))
        assert tree.snapshot(times=True) == before
    finally:
        release.set()
        child.join(BOUND)
    assert error.startswith("%s is locked by pid %d (run other-run) since " % (tree.config, child.pid))
    assert "nothing done" in error and not result["changed"]
    result, error = retire(tree.params(lock_timeout=0))  # released: the run goes through
    assert error is None and result["changed"]


def _one_run(params, start, results):
    start.wait(BOUND)
    try:
        results.put(retire(params))
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        results.put(({}, "crashed: %r" % exc))


def test_two_runs_at_once_take_turns_and_nothing_is_lost_or_done_twice(tree):
    """Two retire runs of one run_id started together: one moves and rewrites, the other waits
    for the locks and then finds nothing left to do; every stray is in quarantine once, the
    configuration rewritten once (one manifest line), no error."""
    strays = {}
    for path in tree.strays:
        with open(path, "rb") as handle:
            strays[path] = handle.read()
    start, results = FORK.Event(), FORK.Queue()
    children = [FORK.Process(target=_one_run, args=(tree.params(lock_timeout=BOUND), start, results))
                for _n in range(2)]
    for child in children:
        child.start()
    start.set()
    outcomes = [results.get(timeout=BOUND) for _child in children]
    for child in children:
        child.join(BOUND)
    assert [error for _result, error in outcomes] == [None, None]
    moved = sorted(p for result, _e in outcomes for p in result["quarantined"])
    assert moved == sorted(tree.strays)  # each stray moved by exactly one of the runs
    assert sorted(len(result["config_rewritten"]) for result, _e in outcomes) == [0, 1]
    for path, data in strays.items():
        with open(tree.place(path), "rb") as handle:
            assert handle.read() == data
    with open(tree.config, "rb") as handle:
        assert handle.read() == tree.new_config()
    assert [line["path"] for line in tree.manifest()] == [tree.config]


def test_the_first_failed_write_stops_the_run_and_says_what_was_done(tree, monkeypatch):
    with open(tree.strays[1], "rb") as handle:
        data = handle.read()
    real = os.rename

    def rename(src, dst, *args, **kwargs):
        if src == tree.strays[1]:
            raise OSError(errno.EACCES, "Permission denied")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(_q.os, "rename", rename)
    result, error = retire(tree.params(), diff=True)
    moved = sorted(tree.strays)[:sorted(tree.strays).index(tree.strays[1])]
    assert error == "cannot move %s to %s: permission denied; done before the failure: %s" % (
        tree.strays[1], tree.place(tree.strays[1]), ", ".join([tree.config] + moved))
    assert result["changed"] and result["quarantined"] == moved
    assert result["config_rewritten"] == [tree.config]
    assert {d["path"] for d in result["diff"]} == set([tree.config] + moved)
    with open(tree.strays[1], "rb") as handle:
        assert handle.read() == data  # the file that failed: byte-identical
    assert all(os.path.isfile(p) for p in sorted(tree.strays)[len(moved):])  # not tried after


def test_a_move_that_failed_after_its_rename_is_reported_done(tree, monkeypatch):
    """A folder fsync failing after the rename: the stray is in quarantine, and said so."""
    from ansible_collections.sne.guichet.plugins.module_utils._common.errors import IO_ERROR, StoreError

    def fsync_folder(folder):
        raise StoreError(IO_ERROR, "cannot fsync folder %s: input/output error" % folder)

    monkeypatch.setattr(_q, "fsync_folder", fsync_folder)
    result, error = retire(tree.params())
    first = sorted(tree.strays)[0]
    assert error.startswith("cannot fsync folder %s: input/output error; done before the failure: "
                            % os.path.dirname(tree.place(first)))
    assert error.endswith(", ".join([tree.config, first]))
    assert result["quarantined"] == [first] and os.path.isfile(tree.place(first))


class FakeModule:
    def __init__(self, params, check_mode=False, diff=False):
        self.params, self.check_mode, self._diff = params, check_mode, diff

    def fail_json(self, **kwargs):
        raise SystemExit(("failed", kwargs))

    def exit_json(self, **kwargs):
        raise SystemExit(("ok", kwargs))

    def run_command(self, *args, **kwargs):
        raise AssertionError("no command is run here")

    def get_bin_path(self, name, required=False):
        return None


def test_the_module_maps_outcomes(tree):
    with pytest.raises(SystemExit) as done:
        run_retire(FakeModule(tree.params(run_id="x/y")))
    assert done.value.code[0] == "failed" and "run_id" in done.value.code[1]["msg"]
    with pytest.raises(SystemExit) as done:
        run_retire(FakeModule(tree.params(), check_mode=True))
    status, result = done.value.code
    assert status == "ok" and result["changed"] and "diff" not in result
    assert _run.DEFAULT_MAX_DEPTH == 8  # the role's default and the module's
