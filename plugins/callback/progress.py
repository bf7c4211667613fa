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
from typing import Any, Callable, Dict, Optional, TypeVar  # noqa: E402

from ansible.plugins.callback import CallbackBase  # noqa: E402

from ansible_collections.sne.guichet.plugins.plugin_utils._progress import Progress, TaskState  # noqa: E402

_F = TypeVar("_F", bound=Callable[..., Any])


def _guarded(method: _F) -> _F:
    """Run a callback method; any error is reported once and never reaches Ansible."""

    @functools.wraps(method)
    def wrapper(self: CallbackModule, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except Exception as exc:  # a progress display must never break a rotation
            self._internal_error(method.__name__, exc)

    return wrapper  # type: ignore[return-value]


class CallbackModule(CallbackBase):
    """Progress of the hosts of a play, and the time left (the model: plugin_utils._progress)."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "sne.guichet.progress"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display: Any = None, options: Optional[Dict[str, Any]] = None) -> None:
        self._clock: Callable[[], float] = time.monotonic  # replaced by a fake clock in tests
        self._progress = Progress(emit=self._emit, clock=self._now)
        self._output = "display"
        self._file: Optional[str] = None
        super().__init__(display=display, options=options)
        self._warned = False

    # the model's state, for a reader of this plugin (the tests)

    @property
    def _tasks(self) -> Dict[Any, TaskState]:
        return self._progress.tasks

    @property
    def _left(self) -> Dict[str, str]:
        return self._progress.left

    # options and output

    def set_options(self, task_keys: Any = None, var_options: Any = None, direct: Any = None) -> None:
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self._apply_options()

    def _apply_options(self) -> None:
        interval = self.get_option("interval")
        self._progress.interval = max(0.0, float(10 if interval is None else interval))
        self._output = self.get_option("output") or "display"
        self._file = self.get_option("file") or None

    def _now(self) -> float:
        return self._clock()

    def _emit(self, line: str) -> None:
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

    # Ansible's events, passed to the model

    @_guarded
    def v2_playbook_on_start(self, playbook: Any) -> None:
        self._progress.playbook_start()

    @_guarded
    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._progress.play_start(play)

    @_guarded
    def v2_playbook_on_task_start(self, task: Any, is_conditional: Any) -> None:
        self._progress.task_start(task, handler=False)

    @_guarded
    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._progress.task_start(task, handler=True)

    @_guarded
    def v2_playbook_on_include(self, included_file: Any) -> None:
        self._progress.include(included_file)

    @_guarded
    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self._progress.runner_start(task)

    @_guarded
    def v2_runner_on_ok(self, result: Any) -> None:
        self._progress.runner_ok(result)

    @_guarded
    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._progress.runner_failed(result, ignore_errors)

    @_guarded
    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._progress.runner_unreachable(result)

    @_guarded
    def v2_runner_on_skipped(self, result: Any) -> None:
        self._progress.runner_skipped(result)

    @_guarded
    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._progress.playbook_end(stats)
