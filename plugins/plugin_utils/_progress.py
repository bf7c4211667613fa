# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The progress of a play: hosts done, failed and remaining, the time left, and its lines.

This API is private to the sne.guichet collection; it may change without notice.
Controller side: the ``sne.guichet.progress`` callback plugin is its Ansible wiring (options,
output, the guard that keeps an error of this code out of the run); :class:`Progress` holds
what is known of the run and writes a line through ``emit`` when one is due. What it reads of
Ansible's objects is in :mod:`_progress_reading`. Only play and task names, counts, times and
host names are written, never the content of a result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Dict, Iterable, List, Optional, Set

from ansible_collections.sne.guichet.plugins.plugin_utils._progress_reading import (
    SIGNAL,
    ancestry,
    batch_sizes,
    holds,
    is_changed,
    is_set_fact,
    key_of,
    names,
    play_hosts,
    result_data,
    result_host,
    result_task,
    signals,
    task_name,
)

PREFIX = "[sne]"
MIN_DONE_FOR_ESTIMATE = 3
MAX_NAMES = 10
_NOT_LOCKSTEP = frozenset(("free", "host_pinned", "ansible.builtin.free", "ansible.builtin.host_pinned"))
_COUNTED = ("changed", "skipped", "failed", "ignored", "unreachable")


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


def _listing(hosts: List[str]) -> str:
    shown = ", ".join(hosts[:MAX_NAMES])
    if len(hosts) > MAX_NAMES:
        shown += " (+%d more)" % (len(hosts) - MAX_NAMES)
    return shown


def _counts(parts: Iterable[tuple]) -> str:
    text = ", ".join("%s %d" % (label, count) for label, count in parts if count)
    return " (%s)" % text if text else ""


class TaskState:
    """What is known of one task of the current batch."""

    def __init__(self, name: str, expected: Optional[int], started: float) -> None:
        self.name = name
        self.expected = expected
        self.started = started
        self.hosts: Set[str] = set()
        self.counts: Dict[str, int] = dict.fromkeys(_COUNTED, 0)
        self.finished_at: Optional[int] = None  # hosts done when the finished line was printed


class Progress:
    """The hosts of a run, play by play and batch by batch, fed with the callback's events.

    ``emit`` is called with each line due; ``clock`` gives monotonic seconds. ``interval``:
    the least number of seconds between two lines while a task runs (0: a line per result).
    ``tasks`` (task key -> :class:`TaskState`, the current batch) and ``left`` (host ->
    ``failed`` or ``unreachable``: the hosts that left the play) can be read at any time.
    """

    def __init__(self, emit: Callable[[str], None], clock: Callable[[], float]) -> None:
        self._write = emit
        self._clock = clock
        self.interval = 10.0
        self._last_line: Optional[float] = None
        self._run_started = clock()
        # the play (all its batches)
        self._play: Any = None
        self._play_key: Any = None
        self._play_started = 0.0
        self._play_hosts: Optional[List[str]] = None
        self._sizes: Optional[List[int]] = None
        self._batch = 0
        self.left: Dict[str, str] = {}
        self._signaled: Set[str] = set()
        # the current batch
        self._batch_hosts: Optional[List[str]] = None
        self.tasks: Dict[Any, TaskState] = {}
        self._includes: Dict[Any, Set[str]] = {}
        self._rescuing: Dict[Any, Set[str]] = {}  # block uuid -> hosts its rescue section runs for
        # the whole run, for the last line when the recap is not usable
        self._run_signaled: Set[str] = set()
        self._run_left: Dict[str, str] = {}
        self._run_hosts: Set[str] = set()

    def _emit(self, line: str) -> None:
        self._last_line = self._clock()
        self._write(line)

    # playbook and plays

    def playbook_start(self) -> None:
        self._run_started = self._clock()
        self._run_signaled, self._run_left, self._run_hosts = set(), {}, set()

    def play_start(self, play: Any) -> None:
        self._finish_tasks()
        now = self._clock()
        key = key_of(play)
        batch_hosts, every_host = play_hosts(play)
        if key != self._play_key:  # a new play; else the next batch of the same play (same uuid)
            self._play_key, self._play_started, self._batch = key, now, 0
            self._play_hosts = every_host
            self.left, self._signaled = {}, set()
            self._sizes = None
            if every_host:
                try:
                    self._sizes = batch_sizes(len(every_host), getattr(play, "serial", None))
                except (TypeError, ValueError):
                    pass
        self._play = play
        self._batch += 1
        self._batch_hosts = batch_hosts
        self.tasks, self._includes, self._rescuing = {}, {}, {}
        self._emit(self._play_line(play, now))

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
        kinds = list(self.left.values())
        return _counts((kind, kinds.count(kind)) for kind in ("failed", "unreachable"))

    # tasks

    def _lockstep(self) -> bool:
        return str(getattr(self._play, "strategy", None) or "linear") not in _NOT_LOCKSTEP

    def task_start(self, task: Any, handler: bool) -> None:
        key = key_of(task)
        if self._lockstep():
            self._finish_tasks()  # the previous task is over for every host
        elif key in self.tasks:
            return  # the free strategy starts a task once per host
        self.tasks[key] = TaskState(task_name(task), self._expected(task, handler), self._clock())

    def _expected(self, task: Any, handler: bool) -> Optional[int]:
        hosts: Optional[List[str]] = None
        if self._batch_hosts is not None:
            removed = self._removed()
            hosts = [h for h in self._batch_hosts if h not in removed]
        restrictions = [self._included_by(task), self._rescued_by(task)]
        if handler and isinstance(getattr(task, "notified_hosts", None), list):
            restrictions.append(set(names(task.notified_hosts)))
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
        return set(self.left)

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
        for child, block in ancestry(task):
            if holds(getattr(block, "rescue", None), child):
                return self._rescuing.get(getattr(block, "_uuid", None), set())
        return None

    def _rescue_starts(self, task: Any, host: str) -> None:
        for child, block in ancestry(task):
            if getattr(block, "rescue", None) and holds(getattr(block, "block", None), child):
                self._rescuing.setdefault(getattr(block, "_uuid", None), set()).add(host)
                return

    def include(self, included_file: Any) -> None:
        task = getattr(included_file, "_task", None)
        key = getattr(task, "_uuid", None)
        if key is not None:
            self._includes.setdefault(key, set()).update(names(getattr(included_file, "_hosts", None) or []))

    def _finish_tasks(self) -> None:
        for state in self.tasks.values():
            if state.hosts and state.finished_at != len(state.hosts):
                self._finished(state)
        if self._lockstep():
            self.tasks = {}

    def _finished(self, state: TaskState) -> None:
        state.finished_at = len(state.hosts)
        self._emit(self._task_line(state, finished=True))

    def _task_line(self, state: TaskState, finished: bool) -> str:
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
        done = len(self._signaled | set(self.left))
        return "; fleet: %d/%d hosts done%s, %d remaining" % (
            done,
            total,
            self._left_counts(),
            max(total - done, 0),
        )

    # results

    def runner_start(self, task: Any) -> None:
        state = self.tasks.get(getattr(task, "_uuid", None))
        if state is not None and state.hosts and self.interval > 0:
            self._tick(state)  # a line while hosts run long tasks, not a repeated one per host

    def runner_ok(self, result: Any) -> None:
        task = result_task(result)
        host = result_host(result)
        if is_set_fact(task) and signals(task, result_data(result)):
            self._signaled.add(host)
            self._run_signaled.add(host)
        self._record(result, "changed" if is_changed(result) else "ok")

    def runner_failed(self, result: Any, ignore_errors: bool) -> None:
        host = result_host(result)
        if ignore_errors:
            left = False
        else:
            removed = getattr(self._play, "_removed_hosts", None)
            # Ansible takes a host off its list again when a rescue section takes over
            left = host in removed if isinstance(removed, (list, set, tuple)) else True
        if not ignore_errors and not left:
            self._rescue_starts(result_task(result), host)
        self._record(result, "ignored" if ignore_errors else "failed", left="failed" if left else None)

    def runner_unreachable(self, result: Any) -> None:
        task = result_task(result)
        removed = getattr(self._play, "_removed_hosts", None)
        if isinstance(removed, (list, set, tuple)):
            left = result_host(result) in removed
        else:
            left = getattr(task, "ignore_unreachable", False) is not True
        self._record(result, "unreachable", left="unreachable" if left else None)

    def runner_skipped(self, result: Any) -> None:
        self._record(result, "skipped")

    def _record(self, result: Any, status: str, left: Optional[str] = None) -> None:
        task = result_task(result)
        host = result_host(result)
        self._run_hosts.add(host)
        if left:
            self.left[host] = self._run_left[host] = left
        else:  # still in the play (ignore_errors, rescue, a later task): it did not leave it
            self.left.pop(host, None)
            self._run_left.pop(host, None)
        key = key_of(task)
        state = self.tasks.get(key)
        if state is None:
            if getattr(task, "implicit", False) is True:
                return
            state = TaskState(task_name(task), self._expected(task, False), self._clock())
            self.tasks[key] = state
        if host in state.hosts:
            return
        state.hosts.add(host)
        if status in state.counts:
            state.counts[status] += 1
        if state.expected is not None and len(state.hosts) >= state.expected:
            self._finished(state)
        else:
            self._tick(state)

    def _tick(self, state: TaskState) -> None:
        if self._last_line is not None and self._clock() - self._last_line < self.interval:
            return
        self._emit(self._task_line(state, finished=False))

    # the end

    def playbook_end(self, stats: Any) -> None:
        self._finish_tasks()
        self.tasks = {}
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
