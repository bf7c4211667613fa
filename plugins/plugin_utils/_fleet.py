# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What each host's status is, and the fleet as it now stands (controller side).

This API is private to the sne.guichet collection; it may change without notice.

- :func:`rotation_record` and :func:`audit_record` turn what a host's tasks registered into
  one host record with a status and a reason in words (the ``sne.guichet.host_status``
  filter is a thin shim over them);
- :func:`fleet_view` puts together, for every host of the target group, this run's record,
  or else the fleet state's (the latest a previous run recorded), or else ``not reached``;
- :func:`merge_state` folds a real run's records into the fleet state (one JSON document per
  rotation, keyed by generation), which :func:`fleet_view` reads on the next run.

Statuses (:data:`STATUSES`): ``ok`` nothing to do; ``changed`` converged; ``attention`` a
retired certificate is still where the rotation may not touch it; ``failed``; ``unconfigured``
no store declared; ``not reached``; ``pending`` not yet run in this run (a later batch).
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

STATUSES = ("failed", "unconfigured", "not reached", "attention", "changed", "ok", "pending")
# A host in one of these statuses needs a person; the run fails for the first three.
NEEDS_ACTION = ("failed", "unconfigured", "not reached", "attention")
FAILING = ("failed", "unconfigured", "not reached")
PROBE_PASSING = ("passed", "skipped", "not run")
NO_STORES = "no sne_guichet_stores declared for this host"
STATE_SCHEMA = 1
REPORT_SCHEMA = 1
_LABEL = re.compile(r"SNE[ _-]?(V\d+)\b|\b(V\d+)\b", re.IGNORECASE)


def _d(value: Any) -> Dict[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _l(value: Any) -> List[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _norm(sha: Any) -> str:
    return str(sha or "").replace(":", "").strip().upper()


def generation_label(subject: str, default: str = "retired") -> str:
    """``V4`` from ``CN=Chiffrement_SNEV4,...``; ``default`` when the subject names none."""
    match = _LABEL.search(subject or "")
    return (match.group(1) or match.group(2)).upper() if match else default


def _short_list(items: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (" and %d more" % (len(items) - limit) if len(items) > limit else "")


def _entries(items: Any) -> List[Dict[str, str]]:
    return [{"name": str(e.get("name", "")), "sha256": str(e.get("sha256", "")),
             "subject": str(e.get("subject", ""))} for e in _l(items) if isinstance(e, Mapping)]


def _store_record(store: Mapping[str, Any], generation: str, current: Iterable[str]) -> Dict[str, Any]:
    added, removed = _entries(store.get("added")), _entries(store.get("removed"))
    failed = bool(store.get("failed"))
    current_set = {_norm(s) for s in current if s}
    before: List[str] = []
    for entry in removed:
        label = generation_label(entry["subject"])
        if label not in before:
            before.append(label)
    read = "held" in store or added or removed
    if read and not failed and not any(_norm(e["sha256"]) in current_set for e in added):
        before.append(generation)  # it already held what was to be deployed
    return {
        "path": str(store.get("path", "")),
        "type": str(store.get("type", "")),
        "changed": bool(store.get("changed")),
        "failed": failed,
        "skipped": bool(store.get("skipped")),
        "msg": str(store.get("msg", "")),
        "code": str(store.get("code", "")),
        "before": before,
        "after": before if failed or store.get("skipped") else [generation],
        "added": added,
        "removed": removed,
        "backup": str(store.get("backup", "") or ""),
    }


def _probe_record(probe: Mapping[str, Any]) -> Dict[str, Any]:
    if not probe or probe.get("skipped") and "status" not in probe:
        return {"status": "not run", "latency": None, "msg": ""}
    msg = str(probe.get("msg", "") or "")
    anomaly = _d(probe.get("anomaly"))
    if anomaly:
        msg = ("%s (anomaly %s %s)" % (msg, anomaly.get("code", ""), anomaly.get("label", ""))).strip()
    latency = probe.get("elapsed")
    return {"status": str(probe.get("status") or "error"),
            "latency": round(float(latency), 3) if isinstance(latency, (int, float)) else None,
            "msg": msg}


def _base(host: str, facts: Mapping[str, Any], kind: str) -> Dict[str, Any]:
    return {
        "host": host,
        "kind": kind,
        "status": "ok",
        "reason": "",
        "run_id": str(facts.get("run_id", "") or ""),
        "seen_at": str(facts.get("seen_at", "") or ""),
        "check_mode": bool(facts.get("check_mode")),
        "in_this_run": True,
        "stores": [],
        "quarantined": [],
        "needs_attention": [],
        "config_rewritten": [],
        "outbox": _outbox_record({}),
        "probe": {"status": "not run", "latency": None, "msg": ""},
        "backup_dir": "",
        "proposal": "",
    }


def _outbox_record(outbox: Mapping[str, Any]) -> Dict[str, Any]:
    """The outbound messages to the retired certificate the retire run found (its ``outbox``):
    ``retired_messages`` (how many), ``oldest``, ``moved`` (into the quarantine; would be, in a
    dry run), ``left`` (found and not moved), ``folders``, ``unreadable`` (how many files)."""
    found = [str(p) for p in _l(outbox.get("paths"))]
    moved = [str(p) for p in _l(outbox.get("moved"))]
    count = outbox.get("retired_messages")
    return {"retired_messages": count if isinstance(count, int) else len(found),
            "oldest": str(outbox.get("oldest") or ""), "moved": moved,
            "left": [p for p in found if p not in moved],
            "folders": [str(f) for f in _l(outbox.get("folders"))],
            "unreadable": len(_l(outbox.get("unreadable")))}


def _outbox_reason(outbox: Mapping[str, Any]) -> str:
    """Why a host whose outbox still holds messages to the retired certificate needs a person."""
    left = _l(outbox.get("left"))
    folders = [f for f in _l(outbox.get("folders")) if any(inside(p, f) for p in left)]
    oldest = str(outbox.get("oldest") or "")
    when = " (oldest %s)" % (oldest[:16] + "Z" if len(oldest) > 16 else oldest) if oldest else ""
    return ("%d message%s to the retired certificate in %s%s: quarantine them "
            "(retire_outbox_quarantine) or let them leave before the revocation hour"
            % (len(left), "" if len(left) == 1 else "s", _short_list(folders) or "the outbox", when))


def _failure_msg(failure: Mapping[str, Any]) -> str:
    msg = str(failure.get("msg", "") or "").strip()
    task = str(failure.get("task", "") or "").strip()
    return "%s: %s" % (task, msg) if task and msg else msg or task


def rotation_record(host: str, facts: Mapping[str, Any]) -> Dict[str, Any]:
    """One host's record after the rotation's tasks ran on it.

    ``facts``: ``stores`` (the declared stores: only their number matters), ``deploy`` (the
    keystores result the deploy role registered), ``retire`` (the retire role's report),
    ``probe`` (the async_probe result), ``failure`` (``{task, msg}`` when a task of the host
    failed), ``generation``, ``certificate_sha256``/``authority_sha256`` (what was deployed),
    ``run_id``, ``seen_at``, ``check_mode``, ``backup_dir`` (the host's backup folder root).
    """
    record = _base(host, facts, "rotation")
    generation = str(facts.get("generation", "") or "new")
    deploy, retire, probe = _d(facts.get("deploy")), _d(facts.get("retire")), _d(facts.get("probe"))
    failure = _d(facts.get("failure"))
    current = [str(facts.get("certificate_sha256", "") or "")]
    current += [str(s) for s in _l(facts.get("authority_sha256"))]

    if not _l(facts.get("stores")):
        record.update(status="unconfigured", reason=NO_STORES)
        return record
    if deploy.get("unreachable"):
        record.update(status="not reached", reason="unreachable: %s" % str(deploy.get("msg", "")).strip())
        return record

    record["stores"] = [_store_record(s, generation, current) for s in _l(deploy.get("stores"))
                        if isinstance(s, Mapping)]
    record["quarantined"] = [str(p) for p in _l(retire.get("quarantined"))]
    # Strays left in place because their place in the quarantine was taken (never written over).
    taken = [str(p) for p in _l(retire.get("quarantine_taken"))]
    record["needs_attention"] = [str(p) for p in _l(retire.get("needs_attention"))] + taken
    record["config_rewritten"] = sorted({str(p) for p in _l(retire.get("config_rewritten"))})
    record["outbox"] = _outbox_record(_d(retire.get("outbox")))
    record["probe"] = _probe_record(probe)
    changed = (bool(deploy.get("changed")) or any(s["changed"] for s in record["stores"])
               or bool(record["quarantined"]) or bool(record["config_rewritten"])
               or bool(record["outbox"]["moved"])
               or bool(_l(retire.get("stores_changed"))))
    backups = [s["backup"] for s in record["stores"] if s["backup"]]
    if (backups or record["config_rewritten"] or record["quarantined"]
            or record["outbox"]["moved"]) and facts.get("backup_dir"):
        record["backup_dir"] = "%s/%s" % (str(facts["backup_dir"]).rstrip("/"), record["run_id"])

    reasons: List[str] = [s["msg"] or "%s: %s" % (s["path"], s["code"] or "failed")
                          for s in record["stores"] if s["failed"]]
    if deploy.get("failed") and not reasons:
        reasons.append(str(deploy.get("msg", "") or "the keystores run failed"))
    probe_status = record["probe"]["status"]
    if probe_status not in PROBE_PASSING:
        reasons.append(("asynchronous check %s: %s" % (probe_status, record["probe"]["msg"])).strip(": "))
    if taken:
        reasons.append("stray copy %s not quarantined: its place in the quarantine of run %s is "
                       "taken (never written over); run again with another sne_run_id"
                       % (_short_list(taken), record["run_id"] or "?"))
    if failure and not reasons:
        reasons.append(_failure_msg(failure) or "a task failed")
    attention: List[str] = []
    if record["needs_attention"]:
        attention.append("retired certificate still in %s (not touched: needs a person)"
                         % _short_list(record["needs_attention"]))
    if record["outbox"]["left"]:  # lost silently after the revocation hour
        attention.append(_outbox_reason(record["outbox"]))
    if reasons:
        record.update(status="failed", reason="; ".join(reasons))
    elif attention:
        record.update(status="attention", reason="; ".join(attention))
    elif changed:
        record["status"] = "changed"
    return record


def audit_record(host: str, facts: Mapping[str, Any]) -> Dict[str, Any]:
    """One host's record after the audit's scan.

    ``facts``: ``stores`` (declared stores: ``path`` used), ``scan`` (the scan result),
    ``current`` and ``retired`` (fingerprints), ``failure``, ``run_id``, ``seen_at``.
    """
    record = _base(host, facts, "audit")
    scan, failure = _d(facts.get("scan")), _d(facts.get("failure"))
    stores = [str(_d(s).get("path", "")) for s in _l(facts.get("stores")) if _d(s).get("path")]
    if scan.get("unreachable"):
        record.update(status="not reached", reason="unreachable: %s" % str(scan.get("msg", "")).strip())
        return record
    if scan.get("failed") or (failure and not scan):
        reason = str(scan.get("msg", "") or _failure_msg(failure) or "scan failed")
        record.update(status="failed", reason=reason)
        return record
    current = {_norm(s) for s in _l(facts.get("current")) if s}
    retired = {_norm(s) for s in _l(facts.get("retired")) if s}
    retired_places: List[str] = []
    current_places: List[str] = []
    for sha, places in sorted(_d(scan.get("found")).items()):
        paths = [str(_d(p).get("path", "")) for p in _l(places)]
        target = (retired_places if _norm(sha) in retired
                  else current_places if _norm(sha) in current else None)
        if target is not None:
            target.extend(p for p in paths if p and p not in target)
    retired_places.sort()
    current_places.sort()
    without = stores_without(stores, current_places)
    record["audit"] = {"retired_places": retired_places, "current_places": current_places,
                       "stores_without_current": without,
                       "unreadable": [_d(u) for u in _l(scan.get("unreadable"))]}
    if not stores:
        record.update(status="unconfigured", reason=NO_STORES)
        return record
    record["needs_attention"] = retired_places
    reasons = []
    if retired_places:
        reasons.append("retired certificate in %s" % _short_list(retired_places))
    if without:
        reasons.append("current generation missing in %s" % _short_list(without))
    if reasons:
        record.update(status="attention", reason="; ".join(reasons))
    return record


def inside(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or below it."""
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root.rstrip("/") + "/")


def stores_without(store_paths: Sequence[str], places: Sequence[str]) -> List[str]:
    """The stores (files or folders) in which none of ``places`` is."""
    return [store for store in store_paths or [] if not any(inside(p, store) for p in places or [])]


def never_seen(host: str, kind: str, generation: str) -> Dict[str, Any]:
    record = _base(host, {}, kind)
    verb = "audited" if kind == "audit" else "rotated to %s" % generation
    record.update(status="not reached", reason="not %s by any run yet" % verb, in_this_run=False)
    return record


def unreached_in_run(host: str, kind: str, run_id: str, seen_at: str) -> Dict[str, Any]:
    record = _base(host, {"run_id": run_id, "seen_at": seen_at}, kind)
    record.update(status="not reached",
                  reason="unreachable, or failed before its result was recorded (see the run's log)")
    return record


def fleet_view(scope: Sequence[str], in_run: Sequence[str], active: Sequence[str],
               records: Mapping[str, Mapping[str, Any]], state: Optional[Mapping[str, Any]],
               kind: str, generation: str, run_id: str, now: str) -> List[Dict[str, Any]]:
    """Every host of ``scope`` (the target group, whatever ``--limit``), sorted by name.

    ``in_run``: the hosts this run targets (the play's hosts after ``--limit``); ``active``:
    those still in the play (not unreachable, not failed); ``records``: the records this run
    made so far; ``state``: the fleet state before this run.
    """
    previous = _d(_d(state).get("hosts"))
    run_hosts, active_hosts = set(in_run), set(active)
    view: List[Dict[str, Any]] = []
    for host in sorted(set(scope)):
        if host in records:
            record = dict(records[host])
            record["in_this_run"] = True
        elif host in run_hosts:
            if host in active_hosts:
                record = _base(host, {"run_id": run_id}, kind)
                record.update(status="pending", reason="not yet run (a later batch)")
            else:
                record = unreached_in_run(host, kind, run_id, now)
        elif host in previous:
            record = dict(previous[host])
            record["in_this_run"] = False
        else:
            record = never_seen(host, kind, generation)
        view.append(record)
    return view


def totals(hosts: Iterable[Mapping[str, Any]]) -> Dict[str, int]:
    counts = {status: 0 for status in STATUSES}
    for record in hosts:
        status = str(record.get("status", ""))
        counts[status] = counts.get(status, 0) + 1
    return counts


def run_history(state: Optional[Mapping[str, Any]], run: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The state's runs (the last 50) with ``run`` last, in place of an earlier run of its id."""
    history = [dict(r) for r in _l(_d(state).get("runs")) if _d(r).get("run_id") != run.get("run_id")]
    history.append(dict(run))
    return history[-50:]


def merge_state(state: Optional[Mapping[str, Any]], view: Sequence[Mapping[str, Any]],
                run: Mapping[str, Any], generation: str, target: str) -> Dict[str, Any]:
    """The fleet state after a real run: the hosts this run saw take their new record.

    Hosts the run did not touch keep theirs; ``pending`` hosts (a run stopped before their
    batch) keep theirs too. ``run`` (run_id, started, ended, limit, check_mode) is appended to
    the state's history (the last 50 runs).
    """
    old = _d(state)
    hosts = {k: dict(v) for k, v in _d(old.get("hosts")).items()}
    for record in view:
        if record.get("in_this_run") and record.get("status") != "pending":
            clean = dict(record)
            clean.pop("in_this_run", None)
            hosts[str(record["host"])] = clean
    return {"schema": STATE_SCHEMA, "generation": generation, "target": target,
            "updated": run.get("ended", ""), "runs": run_history(old, run),
            "hosts": dict(sorted(hosts.items()))}
