# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the ``sne.guichet.retire`` module does once its arguments are parsed.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

One run: the declared stores given (option ``stores``) cleaned of the retired fingerprints by
the keystores engine (``_stores``, imported only then); then scan the search paths for the
retired fingerprints (the quarantine and backup folders left out), sort what was found
(``sort.py``), lock every file it may move or rewrite (``_common/lock.py``, check mode too),
then plan everything - each stray scanned again under its lock (moved only if it still holds
nothing but retired certificates), each configuration file read and rewritten in memory - and
only then write: the configuration files first (a configuration never names a file already
moved away), then the moves. The first write that fails stops the run; the result says what
was done before it.

With ``outboxes``, the outbound folders are read too (``outbox.py``): the messages encrypted to
a retired certificate (option ``certificates``) are reported in ``outbox`` and, with
``outbox_quarantine``, locked, read again and moved into the same quarantine after the strays.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import ArgumentError, SneError
from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._common.lock import DEFAULT_TIMEOUT, StoreLocks
from ansible_collections.sne.guichet.plugins.module_utils._common.tools import CommandRunner, module_tools
from ansible_collections.sne.guichet.plugins.module_utils._retire.outbox import (
    OutboxScan,
    RetiredIds,
    outbox_result,
    scan_outboxes,
    still_retired,
)
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
    """What one run does: the moves and rewrites, and what it leaves for a person; the
    moves of the outbound messages to a retired certificate (``outbox_moves``)."""

    def __init__(self) -> None:
        self.moves: List[Move] = []
        self.rewrites: List[Rewrite] = []
        self.attention: List[str] = []
        self.outbox_moves: List[Move] = []

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


def _plan_outbox(plan: Plan, messages: List[str], retired: RetiredIds, quarantine_dir: str,
                 run_id: str) -> None:
    """The moves of the retired messages, each read again under its lock (one sent or
    replaced meanwhile is not moved)."""
    for path in messages:
        move = plan_move(path, quarantine_dir, run_id)
        if move is not None and still_retired(path, retired):
            plan.outbox_moves.append(move)


def _apply(plan: Plan, backups: Backups, done: Dict[str, List[str]], quarantine_dir: str) -> None:
    """Write the plan, configuration files first, then the strays, then the outbound
    messages; ``done`` filled as it goes (with the file whose write failed after it took
    effect: a folder fsync that failed after the rename). A message gone when it is moved was
    sent meanwhile: not a failure, not moved."""
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
    for move in plan.outbox_moves:
        if move.action == TAKEN:
            continue
        try:
            apply_move(move)
        except SneError:
            if move.took_effect():
                done["outbox_moved"].append(move.source)
            elif not os.path.lexists(move.source) and not os.path.lexists(move.place):
                continue  # sent meanwhile
            raise
        done["outbox_moved"].append(move.source)


Outcome = Tuple[Dict[str, Any], Optional[str]]


def _retired_ids(params: Dict[str, Any]) -> RetiredIds:
    """The retired certificates' identifiers (ArgumentError before anything is done when one
    is not retired, or when outboxes are given without them)."""
    retired = RetiredIds(list(params.get("certificates") or []), list(params.get("sha256") or []))
    if params.get("outboxes") and not retired:
        raise ArgumentError("outboxes given but no certificates: give the retired generation's "
                            "certificates (PEM) so that their messages can be recognised")
    return retired


def _scan_outbox(params: Dict[str, Any], retired: RetiredIds) -> OutboxScan:
    depth = params.get("max_depth")
    skip = [params["quarantine_dir"], params["backup_dir"]]
    return scan_outboxes(list(params.get("outboxes") or []), retired,
                         DEFAULT_MAX_DEPTH if depth is None else depth, skip)


def _clean_stores(params: Dict[str, Any], check_mode: bool, backups: Backups, tools: Tuple[Any, Any],
                  result: Dict[str, Any], diff: bool) -> Optional[str]:
    """The retired fingerprints removed from the declared stores of ``stores`` (the keystores
    engine: locks, plan, backups, manifest); ``result`` filled; the failure's message, if any."""
    # Imported here: the store backends are a tenth of a second of imports the scan and the
    # rewrite do not need (rotate.yml gives no stores: its deploy step cleaned them).
    from ansible_collections.sne.guichet.plugins.module_utils._stores.engine import absent_set, converge
    from ansible_collections.sne.guichet.plugins.module_utils._stores.run import store_specs

    absent = absent_set(params["sha256"])
    timeout = params.get("lock_timeout")
    outcomes, changed, failed = converge(store_specs(params["stores"]), [], absent, check_mode, backups,
                                         tools[0], tools[1],  # type: ignore[arg-type]
                                         lock_timeout=DEFAULT_TIMEOUT if timeout is None else timeout)
    stores = [o.result for o in outcomes]
    result.update(stores=stores, changed=changed,
                  stores_changed=[r["path"] for r in stores if r["changed"] and not r["failed"]],
                  failed_stores=[r["path"] for r in stores if r["failed"]])
    if diff:
        result["diff"] = [o.diff for o in outcomes if o.diff]
    if not failed:
        return None
    written = "" if check_mode or not result["stores_changed"] else (
        "; written before the failure: %s" % ", ".join(result["stores_changed"]))
    reasons = "; ".join(r["msg"] for r in stores if r["failed"])
    return "%d of %d stores could not be processed (left unchanged)%s: %s; nothing else was done" % (
        len(result["failed_stores"]), len(stores), written, reasons)


def retire(params: Dict[str, Any], check_mode: bool = False, diff: bool = False,
           run_command: Optional[CommandRunner] = None,
           find_tool: Optional[Callable[[str], Optional[str]]] = None) -> Outcome:
    """One retire run; (result, None) or (result so far, the failure's message).

    ``params`` are the module's options. ArgumentError for options it cannot work with.
    """
    backups = Backups(params["backup_dir"] if params.get("backup", True) else None, params.get("run_id"))
    run_id = _run_id(backups)
    rules = rules_by_file(params.get("config_files") or [])
    retired = _retired_ids(params)
    tools = (run_command, find_tool)
    outbox_quarantine = bool(params.get("outbox_quarantine"))
    result: Dict[str, Any] = dict(changed=False, run_id=run_id, stores=[], stores_changed=[],
                                  failed_stores=[], found={}, quarantined=[], quarantine_taken=[],
                                  needs_attention=[], config_rewritten=[],
                                  outbox=outbox_result(OutboxScan(), outbox_quarantine))
    declared = list(params.get("declared") or [])
    if params.get("stores") and params.get("sha256"):
        error = _clean_stores(params, check_mode, backups, tools, result, diff)
        if error is not None:
            return result, error
        declared += [s["path"] for s in params["stores"]]
    store_diffs: List[Dict[str, Any]] = result.pop("diff", [])
    stores_changed = bool(result["changed"])
    found: Dict[str, Any] = {}
    files: Dict[str, Any] = {}
    if params.get("paths") and params.get("sha256"):  # no fingerprint: nothing to look for
        scanned = _scanner(params, tools).scan(params["paths"])
        found, files = scanned["found"], scanned["files"]
    sorted_ = strays(files, declared, list(rules))
    movable = sorted_["movable"] if params.get("quarantine", True) else []
    result.update(found=found, needs_attention=sorted_["attention"])
    outbox = _scan_outbox(params, retired) if params.get("outboxes") else OutboxScan()
    result["outbox"] = outbox_result(outbox, outbox_quarantine)
    messages = result["outbox"]["paths"] if outbox_quarantine else []
    timeout = params.get("lock_timeout")
    locked = movable + list(rules) + messages
    locks = StoreLocks(locked, DEFAULT_TIMEOUT if timeout is None else timeout, run_id)
    with locks:
        refused = [str(locks.errors[p]) for p in dict.fromkeys(locked) if p in locks.errors]
        cleaned = "the stores %s were cleaned before" % ", ".join(result["stores_changed"]) if (
            stores_changed and not check_mode) else ""
        if refused:
            return result, "; ".join(list(dict.fromkeys(refused)) + ([cleaned] if cleaned else []))
        try:
            plan = _plan(params, movable, rules, run_id, tools)
            _plan_outbox(plan, messages, retired, params["quarantine_dir"], run_id)
        except SneError as exc:
            return result, "%s; %s" % (exc.reason, cleaned or "nothing was changed")
        result["needs_attention"] = sorted(set(result["needs_attention"]) | set(plan.attention))
        result["quarantine_taken"] = plan.taken
        outbox_moves = [m for m in plan.outbox_moves if m.action != TAKEN]
        result["outbox"]["quarantine_taken"] = [m.source for m in plan.outbox_moves if m.action == TAKEN]
        if diff:
            result["diff"] = (store_diffs + [r.diff() for r in plan.rewrites]
                              + [m.diff() for m in plan.to_move] + [m.diff() for m in outbox_moves])
        if check_mode:
            result["quarantined"] = [m.source for m in plan.to_move]
            result["config_rewritten"] = [r.path for r in plan.rewrites]
            result["outbox"]["moved"] = [m.source for m in outbox_moves]
            result["changed"] = stores_changed or bool(plan.rewrites or plan.to_move or outbox_moves)
            return result, None
        done: Dict[str, List[str]] = {"quarantined": [], "config_rewritten": [], "outbox_moved": []}
        try:
            _apply(plan, backups, done, params["quarantine_dir"])
        except SneError as exc:
            error: Optional[str] = exc.reason
        else:
            error = None
    result["outbox"]["moved"] = done.pop("outbox_moved")
    result.update(done, changed=stores_changed or bool(done["quarantined"] or done["config_rewritten"]
                                                       or result["outbox"]["moved"]))
    if error is not None:
        if diff:
            kept = done["quarantined"] + done["config_rewritten"] + result["outbox"]["moved"]
            result["diff"] = store_diffs + [d for d in result["diff"][len(store_diffs):] if d["path"] in kept]
        written = ((result["stores_changed"] if stores_changed else [])
                   + done["config_rewritten"] + done["quarantined"] + result["outbox"]["moved"])
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
