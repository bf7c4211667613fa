"""The progress model (plugin_utils/_progress.py) and what it reads of Ansible's objects
(plugin_utils/_progress_reading.py), driven directly: no callback plugin, no display."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ansible_collections.sne.guichet.plugins.plugin_utils import _progress_reading as reading
from ansible_collections.sne.guichet.plugins.plugin_utils._progress import Progress, TaskState, duration


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Inventory:
    def __init__(self, names, batch=None):
        self.names, self.batch = list(names), batch

    def get_hosts(self, pattern="all", order=None, ignore_restrictions=False):
        names = self.names if ignore_restrictions or self.batch is None else self.batch
        return [SimpleNamespace(name=n) for n in names]


def play(names, batch=None, serial=None, uuid="p1", strategy="linear"):
    inventory = Inventory(names, batch)
    return SimpleNamespace(_uuid=uuid, name="Rotate", hosts="all", order=None, strategy=strategy,
                           serial=serial or [], _removed_hosts=[],
                           get_variable_manager=lambda: SimpleNamespace(_inventory=inventory))


def task(uuid, name="Converge", **attrs):
    fields = dict(_uuid=uuid, name=name, action="sne.guichet.keystores", _parent=None, run_once=False,
                  args={}, implicit=False, ignore_unreachable=False)
    fields.update(attrs)
    return SimpleNamespace(**fields)


def result(host, the_task, **data):
    """As ansible-core >= 2.19 hands it: host, task, result."""
    return SimpleNamespace(host=SimpleNamespace(name=host), task=the_task, result=data)


def model(interval=0.0):
    lines, clock = [], Clock()
    progress = Progress(emit=lines.append, clock=clock)
    progress.interval = interval
    progress.playbook_start()
    return progress, lines, clock


def test_a_task_counted_estimated_and_finished():
    progress, lines, clock = model()
    progress.play_start(play(["a", "b", "c", "d"]))
    converge = task("t1")
    progress.task_start(converge, handler=False)
    for index, host in enumerate("abc"):
        clock.now += 10
        progress.runner_ok(result(host, converge, changed=index != 1))
    assert lines == [
        "[sne] play Rotate: 4 hosts",
        "[sne] Converge: 1/4 hosts (changed 1), 10s elapsed, estimating",
        "[sne] Converge: 2/4 hosts (changed 1), 20s elapsed, estimating",
        "[sne] Converge: 3/4 hosts (changed 2), 30s elapsed, about 10s left",
    ]
    clock.now += 10
    progress.runner_skipped(result("d", converge))
    assert lines[-1] == "[sne] Converge: 4/4 hosts (changed 2, skipped 1), 40s elapsed, finished"
    assert progress.tasks["t1"].finished_at == 4 and isinstance(progress.tasks["t1"], TaskState)


def test_the_interval_spaces_the_lines_but_not_the_finished_one():
    progress, lines, clock = model(interval=30)
    progress.play_start(play(["a", "b", "c"]))
    ping = task("t1", name="Ping")
    progress.task_start(ping, handler=False)
    progress.runner_ok(result("a", ping))
    progress.runner_start(ping)  # within 30 s of the play line: nothing
    clock.now += 31
    progress.runner_start(ping)
    progress.runner_ok(result("b", ping))  # within 30 s of the last line: nothing
    progress.runner_ok(result("c", ping))
    assert lines == [
        "[sne] play Rotate: 3 hosts",
        "[sne] Ping: 1/3 hosts, 31s elapsed, estimating",
        "[sne] Ping: 3/3 hosts, 31s elapsed, finished",
    ]


def test_hosts_that_leave_the_play_and_the_fleet_signal():
    progress, lines, clock = model()
    the_play = play(["a", "b", "c"])
    progress.play_start(the_play)
    work = task("t1", name="Work")
    progress.task_start(work, handler=False)
    the_play._removed_hosts.append("a")
    progress.runner_failed(result("a", work, failed=True), ignore_errors=False)
    progress.runner_failed(result("b", work, failed=True), ignore_errors=True)
    the_play._removed_hosts.append("c")
    progress.runner_unreachable(result("c", work, unreachable=True))
    assert progress.left == {"a": "failed", "c": "unreachable"}
    report = task("t2", name="Record", action="ansible.builtin.set_fact", args={reading.SIGNAL: "x"})
    progress.task_start(report, handler=False)
    assert progress.tasks["t2"].expected == 1  # only b is still in the play
    progress.runner_ok(result("b", report, ansible_facts={reading.SIGNAL: {}}))
    assert lines[-1] == ("[sne] Record: 1/1 hosts, 0s elapsed, finished; fleet: 3/3 hosts done "
                         "(failed 1, unreachable 1), 0 remaining")
    progress.playbook_end(None)  # no usable recap: the model's own counts
    assert lines[-1] == ("[sne] finished in 0s: 3 hosts; done 1, failed 1, unreachable 1; "
                         "sne_host_report set by 1; failed: a; unreachable: c")


def test_batches_and_their_estimate():
    progress, lines, clock = model()
    names = ["a", "b", "c", "d", "e"]
    progress.play_start(play(names, batch=["a", "b"], serial=[2]))
    clock.now += 60
    progress.play_start(play(names, batch=["c", "d"], serial=[2]))
    assert lines == [
        "[sne] batch 1/3 (2 hosts); fleet: 0/5 hosts done, estimating",
        "[sne] batch 2/3 (2 hosts); fleet: 2/5 hosts done, about 2m00s left",
    ]


def test_the_last_line_from_the_recap():
    progress, lines, clock = model()
    clock.now += 3900
    stats = SimpleNamespace(processed={"a": 1, "b": 1, "c": 1}, dark={"c": 1}, failures={"b": 1, "c": 1})
    progress.playbook_end(stats)
    assert lines == ["[sne] finished in 1h05m: 3 hosts; done 1, failed 1, unreachable 1; failed: b; "
                     "unreachable: c"]


@pytest.mark.parametrize("seconds, text", [(59.6, "1m00s"), (600, "10m"), (3570, "1h00m")])
def test_duration_edges(seconds, text):
    assert duration(seconds) == text


# reading Ansible's objects


def test_results_of_every_ansible_core():
    the_task = task("t1")
    new = result("a", the_task, changed=True)
    legacy = SimpleNamespace(_host=SimpleNamespace(get_name=lambda: "a"), _task=the_task,
                             _result={"changed": 1})
    for item in (new, legacy):
        assert reading.result_host(item) == "a"
        assert reading.result_task(item) is the_task
        assert reading.is_changed(item) is True
    assert reading.result_data(SimpleNamespace()) == {}
    assert reading.is_changed(SimpleNamespace(is_changed=lambda: False, result={"changed": True})) is False


def test_names_and_keys():
    assert reading.task_name(SimpleNamespace(name="  Ping ")) == "Ping"
    assert reading.task_name(SimpleNamespace(name="", get_name=lambda: "from get_name")) == "from get_name"
    assert reading.task_name(SimpleNamespace(name=None, action="command")) == "command"
    assert reading.name_of("plain") == "plain"
    assert reading.key_of(SimpleNamespace(_uuid="u")) == "u"
    anonymous = SimpleNamespace()
    assert reading.key_of(anonymous) == id(anonymous)


def test_play_hosts_from_the_inventory_else_the_magic_variables_else_unknown():
    assert reading.play_hosts(play(["a", "b", "c"], batch=["a"])) == (["a"], ["a", "b", "c"])
    magic = {"ansible_play_batch": ("x",), "ansible_play_hosts_all": ("x", "y")}
    manager = SimpleNamespace(get_vars=lambda play: magic)
    assert reading.play_hosts(SimpleNamespace(get_variable_manager=lambda: manager)) == (["x"], ["x", "y"])
    assert reading.play_hosts(SimpleNamespace()) == (None, None)


def test_the_fleet_signal_is_found_by_its_key_only():
    set_fact = task("t", action="ansible.builtin.set_fact")
    assert reading.is_set_fact(set_fact) and not reading.is_set_fact(task("t"))
    assert reading.is_set_fact(task("t", action="x", _resolved_action="ansible.legacy.set_fact"))
    assert reading.signals(set_fact, {"ansible_facts": {reading.SIGNAL: 1}})
    looped = {"results": [{"ansible_facts": {}}, {"ansible_facts": {reading.SIGNAL: 1}}]}
    assert reading.signals(set_fact, looped)
    assert not reading.signals(set_fact, {"ansible_facts": {"other": reading.SIGNAL}})


def test_ancestry_and_sections():
    inner = SimpleNamespace(_uuid="t", _parent=None)
    block = SimpleNamespace(_uuid="b", _parent=None, block=[inner], rescue=[])
    inner._parent = block
    assert list(reading.ancestry(inner)) == [(inner, block)]
    assert reading.holds(block.block, inner) and not reading.holds(block.rescue, inner)
    assert not reading.holds(None, inner)
