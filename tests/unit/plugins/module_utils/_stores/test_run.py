"""run_keystores, the module's runner: the failure message says which stores were written before the
failure; the reload_commands run after a change, in the same run."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ansible_collections.sne.guichet.plugins.module_utils._stores import run as _run
from ansible_collections.sne.guichet.plugins.module_utils._stores.run import _written_note


class NoteModule:
    def __init__(self, check_mode: bool = False) -> None:
        self.check_mode = check_mode


def results(*changed_failed):
    return [{"path": "/s%d" % i, "changed": c, "failed": f} for i, (c, f) in enumerate(changed_failed)]


def test_a_write_failing_after_others_names_them():
    # all_or_nothing cannot hold once writing has begun: the message must not claim it did.
    note = _written_note(results((True, False), (False, True), (True, False)), {"all_or_nothing": True},
                         NoteModule())
    assert note == "; written before the failure: /s0, /s2"


def test_a_failure_before_any_write():
    assert _written_note(results((False, False), (False, True)), {"all_or_nothing": True},
                         NoteModule()) == "; no store was written (all_or_nothing)"
    assert _written_note(results((False, True)), {"all_or_nothing": False}, NoteModule()) == ""


def test_check_mode_writes_nothing_and_says_nothing_of_it():
    assert _written_note(results((True, False), (False, True)), {"all_or_nothing": True},
                         NoteModule(check_mode=True)) == ""


def run_command(argv, data=None, environ_update=None):
    proc = subprocess.run(argv, input=data, capture_output=True, text=True, check=False,
                          env=dict(os.environ, **(environ_update or {})))
    return proc.returncode, proc.stdout, proc.stderr


class FakeModule:
    """What run_keystores uses of an AnsibleModule."""

    def __init__(self, params, check_mode=False):
        self.params, self.check_mode, self._diff = params, check_mode, False

    def fail_json(self, **kwargs):
        raise RuntimeError(kwargs)

    def exit_json(self, **kwargs):
        raise SystemExit(kwargs)

    def run_command(self, argv, data=None, environ_update=None, binary_data=False):
        return run_command(argv, data, environ_update)

    def get_bin_path(self, name, required=False):
        return shutil.which(name)


@pytest.fixture()
def params(pki, tmp_path):
    with open(os.path.join(pki["dir"], "chiffrement-v5.pem"), encoding="ascii") as handle:
        v5 = handle.read()
    store = tmp_path / "bundle.pem"
    store.write_text("")
    log = tmp_path / "reload.log"
    return dict(stores=[dict(path=str(store), type="pem")], absent_sha256=[],
                present=[dict(name="sne-chiffrement-v5", pem=v5)], backup=False,
                backup_dir=str(tmp_path / "b"), run_id="reload-run", all_or_nothing=False, lock_timeout=5,
                reload_commands=[["sh", "-c", "echo one >> %s" % log], ["sh", "-c", "echo two >> %s" % log]])


def outcome(params, check_mode=False):
    with pytest.raises((SystemExit, RuntimeError)) as ended:
        _run.run_keystores(FakeModule(params, check_mode))
    return isinstance(ended.value, RuntimeError), ended.value.args[0]


def test_reload_commands_run_in_order_after_a_change_only(params, tmp_path):
    failed, result = outcome(params)
    assert not failed and result["changed"]
    assert (tmp_path / "reload.log").read_text() == "one\ntwo\n"
    assert [r["rc"] for r in result["reloaded"]] == [0, 0]
    failed, result = outcome(params)  # converged: nothing changed, nothing reloaded
    assert not failed and not result["changed"] and "reloaded" not in result
    assert (tmp_path / "reload.log").read_text() == "one\ntwo\n"


def test_check_mode_lists_the_reload_commands_and_runs_none(params, tmp_path):
    failed, result = outcome(params, check_mode=True)
    assert not failed and result["changed"]
    assert [r["rc"] for r in result["reloaded"]] == [None, None]
    assert not (tmp_path / "reload.log").exists()


def test_a_failing_reload_fails_the_task_and_stops_there(params, tmp_path):
    params["reload_commands"].insert(1, ["sh", "-c", "echo cannot reload >&2; exit 3"])
    failed, result = outcome(params)
    assert failed and "the stores were converged, but the reload command" in result["msg"]
    assert "(rc 3): cannot reload" in result["msg"]
    assert [r["rc"] for r in result["reloaded"]] == [0, 3]  # the third never ran
    assert (tmp_path / "reload.log").read_text() == "one\n"
    assert result["changed"] and "BEGIN CERTIFICATE" in (tmp_path / "bundle.pem").read_text()


def test_a_missing_reload_command_is_named(params):
    params["reload_commands"] = [["/nonexistent/guichet-reload"]]
    failed, result = outcome(params)
    assert failed and "/nonexistent/guichet-reload not found or not executable" in result["msg"]
