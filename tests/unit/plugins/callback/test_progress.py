"""The progress callback: counts, estimates and formats, driven with fakes and by a real run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml
from ansible.executor.stats import AggregateStats
from ansible.executor.task_result import TaskResult
from ansible.inventory.host import Host

from ansible_collections.sne.guichet.plugins.callback import progress
from ansible_collections.sne.guichet.plugins.callback.progress import CallbackModule
from ansible_collections.sne.guichet.plugins.plugin_utils._progress import duration
from ansible_collections.sne.guichet.plugins.plugin_utils._progress_reading import batch_sizes

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
VENV_BIN = os.path.dirname(sys.executable)
CONVERGE = "Converge every store of the host in one run"


# stand-ins for what Ansible hands to a callback


class FakeDisplay:
    verbosity = 0

    def __init__(self):
        self.lines = []
        self.stderr = []
        self.warnings = []

    def display(self, msg, color=None, stderr=False, **kwargs):
        (self.stderr if stderr else self.lines).append(msg)

    def warning(self, msg, **kwargs):
        self.warnings.append(msg)


class Clock:
    def __init__(self):
        self.now = 5000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class FakeInventory:
    """get_hosts as InventoryManager: the batch restriction applies unless ignored."""

    def __init__(self, names):
        self.names = list(names)
        self.restriction = None

    def get_hosts(self, pattern="all", ignore_limits=False, ignore_restrictions=False, order=None):
        names = self.names
        if self.restriction is not None and not ignore_restrictions:
            names = [n for n in names if n in self.restriction]
        return [Host(n) for n in names]


class FakePlay:
    """A play as TaskQueueManager.run sends it: a copy per batch, same uuid, fresh _removed_hosts."""

    def __init__(self, inventory, serial=None, name="Rotate the guichets", strategy="linear", uuid="play-1",
                 removed_hosts=True):
        self._uuid = uuid
        self.name = name
        self.hosts = ["guichets"]
        self.serial = [] if serial is None else [serial]
        self.order = None
        self.strategy = strategy
        self._inventory = inventory
        self._with_removed = removed_hosts
        if removed_hosts:
            self._removed_hosts = []

    def get_variable_manager(self):
        return SimpleNamespace(_inventory=self._inventory)

    def batch_copy(self):
        new = FakePlay(self._inventory, None, self.name, self.strategy, self._uuid, self._with_removed)
        new.serial = self.serial
        return new


_counter = [0]


def task(name, action="ansible.builtin.command", parent=None, **attrs):
    _counter[0] += 1
    fields = dict(name=name, action=action, _uuid="task-%d" % _counter[0], _parent=parent, run_once=False,
                  args={}, implicit=False, ignore_unreachable=False)
    fields.update(attrs)
    return SimpleNamespace(**fields)


def result(host, the_task, **data):
    """The result object of ansible-core (2.19: CallbackTaskResult, with host/task/result)."""
    return TaskResult(Host(host), the_task, data, {})


class LegacyResult:
    """The attributes callbacks read before ansible-core 2.19: _host, _task, _result."""

    def __init__(self, host, the_task, **data):
        self._host = Host(host)
        self._task = the_task
        self._result = data


def make(interval=0, output="display", file=None):
    display = FakeDisplay()
    cb = CallbackModule(display=display)
    clock = Clock()
    cb._clock = clock
    cb._plugin_options = {"interval": interval, "output": output, "file": file}
    cb._apply_options()
    cb.v2_playbook_on_start(None)
    return cb, display, clock


def hosts(count):
    return ["g%03d" % i for i in range(1, count + 1)]


def start_batch(cb, play, inventory, batch):
    inventory.restriction = set(batch)
    current = play.batch_copy()
    cb.v2_playbook_on_play_start(current)
    return current


def fail(cb, play, host, the_task, ignore_errors=False, rescued=False):
    """As the strategy does: the host is off the play's list before the callback, unless saved."""
    if not ignore_errors and not rescued and hasattr(play, "_removed_hosts"):
        play._removed_hosts.append(host)
    cb.v2_runner_on_failed(result(host, the_task, failed=True, msg="boom"), ignore_errors=ignore_errors)


def unreachable(cb, play, host, the_task):
    if hasattr(play, "_removed_hosts"):
        play._removed_hosts.append(host)
    cb.v2_runner_on_unreachable(result(host, the_task, unreachable=True, msg="no route"))


# pure helpers


@pytest.mark.parametrize(
    "seconds, text",
    [(0, "0s"), (0.4, "0s"), (45, "45s"), (62, "1m02s"), (100, "1m40s"), (599, "9m59s"), (720, "12m"),
     (3599, "1h00m"), (3900, "1h05m"), (-3, "0s")],
)
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_batch_sizes_as_ansible_playbook_cuts_them():
    assert batch_sizes(300, [50]) == [50] * 6
    assert batch_sizes(6, [2]) == [2, 2, 2]
    assert batch_sizes(7, [2]) == [2, 2, 2, 1]
    assert batch_sizes(6, [1, "50%"]) == [1, 3, 2]
    assert batch_sizes(5, []) == [5]
    assert batch_sizes(5, ["100%"]) == [5]
    assert batch_sizes(5, 0) == [5]
    assert batch_sizes(0, [2]) == []


def test_documentation_and_registration():
    doc = yaml.safe_load(progress.DOCUMENTATION)
    assert doc["name"] == "progress" and doc["type"] == "aggregate"
    options = doc["options"]
    assert options["interval"]["default"] == 10 and options["interval"]["type"] == "float"
    assert options["interval"]["env"] == [{"name": "SNE_PROGRESS_INTERVAL"}]
    assert options["interval"]["ini"] == [{"section": "sne_progress", "key": "interval"}]
    assert options["output"]["choices"] == ["display", "stderr", "none"]
    assert options["file"]["type"] == "path" and "default" not in options["file"]
    assert CallbackModule.CALLBACK_TYPE == "aggregate" and CallbackModule.CALLBACK_NEEDS_ENABLED is True
    cb, _display, _clock = make()
    cb._init_callback_methods()
    assert "v2_runner_on_ok" in cb._implemented_callback_methods
    assert "v2_runner_item_on_ok" not in cb._implemented_callback_methods  # loop items are not counted


# one task


def test_task_line_counts_and_estimate():
    cb, display, clock = make()
    names = hosts(300)
    inventory = FakeInventory(names)
    play = start_batch(cb, FakePlay(inventory), inventory, names)
    assert display.lines == ["[sne] play Rotate the guichets: 300 hosts"]
    converge = task(CONVERGE, action="sne.guichet.keystores")
    cb.v2_playbook_on_task_start(converge, False)
    outcomes = ["changed"] * 100 + ["failed"] * 2 + ["unreachable"] + ["ok"] * 17
    for index, (host, outcome) in enumerate(zip(names, outcomes)):
        clock.now = 5000.0 + 62.0 * (index + 1) / 120
        if outcome == "failed":
            fail(cb, play, host, converge)
        elif outcome == "unreachable":
            unreachable(cb, play, host, converge)
        else:
            cb.v2_runner_on_ok(result(host, converge, changed=outcome == "changed"))
    assert display.lines[-1] == (
        "[sne] %s: 120/300 hosts (changed 100, failed 2, unreachable 1), 1m02s elapsed, about 1m33s left"
        % CONVERGE
    )
    assert display.lines[1] == "[sne] %s: 1/300 hosts (changed 1), 1s elapsed, estimating" % CONVERGE
    assert display.lines[2].endswith("2/300 hosts (changed 2), 1s elapsed, estimating")
    assert display.lines[3].endswith("3/300 hosts (changed 3), 2s elapsed, about 2m33s left")
    # the next task expects only the hosts still in the play
    cb.v2_playbook_on_task_start(task("Next"), False)
    assert cb._tasks[next(iter(cb._tasks))].expected == 297
    assert display.lines[-1].startswith("[sne] %s: 120/300 hosts (" % CONVERGE)
    assert display.lines[-1].endswith(", finished")
    assert display.warnings == []


def test_finished_line_when_every_host_answered():
    cb, display, clock = make()
    inventory = FakeInventory(hosts(4))
    start_batch(cb, FakePlay(inventory), inventory, hosts(4))
    ping = task("Ping")
    cb.v2_playbook_on_task_start(ping, False)
    for host in hosts(4):
        clock.advance(2)
        cb.v2_runner_on_skipped(result(host, ping, skipped=True))
    assert display.lines[-1] == "[sne] Ping: 4/4 hosts (skipped 4), 8s elapsed, finished"
    count = len(display.lines)
    cb.v2_playbook_on_task_start(task("Next"), False)  # no second finished line
    assert len(display.lines) == count


def test_interval_limits_the_lines_but_not_the_finished_one():
    cb, display, clock = make(interval=10)
    inventory = FakeInventory(hosts(30))
    start_batch(cb, FakePlay(inventory), inventory, hosts(30))
    slow = task("Slow")
    cb.v2_playbook_on_task_start(slow, False)
    names = hosts(30)
    for index, host in enumerate(names):
        clock.advance(1)
        cb.v2_runner_on_ok(result(host, slow))
        if index + 1 < len(names):
            cb.v2_runner_on_start(Host(names[index + 1]), slow)  # the next host starts
    progress_lines = [line for line in display.lines if line.startswith("[sne] Slow:")]
    assert [line.split(",")[0] for line in progress_lines] == [
        "[sne] Slow: 10/30 hosts", "[sne] Slow: 20/30 hosts", "[sne] Slow: 30/30 hosts",
    ]
    assert progress_lines[-1] == "[sne] Slow: 30/30 hosts, 30s elapsed, finished"
    assert progress_lines[0] == "[sne] Slow: 10/30 hosts, 10s elapsed, about 20s left"


def test_a_line_while_no_host_finishes():
    cb, display, clock = make(interval=10)
    inventory = FakeInventory(hosts(30))
    start_batch(cb, FakePlay(inventory), inventory, hosts(30))
    slow = task("Slow")
    cb.v2_playbook_on_task_start(slow, False)
    clock.advance(12)
    cb.v2_runner_on_ok(result("g001", slow))
    clock.advance(4)
    cb.v2_runner_on_start(Host("g011"), slow)
    clock.advance(8)
    cb.v2_runner_on_start(Host("g012"), slow)
    assert display.lines[1:] == [
        "[sne] Slow: 1/30 hosts, 12s elapsed, estimating",
        "[sne] Slow: 1/30 hosts, 24s elapsed, estimating",
    ]


def test_a_host_is_counted_once_whatever_its_loop_items():
    cb, display, _clock = make()
    inventory = FakeInventory(hosts(3))
    start_batch(cb, FakePlay(inventory), inventory, hosts(3))
    loop = task("Loop")
    cb.v2_playbook_on_task_start(loop, False)
    items = [{"item": i, "changed": True} for i in range(5)]
    cb.v2_runner_on_ok(result("g001", loop, changed=True, results=items))
    cb.v2_runner_on_ok(result("g001", loop, changed=True, results=items))
    cb.v2_runner_on_ok(result("g002", loop, results=[{"item": 1, "changed": False}]))
    assert display.lines[-1] == "[sne] Loop: 2/3 hosts (changed 1), 0s elapsed, estimating"


# batches


def test_batch_lines_with_serial():
    cb, display, clock = make()
    names = hosts(300)
    inventory = FakeInventory(names)
    rotate = FakePlay(inventory, serial=50)
    play = start_batch(cb, rotate, inventory, names[:50])
    assert display.lines[-1] == "[sne] batch 1/6 (50 hosts); fleet: 0/300 hosts done, estimating"
    converge = task(CONVERGE)
    cb.v2_playbook_on_task_start(converge, False)
    for host in names[:47]:
        cb.v2_runner_on_ok(result(host, converge, changed=True))
    for host in names[47:50]:
        fail(cb, play, host, converge)
    assert display.lines[-1].startswith("[sne] %s: 50/50 hosts (changed 47, failed 3)" % CONVERGE)
    clock.advance(144)
    start_batch(cb, rotate, inventory, names[50:100])
    assert display.lines[-1] == (
        "[sne] batch 2/6 (50 hosts); fleet: 50/300 hosts done (failed 3), about 12m left"
    )
    cb.v2_playbook_on_task_start(converge, False)  # the same task again, for the hosts of this batch
    cb.v2_runner_on_ok(result(names[50], converge, changed=True))
    assert display.lines[-1] == "[sne] %s: 1/50 hosts (changed 1), 0s elapsed, estimating" % CONVERGE
    clock.advance(144)
    start_batch(cb, rotate, inventory, names[100:150])
    assert display.lines[-2].endswith(": 1/50 hosts (changed 1), 2m24s elapsed, finished")
    assert display.lines[-1] == (
        "[sne] batch 3/6 (50 hosts); fleet: 100/300 hosts done (failed 3), about 9m36s left"
    )


def test_a_new_play_starts_counting_again():
    cb, display, _clock = make()
    inventory = FakeInventory(hosts(6))
    start_batch(cb, FakePlay(inventory, serial=2, uuid="rotate"), inventory, hosts(2))
    start_batch(cb, FakePlay(inventory, serial=2, uuid="rotate"), inventory, hosts(4)[2:])
    assert display.lines[-1].startswith("[sne] batch 2/3 (2 hosts); fleet: 2/6 hosts done")
    report = FakeInventory(["localhost"])
    start_batch(cb, FakePlay(report, name="Report", uuid="report"), report, ["localhost"])
    assert display.lines[-1] == "[sne] play Report: 1 hosts"


# the fleet signal


def test_fleet_signal_from_set_fact():
    cb, display, _clock = make()
    names = hosts(6)
    inventory = FakeInventory(names)
    play = start_batch(cb, FakePlay(inventory), inventory, names)
    converge = task(CONVERGE)
    cb.v2_playbook_on_task_start(converge, False)
    fail(cb, play, "g006", converge)
    cb.v2_runner_on_ok(result("g001", converge, changed=True))
    assert "fleet" not in display.lines[-1]  # no host gave the signal yet
    mark = task(
        "Record the host status", action="ansible.builtin.set_fact", args={"sne_host_report": "{{ x }}"}
    )
    other = task("Another fact", action="ansible.builtin.set_fact", args={"other": 1})
    cb.v2_playbook_on_task_start(other, False)
    cb.v2_runner_on_ok(result("g001", other, ansible_facts={"other": 1}))
    assert "fleet" not in display.lines[-1]
    cb.v2_playbook_on_task_start(mark, False)
    cb.v2_runner_on_ok(result("g001", mark, ansible_facts={"sne_host_report": {"status": "changed"}}))
    assert display.lines[-1] == (
        "[sne] Record the host status: 1/5 hosts, 0s elapsed, estimating;"
        " fleet: 2/6 hosts done (failed 1), 4 remaining"
    )
    # no_log hides the facts: the task's arguments still tell
    cb.v2_runner_on_ok(result("g002", mark, censored="the output has been hidden", _ansible_no_log=True))
    assert display.lines[-1].endswith("; fleet: 3/6 hosts done (failed 1), 3 remaining")
    # the fact set by a module other than set_fact is no signal; set in a loop it is
    loop_mark = task("Loop", action="set_fact", args={"_raw_params": "{{ facts }}"})
    cb.v2_playbook_on_task_start(loop_mark, False)
    cb.v2_runner_on_ok(result("g003", loop_mark, results=[{"ansible_facts": {"sne_host_report": "ok"}}]))
    assert display.lines[-1].endswith("; fleet: 4/6 hosts done (failed 1), 2 remaining")
    module = task("Module", action="sne.guichet.fleet_report")
    cb.v2_playbook_on_task_start(module, False)
    cb.v2_runner_on_ok(result("g004", module, ansible_facts={"sne_host_report": "ok"}))
    assert display.lines[-1].endswith("; fleet: 4/6 hosts done (failed 1), 2 remaining")


def test_ignored_and_rescued_failures_do_not_leave_the_play():
    cb, display, _clock = make()
    names = hosts(4)
    inventory = FakeInventory(names)
    play = start_batch(cb, FakePlay(inventory), inventory, names)
    block = SimpleNamespace(_uuid="block-1", _parent=None, block=[], rescue=[], always=[])
    risky = task("Risky", parent=block)
    save = task("Save", parent=block)
    block.block.append(risky)
    block.rescue.append(save)
    cb.v2_playbook_on_task_start(risky, False)
    fail(cb, play, "g001", risky, ignore_errors=True)
    fail(cb, play, "g002", risky, rescued=True)
    fail(cb, play, "g003", risky)
    cb.v2_runner_on_ok(result("g004", risky))
    assert display.lines[-1] == "[sne] Risky: 4/4 hosts (failed 2, ignored 1), 0s elapsed, finished"
    cb.v2_playbook_on_task_start(save, False)
    assert cb._tasks["%s" % save._uuid].expected == 1  # the rescue runs for g002 only
    cb.v2_runner_on_ok(result("g002", save))
    assert display.lines[-1] == "[sne] Save: 1/1 hosts, 0s elapsed, finished"
    after = task("After")
    cb.v2_playbook_on_task_start(after, False)
    assert cb._tasks[after._uuid].expected == 3
    assert cb._left == {"g003": "failed"}


def test_without_removed_hosts_the_callback_keeps_its_own_list():
    """Older shapes: a play without _removed_hosts, results with _host/_task/_result only."""
    cb, display, _clock = make()
    names = hosts(5)
    inventory = FakeInventory(names)
    play = start_batch(cb, FakePlay(inventory, removed_hosts=False), inventory, names)
    first = task("First")
    cb.v2_playbook_on_task_start(first, False)
    cb.v2_runner_on_ok(LegacyResult("g001", first, changed=True))
    cb.v2_runner_on_failed(LegacyResult("g002", first, failed=True), ignore_errors=False)
    cb.v2_runner_on_failed(LegacyResult("g003", first, failed=True), ignore_errors=True)
    cb.v2_runner_on_unreachable(LegacyResult("g004", first, unreachable=True))
    assert not hasattr(play, "_removed_hosts")
    assert display.lines[-1] == (
        "[sne] First: 4/5 hosts (changed 1, failed 1, ignored 1, unreachable 1), 0s elapsed, about 0s left"
    )
    second = task("Second", ignore_unreachable=True)
    cb.v2_playbook_on_task_start(second, False)
    assert cb._tasks[second._uuid].expected == 3
    cb.v2_runner_on_unreachable(LegacyResult("g001", second, unreachable=True))  # ignore_unreachable
    assert "g001" not in cb._left


# where the expected hosts come from


def test_included_tasks_expect_the_hosts_that_included_them():
    cb, display, _clock = make()
    names = hosts(6)
    inventory = FakeInventory(names)
    start_batch(cb, FakePlay(inventory), inventory, names)
    include = task("Deploy", action="ansible.builtin.include_role")
    cb.v2_playbook_on_task_start(include, False)
    for host in names:
        cb.v2_runner_on_ok(result(host, include))
    copy_of_include = SimpleNamespace(_uuid=include._uuid, _parent=None)  # the strategy's copy keeps the uuid
    role_block = SimpleNamespace(_uuid="role-block", _parent=copy_of_include)
    cb.v2_playbook_on_include(SimpleNamespace(_task=include, _hosts=[Host("g001"), Host("g002")]))
    cb.v2_playbook_on_include(SimpleNamespace(_task=include, _hosts=[Host("g002"), Host("g003")]))
    inner = task("Inner", parent=role_block)
    cb.v2_playbook_on_task_start(inner, False)
    assert cb._tasks[inner._uuid].expected == 3
    for host in ("g001", "g002", "g003"):
        cb.v2_runner_on_ok(result(host, inner))
    assert display.lines[-1] == "[sne] Inner: 3/3 hosts, 0s elapsed, finished"


def test_handlers_and_run_once():
    cb, display, _clock = make()
    names = hosts(5)
    inventory = FakeInventory(names)
    start_batch(cb, FakePlay(inventory), inventory, names)
    once = task("Once", run_once=True)
    cb.v2_playbook_on_task_start(once, False)
    cb.v2_runner_on_ok(result("g001", once))
    assert display.lines[-1] == "[sne] Once: 1/1 hosts, 0s elapsed, finished"
    handler = task("Restart guichet", notified_hosts=[Host("g002"), Host("g004")])
    cb.v2_playbook_on_handler_task_start(handler)
    cb.v2_runner_on_ok(result("g002", handler, changed=True))
    assert display.lines[-1] == "[sne] Restart guichet: 1/2 hosts (changed 1), 0s elapsed, estimating"


def test_free_strategy_starts_a_task_once_per_host():
    cb, display, clock = make()
    names = hosts(3)
    inventory = FakeInventory(names)
    start_batch(cb, FakePlay(inventory, strategy="free"), inventory, names)
    first, second = task("First"), task("Second")
    cb.v2_playbook_on_task_start(first, False)
    cb.v2_runner_on_ok(result("g001", first))
    clock.advance(5)
    cb.v2_playbook_on_task_start(first, False)  # for g002: not a new task
    cb.v2_playbook_on_task_start(second, False)
    cb.v2_runner_on_ok(result("g001", second))
    cb.v2_runner_on_ok(result("g002", first))
    assert display.lines[-1] == "[sne] First: 2/3 hosts, 5s elapsed, estimating"
    cb.v2_runner_on_ok(result("g003", first))
    assert display.lines[-1] == "[sne] First: 3/3 hosts, 5s elapsed, finished"


# the end of the run


def test_last_line_from_the_recap():
    cb, display, clock = make()
    names = hosts(6)
    inventory = FakeInventory(names)
    start_batch(cb, FakePlay(inventory), inventory, names)
    mark = task("Mark", action="ansible.builtin.set_fact")
    cb.v2_playbook_on_task_start(mark, False)
    for host in names[:4]:
        cb.v2_runner_on_ok(result(host, mark, ansible_facts={"sne_host_report": "ok"}))
    stats = AggregateStats()
    for host in names:
        stats.increment("ok", host)
    stats.increment("failures", "g005")
    stats.increment("dark", "g006")
    clock.advance(125)
    cb.v2_playbook_on_stats(stats)
    assert display.lines[-2] == (
        "[sne] Mark: 4/6 hosts, 2m05s elapsed, finished; fleet: 4/6 hosts done, 2 remaining"
    )
    assert display.lines[-1] == (
        "[sne] finished in 2m05s: 6 hosts; done 4, failed 1, unreachable 1; sne_host_report set by 4;"
        " failed: g005; unreachable: g006"
    )


def test_last_line_lists_at_most_ten_names():
    cb, display, _clock = make()
    stats = AggregateStats()
    for host in hosts(30):
        stats.increment("failures", host)
    cb.v2_playbook_on_stats(stats)
    assert display.lines[-1] == (
        "[sne] finished in 0s: 30 hosts; done 0, failed 30, unreachable 0; failed: "
        + ", ".join(hosts(10))
        + " (+20 more)"
    )


# output, secrets, errors


def test_output_stderr_none_and_file(tmp_path):
    log = tmp_path / "progress.log"
    cb, display, _clock = make(output="stderr", file=str(log))
    inventory = FakeInventory(hosts(2))
    start_batch(cb, FakePlay(inventory), inventory, hosts(2))
    assert display.lines == [] and display.stderr == ["[sne] play Rotate the guichets: 2 hosts"]
    cb, display, _clock = make(output="none", file=str(log))
    start_batch(cb, FakePlay(inventory, name="Again"), inventory, hosts(2))
    assert display.lines == [] and display.stderr == []
    assert log.read_text(encoding="utf-8").splitlines() == [
        "[sne] play Rotate the guichets: 2 hosts",
        "[sne] play Again: 2 hosts",
    ]


def test_a_file_that_cannot_be_written_is_one_warning(tmp_path):
    cb, display, _clock = make(file=str(tmp_path / "missing" / "progress.log"))
    inventory = FakeInventory(hosts(2))
    start_batch(cb, FakePlay(inventory), inventory, hosts(2))
    ping = task("Ping")
    cb.v2_playbook_on_task_start(ping, False)
    cb.v2_runner_on_ok(result("g001", ping))
    assert display.lines == [
        "[sne] play Rotate the guichets: 2 hosts",
        "[sne] Ping: 1/2 hosts, 0s elapsed, estimating",
    ]
    assert len(display.warnings) == 1
    assert "writing the progress file (FileNotFoundError)" in display.warnings[0]


def test_result_contents_are_never_printed():
    cb, display, _clock = make()
    inventory = FakeInventory(hosts(2))
    play = start_batch(cb, FakePlay(inventory), inventory, hosts(2))
    secret = "s3cr3t-keystore-password"
    leak = task("Open the keystore")
    cb.v2_playbook_on_task_start(leak, False)
    cb.v2_runner_on_ok(result("g001", leak, changed=True, stdout=secret, msg=secret, password=secret))
    play._removed_hosts.append("g002")
    cb.v2_runner_on_failed(result("g002", leak, failed=True, msg=secret, stderr=secret))
    cb.v2_playbook_on_stats(AggregateStats())
    assert display.lines and not any(secret in line for line in display.lines + display.warnings)


class Exploding:
    """A result whose every attribute raises, with a secret in the message."""

    def __getattr__(self, name):
        raise RuntimeError("s3cr3t in the message")


def test_an_internal_error_is_a_single_warning_and_never_raised():
    cb, display, _clock = make()
    inventory = FakeInventory(hosts(2))
    start_batch(cb, FakePlay(inventory), inventory, hosts(2))
    cb.v2_runner_on_ok(Exploding())
    cb.v2_runner_on_failed(Exploding(), ignore_errors=False)
    cb.v2_playbook_on_play_start(Exploding())
    assert len(display.warnings) == 1
    assert "sne.guichet.progress" in display.warnings[0] and "RuntimeError" in display.warnings[0]
    assert "s3cr3t" not in display.warnings[0]
    # and it goes on
    ping = task("Ping")
    cb.v2_playbook_on_task_start(ping, False)
    cb.v2_runner_on_ok(result("g001", ping))
    assert display.lines[-1].startswith("[sne] Ping: 1/")


def test_a_play_whose_hosts_cannot_be_read():
    cb, display, _clock = make()
    play = SimpleNamespace(_uuid="p", name="Mystery", hosts=["all"], serial=[], strategy="linear")
    cb.v2_playbook_on_play_start(play)
    assert display.lines[-1] == "[sne] play Mystery: ? hosts"
    ping = task("Ping")
    cb.v2_playbook_on_task_start(ping, False)
    cb.v2_runner_on_ok(result("g001", ping))
    assert display.lines[-1] == "[sne] Ping: 1 hosts, 0s elapsed"
    assert display.warnings == []


# a real run


PLAYBOOK = """\
- name: Rotate the test fleet
  hosts: guichets
  gather_facts: false
  serial: 2
  tasks:
    - name: %s
      ansible.builtin.command: "{{ 'false' if inventory_hostname == 'g05' else 'true' }}"
    - name: Include more for g01
      ansible.builtin.include_tasks: more.yml
      when: inventory_hostname == 'g01'
    - name: Mark the host done
      ansible.builtin.set_fact:
        sne_host_report: ok
""" % CONVERGE

MORE = """\
- name: Included step
  ansible.builtin.debug:
    msg: included
"""


def _env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "SNE_PROGRESS_"))}
    env.update(
        ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
        ANSIBLE_CALLBACKS_ENABLED="sne.guichet.progress",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp-local"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / "tmp-remote"),
        SNE_PROGRESS_INTERVAL="0",
    )
    return env


@pytest.mark.slow
def test_real_playbook_run(tmp_path):
    (tmp_path / "inventory.ini").write_text(
        "[guichets]\ng0[1:6]\n\n[guichets:vars]\nansible_connection=local\nansible_python_interpreter=%s\n"
        % sys.executable
    )
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "more.yml").write_text(MORE)
    log = tmp_path / "progress.log"
    (tmp_path / "ansible.cfg").write_text("[defaults]\nforks = 5\n\n[sne_progress]\nfile = %s\n" % log)
    run = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-playbook"), "-i", "inventory.ini", "play.yml"],
        cwd=str(tmp_path), env=_env(tmp_path), capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 2, run.stdout + run.stderr  # g05 failed
    lines = [line for line in run.stdout.splitlines() if line.startswith("[sne] ")]
    assert "PLAY RECAP" in run.stdout  # the stdout callback still prints
    assert log.read_text(encoding="utf-8").splitlines() == lines  # the ini option [sne_progress] file
    assert "[WARNING]" not in run.stdout + run.stderr
    time = r"\d+(m\d\d)?s"
    assert lines[0] == "[sne] batch 1/3 (2 hosts); fleet: 0/6 hosts done, estimating"
    batches = [line for line in lines if line.startswith("[sne] batch")]
    batch = r"\[sne\] batch %d/3 \(2 hosts\); fleet: %d/6 hosts done, about " + time + " left"
    assert re.fullmatch(batch % (2, 2), batches[1]) and re.fullmatch(batch % (3, 4), batches[2])
    converged = [line for line in lines if line.startswith("[sne] %s: 2/2 hosts" % CONVERGE)]
    assert [line.split(" elapsed")[0].rsplit(", ", 1)[0] for line in converged] == [
        "[sne] %s: 2/2 hosts (changed 2)" % CONVERGE,
        "[sne] %s: 2/2 hosts (changed 2)" % CONVERGE,
        "[sne] %s: 2/2 hosts (changed 1, failed 1)" % CONVERGE,
    ]
    assert all(re.search(r", %s elapsed, finished" % time, line) for line in converged)
    assert re.fullmatch(r"\[sne\] Included step: 1/1 hosts, %s elapsed, finished" % time,
                        [line for line in lines if "Included step" in line][0])
    assert re.fullmatch(
        r"\[sne\] Mark the host done: 1/1 hosts, %s elapsed, finished;"
        r" fleet: 6/6 hosts done \(failed 1\), 0 remaining" % time,
        [line for line in lines if line.startswith("[sne] Mark the host done")][-1],
    )
    assert re.fullmatch(
        r"\[sne\] finished in %s: 6 hosts; done 5, failed 1, unreachable 0;"
        r" sne_host_report set by 5; failed: g05" % time,
        lines[-1],
    )


@pytest.mark.slow
def test_ansible_doc_reads_the_documentation(tmp_path):
    (tmp_path / "ansible.cfg").write_text("")
    run = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-doc"), "-t", "callback", "--json", "sne.guichet.progress"],
        cwd=str(tmp_path), env=_env(tmp_path), capture_output=True, text=True, timeout=60, check=False,
    )
    assert run.returncode == 0, run.stderr
    doc = yaml.safe_load(run.stdout)["sne.guichet.progress"]["doc"]
    assert doc["type"] == "aggregate"
    assert sorted(doc["options"]) == ["file", "interval", "output"]
