# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the ``sne.guichet.keystores`` module does once its arguments are parsed.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only.

The arguments become StoreSpec and CertEntry objects, the engine converges the stores,
and the outcomes become the module's result (or its failure, with every store's reason).
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

from ansible_collections.sne.guichet.plugins.module_utils._common.io import Backups
from ansible_collections.sne.guichet.plugins.module_utils._common.tools import module_tools
from ansible_collections.sne.guichet.plugins.module_utils._stores.base import StoreSpec
from ansible_collections.sne.guichet.plugins.module_utils._stores.engine import (
    ArgumentError,
    absent_set,
    converge,
    wanted_entries,
)


def store_specs(stores: List[dict]) -> List[StoreSpec]:
    return [StoreSpec(path=s["path"], type=s["type"], password=s.get("password"),
                      owner=s.get("owner"), group=s.get("group"), mode=s.get("mode"),
                      refresh=s.get("refresh"), create=bool(s.get("create")),
                      names=s.get("names"))
            for s in stores]


def run_keystores(module: Any) -> None:
    params = module.params
    try:
        present = wanted_entries(params["present"])
        absent = absent_set(params["absent_sha256"])
        specs = store_specs(params["stores"])
        for spec in specs:
            unknown = [n for n in (spec.names or []) if n not in [p.name for p in present]]
            if unknown:
                raise ArgumentError("stores[%s].names: not in present: %s"
                                    % (spec.path, ", ".join(unknown)))
    except ArgumentError as exc:
        module.fail_json(msg=str(exc))

    backups = Backups(params["backup_dir"] if params["backup"] else None, params["run_id"])

    run_command, find_tool = module_tools(module)

    try:
        outcomes, changed, failed = converge(specs, present, absent, module.check_mode,
                                             backups, run_command, find_tool,
                                             all_or_nothing=params["all_or_nothing"],
                                             lock_timeout=params["lock_timeout"])
    except ArgumentError as exc:
        module.fail_json(msg=str(exc))
    results = [o.result for o in outcomes]
    diffs = [o.diff for o in outcomes if o.diff]
    failed_stores = [r["path"] for r in results if r["failed"]]
    out = dict(changed=changed, stores=results, failed_stores=failed_stores,
               run_id=backups.run_id)
    if module._diff and diffs:
        out["diff"] = diffs
    if failed:
        module.fail_json(msg="%d of %d stores could not be processed (left unchanged)%s: %s"
                         % (len(failed_stores), len(results), _written_note(results, params, module),
                            "; ".join(r["msg"] for r in results if r["failed"])), **out)
    if changed and params.get("reload_commands"):
        out["reloaded"], problem = reload(params["reload_commands"], module.check_mode, run_command,
                                          find_tool)
        if problem:
            module.fail_json(msg="the stores were converged, but %s" % problem, **out)
    module.exit_json(**out)


def reload(commands: List[List[str]], check_mode: bool, run_command: Any,
           find_tool: Callable[[str], Optional[str]]) -> Tuple[List[dict], str]:
    """Run the guichet's reload commands after a change, in order, stopping at the first that
    fails. Returns what ran (argv, rc, the end of its output) and the failure, if any. In check
    mode nothing runs: each command is listed with ``rc`` None."""
    done: List[dict] = []
    for argv in commands:
        if not argv or not all(isinstance(a, str) and a for a in argv):
            return done, "reload_commands: %r is not a list of non-empty strings" % (argv,)
        if find_tool(argv[0]) is None:
            return done, "the reload command %s cannot be run: %s not found or not executable" % (
                " ".join(argv), argv[0])
        if check_mode:
            done.append({"argv": list(argv), "rc": None, "stdout": "", "stderr": ""})
            continue
        rc, stdout, stderr = run_command(list(argv))
        done.append({"argv": list(argv), "rc": rc, "stdout": stdout[-2000:], "stderr": stderr[-2000:]})
        if rc != 0:
            return done, "the reload command %s failed (rc %s): %s" % (
                " ".join(argv), rc, (stderr or stdout).strip()[-500:] or "no output")
    return done, ""


def _written_note(results: List[dict], params: dict, module: Any) -> str:
    """What the failure message says of the other stores: written before the failure (a write
    failed after others were done: the host is half rotated until a rerun), or none written."""
    if module.check_mode:
        return ""
    written = [r["path"] for r in results if r["changed"] and not r["failed"]]
    if written:
        return "; written before the failure: %s" % ", ".join(written)
    return "; no store was written (all_or_nothing)" if params["all_or_nothing"] else ""
