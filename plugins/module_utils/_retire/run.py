# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the ``sne.guichet.retire`` module does once its arguments are parsed.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

One run: scan the search paths for the retired fingerprints (the quarantine and backup
folders left out), sort what was found (``sort.py``), lock every file it may move or rewrite
(``_common/lock.py``, check mode too), then plan everything - each stray scanned again under
its lock (moved only if it still holds nothing but retired certificates), each configuration
file read and rewritten in memory - and only then write: the configuration files first (a
configuration never names a file already moved away), then the moves. The first write that
fails stops the run; the result says what was done before it.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import ArgumentError, SneError
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._common.lock import DEFAULT_TIMEOUT, StoreLocks
from ansible_collections.sne.guichet.plugins.module_utils._common.tools import CommandRunner, module_tools
from ansible_collections.sne.guichet.plugins.module_utils._retire.quarantine import (
    STAGING,
    TAKEN,
    Move,
    apply_move,
    clean_staging,
    plan_move,
)
from ansible_collections.sne.guichet.plugins.module_utils._retire.rewrite import (
    Rewrite,
    apply_rewrite,
    plan_rewrite,
    rules_by_file,
)
from ansible_collections.sne.guichet.plugins.module_utils._retire.sort import strays
from ansible_collections.sne.guichet.plugins.module_utils._scan import Scanner

DEFAULT_MAX_DEPTH = 8  # the module's and the retire role's default


class Plan:
    """What one run does: the moves and rewrites, and what it leaves for a person."""

    def __init__(self) -> None:
        self.moves: List[Move] = []
        self.rewrites: List[Rewrite] = []
        self.attention: List[str] = []

    @property
    def taken(self) -> List[str]:
        return [m.source for m in self.moves if m.action == TAKEN]

    @property
    def to_move(self) -> List[Move]:
        return [m for m in self.moves if m.action != TAKEN]


def _run_id(backups: Backups) -> str:
    run_id = backups.run_id
    if os.sep in run_id or run_id in (os.curdir, os.pardir, STAGING) or not run_id.strip():
        raise ArgumentError("run_id %r cannot name a folder (no '/', not '.', '..' or %s)"
                            % (run_id, STAGING))
    return run_id


def _scanner(params: Dict[str, Any], tools: Tuple[Optional[CommandRunner], Any]) -> Scanner:
    own = [os.path.normpath(params["quarantine_dir"]) + "/*",
           os.path.normpath(params["backup_dir"]) + "/*"]
    depth = params.get("max_depth")
    return Scanner(sha256=params["sha256"], max_depth=DEFAULT_MAX_DEPTH if depth is None else depth,
                   exclude=list(params.get("exclude") or []) + own,
                   passwords=params.get("passwords"), run_command=tools[0], find_tool=tools[1])


def _still_stray(path: str, params: Dict[str, Any], tools: Tuple[Any, Any],
                 kept: List[str]) -> Optional[bool]:
    """Scanned again under its lock: True still movable, False needs a person now, None it
    holds no retired certificate any more (or is gone)."""
    info = _scanner(params, tools).scan([path])["files"].get(path)
    if info is None:
        return None
    return bool(strays({path: info}, [], kept)["movable"])


def _plan(params: Dict[str, Any], movable: List[str], rules: Dict[str, Any], run_id: str,
          tools: Tuple[Any, Any]) -> Plan:
    plan = Plan()
    kept = list(rules)
    for path in movable:
        move = plan_move(path, params["quarantine_dir"], run_id)
        if move is None:  # gone meanwhile (nothing to do), or no longer a regular file
            if os.path.lexists(path):
                plan.attention.append(path)
            continue
        still = _still_stray(path, params, tools, kept)
        if still:
            plan.moves.append(move)
        elif still is False:  # it holds other certificates now
            plan.attention.append(path)
    for path, file_rules in rules.items():
        rewrite = plan_rewrite(path, file_rules)
        if rewrite.changed:
            plan.rewrites.append(rewrite)
    return plan


def _apply(plan: Plan, backups: Backups, done: Dict[str, List[str]], quarantine_dir: str) -> None:
    """Write the plan, configuration files first; ``done`` filled as it goes (with the file
    whose write failed after it took effect: a folder fsync that failed after the rename)."""
    clean_staging(quarantine_dir)
    for rewrite in plan.rewrites:
        try:
            apply_rewrite(rewrite, backups)
        except SneError:
            if rewrite.took_effect():
                done["config_rewritten"].append(rewrite.path)
            raise
        done["config_rewritten"].append(rewrite.path)
    for move in plan.to_move:
        try:
            apply_move(move)
        except SneError:
            if move.took_effect():
                done["quarantined"].append(move.source)
            raise
        done["quarantined"].append(move.source)


Outcome = Tuple[Dict[str, Any], Optional[str]]


def retire(params: Dict[str, Any], check_mode: bool = False, diff: bool = False,
           run_command: Optional[CommandRunner] = None,
           find_tool: Optional[Callable[[str], Optional[str]]] = None) -> Outcome:
    """One retire run; (result, None) or (result so far, the failure's message).

    ``params`` are the module's options. ArgumentError for options it cannot work with.
    """
    backups = Backups(params["backup_dir"] if params.get("backup", True) else None, params.get("run_id"))
    run_id = _run_id(backups)
    rules = rules_by_file(params.get("config_files") or [])
    tools = (run_command, find_tool)
    found: Dict[str, Any] = {}
    files: Dict[str, Any] = {}
    if params.get("paths") and params.get("sha256"):  # no fingerprint: nothing to look for
        scanned = _scanner(params, tools).scan(params["paths"])
        found, files = scanned["found"], scanned["files"]
    sorted_ = strays(files, params.get("declared") or [], list(rules))
    movable = sorted_["movable"] if params.get("quarantine", True) else []
    result: Dict[str, Any] = dict(changed=False, run_id=run_id, found=found, quarantined=[],
                                  quarantine_taken=[], needs_attention=sorted_["attention"],
                                  config_rewritten=[])
    timeout = params.get("lock_timeout")
    locks = StoreLocks(movable + list(rules), DEFAULT_TIMEOUT if timeout is None else timeout, run_id)
    with locks:
        refused = [str(locks.errors[p]) for p in dict.fromkeys(movable + list(rules)) if p in locks.errors]
        if refused:
            return result, "; ".join(dict.fromkeys(refused))
        try:
            plan = _plan(params, movable, rules, run_id, tools)
        except SneError as exc:
            return result, "%s; nothing was changed" % exc.reason
        result["needs_attention"] = sorted(set(result["needs_attention"]) | set(plan.attention))
        result["quarantine_taken"] = plan.taken
        if diff:
            result["diff"] = [r.diff() for r in plan.rewrites] + [m.diff() for m in plan.to_move]
        if check_mode:
            result["quarantined"] = [m.source for m in plan.to_move]
            result["config_rewritten"] = [r.path for r in plan.rewrites]
            result["changed"] = bool(plan.rewrites or plan.to_move)
            return result, None
        done: Dict[str, List[str]] = {"quarantined": [], "config_rewritten": []}
        try:
            _apply(plan, backups, done, params["quarantine_dir"])
        except SneError as exc:
            error: Optional[str] = exc.reason
        else:
            error = None
    result.update(done, changed=bool(done["quarantined"] or done["config_rewritten"]))
    if error is not None:
        if diff:
            result["diff"] = [d for d in result["diff"] if d["path"] in done["quarantined"]
                              or d["path"] in done["config_rewritten"]]
        written = done["config_rewritten"] + done["quarantined"]
        error += "; done before the failure: %s" % (", ".join(written) if written else "nothing")
    return result, error


def run_retire(module: Any) -> None:
    """What the ``sne.guichet.retire`` module does once its arguments are parsed."""
    run_command, find_tool = module_tools(module)
    try:
        result, error = retire(module.params, module.check_mode, module._diff, run_command, find_tool)
    except ArgumentError as exc:
        module.fail_json(msg=str(exc))
    if error is not None:
        module.fail_json(msg=error, **result)
    module.exit_json(**result)
