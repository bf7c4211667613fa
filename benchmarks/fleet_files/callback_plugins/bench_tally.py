# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark callback: module executions per host (benchmarks/fleet.py enables it).

Loop items count, skipped ones don't; tasks that only run on the controller (set_fact, assert,
debug, fail...) don't. A task delegated to the controller counts for the host it runs for.
The counts go to the JSON file named by BENCH_TALLY_FILE when the playbook ends.
"""
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

CONTROLLER_ONLY = {"set_fact", "assert", "debug", "validate_argument_spec", "include_role",
                   "include_tasks", "import_role", "import_tasks", "meta", "fail", "add_host",
                   "group_by", "pause", "include_vars",
                   # an action plugin that runs on the controller alone (it sends no module)
                   "fleet_report"}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_tally"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.runs = {}

    def _count(self, result):
        if result.task.action.rsplit(".", 1)[-1] in CONTROLLER_ONLY:
            return
        items = result.result.get("results")
        looped = result.task.loop is not None or result.task.loop_with
        n = sum(1 for i in items if not i.get("skipped")) if looped and isinstance(items, list) else 1
        name = result.host.get_name()
        self.runs[name] = self.runs.get(name, 0) + n

    def v2_runner_on_ok(self, result):
        self._count(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result)

    def v2_runner_on_unreachable(self, result):
        self._count(result)

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["BENCH_TALLY_FILE"], "w", encoding="utf-8") as fh:
            json.dump(self.runs, fh)
