# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Callback sne.guichet.progress: hosts done, failed and remaining, and the time left."""

from __future__ import annotations

DOCUMENTATION = r"""
name: progress
type: aggregate
short_description: Print hosts done, failed and remaining and an estimate of the time left while a play runs
version_added: 0.2.0
author:
  - sne.guichet developers (@sne-guichet)
description:
  - >-
    Prints, beside the normal output of the stdout callback, one line per task at most every
    O(interval) seconds and one when the task is finished, for example
    C([sne] Converge every store of the host in one run: 120/300 hosts (changed 100, failed 2,
    unreachable 1\), 1m02s elapsed, about 1m40s left).
  - The hosts expected for a task are the hosts of the current batch still in the play (those
    that failed or became unreachable leave it), restricted to the hosts that included the file
    for a task of an C(include_tasks) or C(include_role), to the notified hosts for a handler,
    and to one host for a C(run_once) task. Each host is counted once per task, whatever its
    loop items. The estimate is the time elapsed divided by the hosts done times the hosts
    remaining, given once at least 3 hosts are done.
  - >-
    With C(serial), a line at the start of every batch, for example
    C([sne] batch 2/6 (50 hosts\); fleet: 50/300 hosts done (failed 3\), about 12m left), the
    hosts done being those of the previous batches and the estimate the average time of a
    batch times the batches left.
  - >-
    Fleet signal - a host is done for the play when it failed or became unreachable (it left the
    play) or when a C(ansible.builtin.set_fact) task sets the fact C(sne_host_report) for it, as
    the rotation is meant to do at the end of the work of each host. Once a host gave that
    signal, the task lines end with C(; fleet: X/N hosts done (failed F\), R remaining), N being
    all the hosts of the play, every batch included.
  - At the end of the playbook, one line with the total time and the hosts done, failed and
    unreachable (from the play recap), and the names of the failed and unreachable hosts.
  - Only play and task names, counts, times and host names are printed, never the content of
    a result.
  - An internal error of this callback never stops nor changes the run; it is reported once as
    a warning.
requirements:
  - Enabled in the configuration, for example C(ANSIBLE_CALLBACKS_ENABLED=sne.guichet.progress)
    in the environment or C(callbacks_enabled = sne.guichet.progress) in the C([defaults])
    section of C(ansible.cfg). It works beside any stdout callback.
options:
  interval:
    description:
      - Least number of seconds between two progress lines while a task runs. The line of a
        finished task and the batch lines are always printed.
      - V(0) prints a line for every host result.
    type: float
    default: 10
    env:
      - name: SNE_PROGRESS_INTERVAL
    ini:
      - section: sne_progress
        key: interval
  output:
    description:
      - Where the lines are printed - V(display) with the normal output of Ansible, V(stderr)
        on the standard error of the controller (the standard output stays as the stdout
        callback writes it), V(none) nowhere (only O(file)).
    type: str
    choices: [display, stderr, none]
    default: display
    env:
      - name: SNE_PROGRESS_OUTPUT
    ini:
      - section: sne_progress
        key: output
  file:
    description:
      - A file the lines are appended to as well, for example for the log of a CI job.
      - Not set, no file is written.
    type: path
    env:
      - name: SNE_PROGRESS_FILE
    ini:
      - section: sne_progress
        key: file
"""

EXAMPLES = r"""
# ansible.cfg:
#   [defaults]
#   callbacks_enabled = sne.guichet.progress
#
#   [sne_progress]
#   interval = 30
#
# or for one run:
#   ANSIBLE_CALLBACKS_ENABLED=sne.guichet.progress SNE_PROGRESS_INTERVAL=30 \
#     ansible-playbook -i inventory sne.guichet.rotate -e sne_serial=50
#
# prints lines such as:
#   [sne] batch 2/6 (50 hosts); fleet: 50/300 hosts done (failed 3), about 12m left
#   [sne] Converge every store of the host in one run: 20/50 hosts (changed 19), 41s elapsed, about 1m02s left
#   [sne] finished in 14m: 300 hosts; done 296, failed 3, unreachable 1; failed: g017, g112, g245;
#     unreachable: g031
"""

import functools  # noqa: E402 (below the documentation, as ansible-test wants)
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, TypeVar  # noqa: E402

from ansible.plugins.callback import CallbackBase  # noqa: E402
from ansible.utils.helpers import pct_to_int  # noqa: E402

PREFIX = "[sne]"
SIGNAL = "sne_host_report"
MIN_DONE_FOR_ESTIMATE = 3
MAX_NAMES = 10
_SET_FACT = frozenset(("set_fact", "ansible.builtin.set_fact", "ansible.legacy.set_fact"))
_NOT_LOCKSTEP = frozenset(("free", "host_pinned", "ansible.builtin.free", "ansible.builtin.host_pinned"))
_COUNTED = ("changed", "skipped", "failed", "ignored", "unreachable")
_F = TypeVar("_F", bound=Callable[..., Any])


def duration(seconds: float) -> str:
    """``45s``, ``1m02s`` under ten minutes, ``12m`` under an hour, then ``1h05m``."""
    total = max(0, int(round(seconds)))
    if total < 60:
        return "%ds" % total
    if total < 600:
        return "%dm%02ds" % divmod(total, 60)
    minutes = (total + 30) // 60
    if minutes < 60:
        return "%dm" % minutes
    return "%dh%02dm" % divmod(minutes, 60)


def batch_sizes(total: int, serial: Any) -> List[int]:
    """The sizes of the batches of a play, as ansible-playbook cuts them (``serial``)."""
    if isinstance(serial, (list, tuple)):
        items = list(serial)
    elif serial in (None, ""):
        items = []
    else:
        items = [serial]
    if not items:
        return [total] if total else []
    sizes: List[int] = []
    left, index = total, 0
    while left > 0:
        size = pct_to_int(items[index], total)
        if size <= 0:
            sizes.append(left)
            break
        sizes.append(min(size, left))
        left -= sizes[-1]
        index = min(index + 1, len(items) - 1)
    return sizes


def _name_of(host: Any) -> str:
    name = getattr(host, "name", None)
    if not isinstance(name, str):
        getter = getattr(host, "get_name", None)
        name = getter() if callable(getter) else host
    return str(name)


def _names(hosts: Iterable[Any]) -> List[str]:
    return [_name_of(h) for h in hosts]


def _listing(names: List[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES])
    if len(names) > MAX_NAMES:
        shown += " (+%d more)" % (len(names) - MAX_NAMES)
    return shown


def _counts(parts: Iterable[tuple]) -> str:
    text = ", ".join("%s %d" % (label, count) for label, count in parts if count)
    return " (%s)" % text if text else ""


def _guarded(method: _F) -> _F:
    """Run a callback method; any error is reported once and never reaches Ansible."""

    @functools.wraps(method)
    def wrapper(self: CallbackModule, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except Exception as exc:  # a progress display must never break a rotation
            self._internal_error(method.__name__, exc)

    return wrapper  # type: ignore[return-value]


class _Task:
    """What is known of one task of the current batch."""

    def __init__(self, name: str, expected: Optional[int], started: float) -> None:
        self.name = name
        self.expected = expected
        self.started = started
        self.hosts: Set[str] = set()
        self.counts: Dict[str, int] = dict.fromkeys(_COUNTED, 0)
        self.finished_at: Optional[int] = None  # hosts done when the finished line was printed


class CallbackModule(CallbackBase):
    """Progress of the hosts of a play, and the time left."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "sne.guichet.progress"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display: Any = None, options: Optional[Dict[str, Any]] = None) -> None:
        self._clock: Callable[[], float] = time.monotonic  # replaced by a fake clock in tests
        self._interval = 10.0
        self._output = "display"
        self._file: Optional[str] = None
        super().__init__(display=display, options=options)
        self._warned = False
        self._last_line: Optional[float] = None
        self._run_started = self._clock()
        # the play (all its batches)
        self._play: Any = None
        self._play_key: Any = None
        self._play_started = 0.0
        self._play_hosts: Optional[List[str]] = None
        self._sizes: Optional[List[int]] = None
        self._batch = 0
        self._left: Dict[str, str] = {}  # host -> "failed" or "unreachable"
        self._signaled: Set[str] = set()
        # the current batch
        self._batch_hosts: Optional[List[str]] = None
        self._tasks: Dict[Any, _Task] = {}
        self._includes: Dict[Any, Set[str]] = {}
        self._rescuing: Dict[Any, Set[str]] = {}  # block uuid -> hosts its rescue section runs for
        # the whole run, for the last line when the recap is not usable
        self._run_signaled: Set[str] = set()
        self._run_left: Dict[str, str] = {}
        self._run_hosts: Set[str] = set()

    # options and output

    def set_options(self, task_keys: Any = None, var_options: Any = None, direct: Any = None) -> None:
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self._apply_options()

    def _apply_options(self) -> None:
        interval = self.get_option("interval")
        self._interval = max(0.0, float(10 if interval is None else interval))
        self._output = self.get_option("output") or "display"
        self._file = self.get_option("file") or None

    def _emit(self, line: str) -> None:
        self._last_line = self._clock()
        if self._output == "display":
            self._display.display(line)
        elif self._output == "stderr":
            self._display.display(line, stderr=True)
        if self._file:
            try:
                with open(self._file, "a", encoding="utf-8") as stream:
                    stream.write(line + "\n")
            except OSError as exc:  # warn once, go on without the file
                self._file = None
                self._internal_error("writing the progress file", exc)

    def _internal_error(self, where: str, exc: BaseException) -> None:
        if self._warned:
            return
        self._warned = True
        try:  # the type only: the message of an error could quote data
            self._display.warning(
                "sne.guichet.progress: internal error in %s (%s); the progress lines may be incomplete"
                % (where, type(exc).__name__)
            )
        except Exception:
            sys.stderr.write("sne.guichet.progress: internal error in %s\n" % where)

    # playbook and plays

    @_guarded
    def v2_playbook_on_start(self, playbook: Any) -> None:
        self._run_started = self._clock()
        self._run_signaled, self._run_left, self._run_hosts = set(), {}, set()

    @_guarded
    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._finish_tasks()
        now = self._clock()
        key = getattr(play, "_uuid", None) or id(play)
        batch_hosts, play_hosts = self._hosts_of(play)
        if key != self._play_key:  # a new play; else the next batch of the same play (same uuid)
            self._play_key, self._play_started, self._batch = key, now, 0
            self._play_hosts = play_hosts
            self._left, self._signaled = {}, set()
            self._sizes = None
            if play_hosts:
                try:
                    self._sizes = batch_sizes(len(play_hosts), getattr(play, "serial", None))
                except (TypeError, ValueError):
                    pass
        self._play = play
        self._batch += 1
        self._batch_hosts = batch_hosts
        self._tasks, self._includes, self._rescuing = {}, {}, {}
        self._emit(self._play_line(play, now))

    def _hosts_of(self, play: Any) -> tuple:
        """(hosts of the current batch, hosts of the play in every batch), or None when unknown."""
        getter = getattr(play, "get_variable_manager", None)
        manager = getter() if callable(getter) else None
        inventory = getattr(manager, "_inventory", None)
        pattern = getattr(play, "hosts", None) or "all"
        try:
            order = getattr(play, "order", None)
            batch = _names(inventory.get_hosts(pattern, order=order))
            every = _names(inventory.get_hosts(pattern, order=order, ignore_restrictions=True))
            return batch, every
        except Exception:
            pass
        try:  # the same lists as the play's magic variables
            variables = manager.get_vars(play=play)
            return list(variables["ansible_play_batch"]), list(variables["ansible_play_hosts_all"])
        except Exception:
            return None, None

    def _play_line(self, play: Any, now: float) -> str:
        sizes, index = self._sizes, self._batch
        batch_count = len(self._batch_hosts) if self._batch_hosts is not None else None
        if sizes and index - 1 < len(sizes) and batch_count is None:
            batch_count = sizes[index - 1]
        if not sizes or (len(sizes) == 1 and index == 1):
            name = str(getattr(play, "name", "") or "").strip() or "play"
            hosts = self._play_hosts if self._play_hosts is not None else self._batch_hosts
            return "%s play %s: %s hosts" % (PREFIX, name, len(hosts) if hosts is not None else "?")
        total_batches = max(len(sizes), index)
        before = sum(sizes[: index - 1])
        line = "%s batch %d/%d (%s hosts); fleet: %d/%d hosts done%s" % (
            PREFIX,
            index,
            total_batches,
            batch_count if batch_count is not None else "?",
            before,
            sum(sizes),
            self._left_counts(),
        )
        if index == 1:
            return line + ", estimating"
        per_batch = (now - self._play_started) / (index - 1)
        return line + ", about %s left" % duration(per_batch * (total_batches - index + 1))

    def _left_counts(self) -> str:
        kinds = list(self._left.values())
        return _counts((kind, kinds.count(kind)) for kind in ("failed", "unreachable"))

    # tasks

    @_guarded
    def v2_playbook_on_task_start(self, task: Any, is_conditional: Any) -> None:
        self._task_start(task, handler=False)

    @_guarded
    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._task_start(task, handler=True)

    def _lockstep(self) -> bool:
        return str(getattr(self._play, "strategy", None) or "linear") not in _NOT_LOCKSTEP

    def _task_start(self, task: Any, handler: bool) -> None:
        key = getattr(task, "_uuid", None) or id(task)
        if self._lockstep():
            self._finish_tasks()  # the previous task is over for every host
        elif key in self._tasks:
            return  # the free strategy starts a task once per host
        self._tasks[key] = _Task(self._task_name(task), self._expected(task, handler), self._clock())

    @staticmethod
    def _task_name(task: Any) -> str:
        name = getattr(task, "name", None)
        if not name:
            getter = getattr(task, "get_name", None)
            name = getter() if callable(getter) else getattr(task, "action", "task")
        return str(name).strip()

    def _expected(self, task: Any, handler: bool) -> Optional[int]:
        hosts: Optional[List[str]] = None
        if self._batch_hosts is not None:
            removed = self._removed()
            hosts = [h for h in self._batch_hosts if h not in removed]
        restrictions = [self._included_by(task), self._rescued_by(task)]
        if handler and isinstance(getattr(task, "notified_hosts", None), list):
            restrictions.append(set(_names(task.notified_hosts)))
        for allowed in restrictions:
            if allowed is not None:
                hosts = [h for h in hosts if h in allowed] if hosts is not None else sorted(allowed)
        if hosts is None:
            return None
        if getattr(task, "run_once", False) is True:
            return min(1, len(hosts))
        return len(hosts)

    def _removed(self) -> Set[str]:
        """Hosts that left the play: Ansible's own list (as ``ansible_play_batch``), else ours."""
        removed = getattr(self._play, "_removed_hosts", None)
        if isinstance(removed, (list, set, tuple)):
            return set(removed)
        return set(self._left)

    def _included_by(self, task: Any) -> Optional[Set[str]]:
        node = getattr(task, "_parent", None)
        for _depth in range(256):
            if node is None:
                return None
            hosts = self._includes.get(getattr(node, "_uuid", None))
            if hosts is not None:
                return hosts
            node = getattr(node, "_parent", None)
        return None

    def _rescued_by(self, task: Any) -> Optional[Set[str]]:
        """For a task of a rescue section, the hosts that failed in the block."""
        for child, block in _ancestry(task):
            if _holds(getattr(block, "rescue", None), child):
                return self._rescuing.get(getattr(block, "_uuid", None), set())
        return None

    def _rescue_starts(self, task: Any, host: str) -> None:
        for child, block in _ancestry(task):
            if getattr(block, "rescue", None) and _holds(getattr(block, "block", None), child):
                self._rescuing.setdefault(getattr(block, "_uuid", None), set()).add(host)
                return

    @_guarded
    def v2_playbook_on_include(self, included_file: Any) -> None:
        task = getattr(included_file, "_task", None)
        key = getattr(task, "_uuid", None)
        if key is not None:
            self._includes.setdefault(key, set()).update(_names(getattr(included_file, "_hosts", None) or []))

    def _finish_tasks(self) -> None:
        for state in self._tasks.values():
            if state.hosts and state.finished_at != len(state.hosts):
                self._finished(state)
        if self._lockstep():
            self._tasks = {}

    def _finished(self, state: _Task) -> None:
        state.finished_at = len(state.hosts)
        self._emit(self._task_line(state, finished=True))

    def _task_line(self, state: _Task, finished: bool) -> str:
        done = len(state.hosts)
        elapsed = self._clock() - state.started
        expected = "/%d" % state.expected if state.expected is not None else ""
        line = "%s %s: %d%s hosts%s, %s elapsed" % (
            PREFIX,
            state.name,
            done,
            expected,
            _counts((label, state.counts[label]) for label in _COUNTED),
            duration(elapsed),
        )
        if finished:
            line += ", finished"
        elif state.expected is not None:
            if done >= MIN_DONE_FOR_ESTIMATE:
                line += ", about %s left" % duration(elapsed / done * max(state.expected - done, 0))
            else:
                line += ", estimating"
        return line + self._fleet_part()

    def _fleet_part(self) -> str:
        if not self._signaled or self._play_hosts is None:
            return ""
        total = len(self._play_hosts)
        done = len(self._signaled | set(self._left))
        return "; fleet: %d/%d hosts done%s, %d remaining" % (
            done,
            total,
            self._left_counts(),
            max(total - done, 0),
        )

    # results

    @_guarded
    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        state = self._tasks.get(getattr(task, "_uuid", None))
        if state is not None and state.hosts and self._interval > 0:
            self._tick(state)  # a line while hosts run long tasks, not a repeated one per host

    @_guarded
    def v2_runner_on_ok(self, result: Any) -> None:
        task = self._result_task(result)
        host = self._result_host(result)
        if _is_set_fact(task) and _signals(task, self._result_data(result)):
            self._signaled.add(host)
            self._run_signaled.add(host)
        self._record(result, "changed" if self._is_changed(result) else "ok")

    @_guarded
    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        host = self._result_host(result)
        if ignore_errors:
            left = False
        else:
            removed = getattr(self._play, "_removed_hosts", None)
            # Ansible takes a host off its list again when a rescue section takes over
            left = host in removed if isinstance(removed, (list, set, tuple)) else True
        if not ignore_errors and not left:
            self._rescue_starts(self._result_task(result), host)
        self._record(result, "ignored" if ignore_errors else "failed", left="failed" if left else None)

    @_guarded
    def v2_runner_on_unreachable(self, result: Any) -> None:
        task = self._result_task(result)
        removed = getattr(self._play, "_removed_hosts", None)
        if isinstance(removed, (list, set, tuple)):
            left = self._result_host(result) in removed
        else:
            left = getattr(task, "ignore_unreachable", False) is not True
        self._record(result, "unreachable", left="unreachable" if left else None)

    @_guarded
    def v2_runner_on_skipped(self, result: Any) -> None:
        self._record(result, "skipped")

    def _record(self, result: Any, status: str, left: Optional[str] = None) -> None:
        task = self._result_task(result)
        host = self._result_host(result)
        self._run_hosts.add(host)
        if left:
            self._left[host] = self._run_left[host] = left
        else:  # still in the play (ignore_errors, rescue, a later task): it did not leave it
            self._left.pop(host, None)
            self._run_left.pop(host, None)
        key = getattr(task, "_uuid", None) or id(task)
        state = self._tasks.get(key)
        if state is None:
            if getattr(task, "implicit", False) is True:
                return
            state = _Task(self._task_name(task), self._expected(task, False), self._clock())
            self._tasks[key] = state
        if host in state.hosts:
            return
        state.hosts.add(host)
        if status in state.counts:
            state.counts[status] += 1
        if state.expected is not None and len(state.hosts) >= state.expected:
            self._finished(state)
        else:
            self._tick(state)

    def _tick(self, state: _Task) -> None:
        if self._last_line is not None and self._clock() - self._last_line < self._interval:
            return
        self._emit(self._task_line(state, finished=False))

    @staticmethod
    def _result_host(result: Any) -> str:
        host = getattr(result, "host", None)  # ansible-core >= 2.19
        if host is None:
            host = getattr(result, "_host", None)
        return _name_of(host)

    @staticmethod
    def _result_task(result: Any) -> Any:
        task = getattr(result, "task", None)  # ansible-core >= 2.19
        return task if task is not None else getattr(result, "_task", None)

    @staticmethod
    def _result_data(result: Any) -> Mapping:
        data = getattr(result, "result", None)  # ansible-core >= 2.19
        if not isinstance(data, Mapping):
            data = getattr(result, "_result", None)
        return data if isinstance(data, Mapping) else {}

    def _is_changed(self, result: Any) -> bool:
        check = getattr(result, "is_changed", None)
        if callable(check):
            return bool(check())
        return bool(self._result_data(result).get("changed"))

    # the end

    @_guarded
    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._finish_tasks()
        self._tasks = {}
        elapsed = duration(self._clock() - self._run_started)
        processed = getattr(stats, "processed", None)
        if isinstance(processed, Mapping):
            dark, failures = getattr(stats, "dark", {}) or {}, getattr(stats, "failures", {}) or {}
            hosts = sorted(processed)
            unreachable = [h for h in hosts if dark.get(h)]
            failed = [h for h in hosts if failures.get(h) and not dark.get(h)]
        else:
            hosts = sorted(self._run_hosts)
            unreachable = sorted(h for h, kind in self._run_left.items() if kind == "unreachable")
            failed = sorted(h for h, kind in self._run_left.items() if kind == "failed")
        line = "%s finished in %s: %d hosts; done %d, failed %d, unreachable %d" % (
            PREFIX,
            elapsed,
            len(hosts),
            len(hosts) - len(failed) - len(unreachable),
            len(failed),
            len(unreachable),
        )
        if self._run_signaled:
            line += "; %s set by %d" % (SIGNAL, len(self._run_signaled))
        if failed:
            line += "; failed: " + _listing(failed)
        if unreachable:
            line += "; unreachable: " + _listing(unreachable)
        self._emit(line)


def _ancestry(task: Any) -> Iterable[tuple]:
    """(child, parent) pairs from a task up to its play: blocks, include tasks."""
    child = task
    for _depth in range(256):
        parent = getattr(child, "_parent", None)
        if parent is None:
            return
        yield child, parent
        child = parent


def _holds(section: Any, node: Any) -> bool:
    key = getattr(node, "_uuid", None)
    return isinstance(section, list) and key is not None and any(
        getattr(item, "_uuid", None) == key for item in section
    )


def _is_set_fact(task: Any) -> bool:
    return any(getattr(task, attr, None) in _SET_FACT for attr in ("_resolved_action", "action"))


def _signals(task: Any, data: Mapping) -> bool:
    """Whether a set_fact result sets the fleet signal (keys only: never a value)."""
    args = getattr(task, "args", None)
    if isinstance(args, Mapping) and SIGNAL in args:
        return True
    facts = [data.get("ansible_facts")]
    items = data.get("results")
    if isinstance(items, list):
        facts.extend(item.get("ansible_facts") for item in items if isinstance(item, Mapping))
    return any(isinstance(f, Mapping) and SIGNAL in f for f in facts)
