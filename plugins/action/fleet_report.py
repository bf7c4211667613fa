# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action sne.guichet.fleet_report (documented in plugins/modules/fleet_report.py).

Runs on the controller only: reads the per-host records from hostvars, the fleet state from
the report folder, and writes the reports. No module is sent to any host.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from typing import Any, Dict, Optional

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.sne.guichet.plugins.plugin_utils import _fleet
from ansible_collections.sne.guichet.plugins.plugin_utils._report.html_page import render_html
from ansible_collections.sne.guichet.plugins.plugin_utils._report.junit import render_junit
from ansible_collections.sne.guichet.plugins.plugin_utils._report.revocation import revocation_entries
from ansible_collections.sne.guichet.plugins.plugin_utils._report.text import render_json, render_summary

ARGUMENT_SPEC: Dict[str, Any] = {
    "kind": {"type": "str", "choices": ["rotation", "audit"], "default": "rotation"},
    "generation": {"type": "str", "required": True},
    "run_id": {"type": "str", "required": True},
    "started": {"type": "str", "default": ""},
    "target": {"type": "str", "default": ""},
    "limit": {"type": "str", "default": ""},
    "scope": {"type": "list", "elements": "str", "required": True},
    "play_hosts_all": {"type": "list", "elements": "str", "default": []},
    "play_hosts": {"type": "list", "elements": "str", "default": []},
    "record_var": {"type": "str", "default": "sne_host_report"},
    "report_dir": {"type": "path", "required": True},
    "revocation_time": {"type": "str"},
    "deployed": {"type": "dict", "default": {}},
    "revocation": {"type": "list", "elements": "dict", "default": []},
    "update_state": {"type": "bool", "default": True},
    "dry_run": {"type": "bool"},
}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write(path: str, text: str) -> None:
    """Replace ``path`` atomically (a reader sees the old or the new report, never half)."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_state(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            state = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise AnsibleActionFail("cannot read the fleet state %s (%s); move it away to start a new one"
                                % (path, exc))
    if not isinstance(state, dict) or state.get("schema") != _fleet.STATE_SCHEMA:
        raise AnsibleActionFail("%s is not a fleet state of schema %d" % (path, _fleet.STATE_SCHEMA))
    return state


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "_"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        check_mode = bool(self._play_context.check_mode if args["dry_run"] is None else args["dry_run"])
        kind, generation = args["kind"], args["generation"]
        report_dir = os.path.abspath(args["report_dir"])
        gen_dir = os.path.join(report_dir, _safe_name(generation))
        now = _now()

        hostvars = task_vars.get("hostvars", {})
        records: Dict[str, Dict[str, Any]] = {}
        proposals: Dict[str, str] = {}
        for host in args["scope"]:
            try:
                record = hostvars[host].get(args["record_var"])
            except KeyError:
                record = None
            if isinstance(record, dict) and record.get("run_id") == args["run_id"]:
                record = dict(record)
                text = record.pop("proposal_text", "")
                if text:
                    proposals[host] = text
                    record["proposal"] = "host_vars/%s.yml" % _safe_name(host)
                    if record.get("status") == "unconfigured":
                        record["reason"] += "; proposal: audit/host_vars/%s.yml" % _safe_name(host)
                if kind == "rotation" and record.get("status") == "unconfigured":
                    proposal = os.path.join(gen_dir, "audit", "host_vars", "%s.yml" % _safe_name(host))
                    if os.path.isfile(proposal):  # written by the last audit.yml
                        record["reason"] += "; proposal from the last audit: %s" % proposal
                records[host] = record

        state_path = os.path.join(report_dir, "fleet-%s.json" % _safe_name(generation))
        state = _read_state(state_path) if kind == "rotation" else None
        view = _fleet.fleet_view(args["scope"], args["play_hosts_all"], args["play_hosts"], records,
                                 state, kind, generation, args["run_id"], now)
        run = {"run_id": args["run_id"], "started": args["started"], "ended": now,
               "check_mode": check_mode, "limit": args["limit"], "hosts": len(records)}
        report = {
            "schema": _fleet.REPORT_SCHEMA, "kind": kind, "generation": generation,
            "run_id": args["run_id"], "started": args["started"], "ended": now,
            "check_mode": check_mode, "target": args["target"], "limit": args["limit"],
            "revocation_time": args["revocation_time"] or None, "deployed": _deployed(args["deployed"]),
            "revocation": revocation_entries(args["revocation"]),
            "totals": _fleet.totals(view), "hosts": view, "history": _fleet.run_history(state, run),
        }

        if kind == "audit":
            out_dirs = [os.path.join(gen_dir, "audit")]
        else:
            out_dirs = [os.path.join(gen_dir, "runs", _safe_name(args["run_id"]))]
            if not check_mode:
                out_dirs.insert(0, gen_dir)
        try:
            for folder in out_dirs:
                _write(os.path.join(folder, "report.json"), render_json(report))
                _write(os.path.join(folder, "report.html"), render_html(report))
                _write(os.path.join(folder, "junit.xml"), render_junit(report))
            for host, text in proposals.items():
                _write(os.path.join(gen_dir, "audit", "host_vars", "%s.yml" % _safe_name(host)), text)
            if kind == "rotation" and not check_mode and args["update_state"]:
                new_state = _fleet.merge_state(state, view, run, generation, args["target"])
                _write(state_path, json.dumps(new_state, indent=2, sort_keys=True) + "\n")
        except OSError as exc:
            raise AnsibleActionFail("cannot write the report under %s: %s" % (report_dir, exc))

        paths = {"html": os.path.join(out_dirs[0], "report.html"),
                 "json": os.path.join(out_dirs[0], "report.json"),
                 "junit": os.path.join(out_dirs[0], "junit.xml")}
        if kind == "rotation" and not check_mode:
            paths["state"] = state_path
        pending = report["totals"].get("pending", 0)
        done = len([r for r in view if r.get("in_this_run") and r.get("status") != "pending"])
        summary = render_summary(report, paths=paths)
        if pending:
            summary.insert(1, _progress(args["started"], done, pending))
        failing = sorted(r["host"] for r in view if r.get("in_this_run") and r["status"] in _fleet.FAILING)
        result.update(changed=False, totals=report["totals"], paths=paths, summary=summary,
                      failing_hosts=failing,
                      needs_action=sorted(r["host"] for r in view if r["status"] in _fleet.NEEDS_ACTION))
        return result


def _deployed(deployed: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The certificate and authority deployed, as the report shows them (no PEM, no chain)."""
    return {role: {k: v for k, v in facts.items() if k in ("sha256", "subject", "not_after")}
            for role, facts in deployed.items()
            if role in ("certificate", "authority") and isinstance(facts, dict)}


def _progress(started: str, done: int, pending: int) -> str:
    line = "progress: %d hosts done in this run, %d to go" % (done, pending)
    try:
        start = datetime.datetime.strptime(started, "%Y-%m-%dT%H:%M:%SZ")
        start = start.replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return line
    elapsed = (datetime.datetime.now(datetime.timezone.utc) - start).total_seconds()
    if done and elapsed > 0:
        line += ", about %d min left" % max(1, round(elapsed / done * pending / 60))
    return line
