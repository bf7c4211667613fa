# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Render the fleet report (a plain dict, see docs/report.md) as HTML, JUnit XML, JSON and text.

This API is private to the sne.guichet collection; it may change without notice.
Controller-side code: Python standard library only.

Every value of the report may come from the field (host names, paths, reasons, messages):
everything is escaped (``html.escape`` for HTML, ``xml.etree.ElementTree`` for JUnit) and
characters that XML 1.0 cannot carry are replaced. Missing keys are tolerated: a partial
report renders what it has rather than failing at the end of a run.

The HTML page is one self-contained file: inline CSS, a small inline script that only adds a
status filter and column sort (the page is complete without it), no external resource.
"""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping
from urllib.parse import quote

__all__ = [
    "ACTION_STATUSES",
    "STATUS_ORDER",
    "render_html",
    "render_json",
    "render_junit",
    "render_summary",
]

# Display order everywhere: what needs a person first.
STATUS_ORDER = ("failed", "unconfigured", "not reached", "attention", "pending", "changed", "ok")
ACTION_STATUSES = ("failed", "unconfigured", "not reached", "attention")
# A status this renderer does not know is shown as is, and treated as needing action.
_UNKNOWN_RANK = len(ACTION_STATUSES)

STATUS_HELP = {
    "failed": "The run failed on this host; the reason says why. Fix it, then run again on this host.",
    "unconfigured": "No store is declared for this host. Declare its stores in host_vars "
    "(start from the proposal when there is one), then run again on it.",
    "not reached": "The host was unreachable or was not run. Check that it is up and reachable "
    "over SSH, then run again on it.",
    "attention": "A retired certificate is still in a place the rotation does not touch. "
    "A person must remove or replace it there.",
    "pending": "Not run yet: a later batch of this run.",
    "changed": "Done: the stores were updated by the run that last saw this host.",
    "ok": "Nothing to do: every store already held the right certificates.",
}
_DRY_HELP = {
    "changed": "Would change: the dry run found stores to update. Nothing was written.",
}
# Hosts of these statuses can simply be run again once fixed.
_RERUN_STATUSES = ("failed", "unconfigured", "not reached")

SUMMARY_MAX_HOSTS = 40
_EARLIER = "This host was not in this run: its status comes from the earlier run named here."
_REASON_MAX = 200

# Characters XML 1.0 cannot hold (even escaped); also stripped from HTML.
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_SCHEME = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.\-]*:")


# ---------------------------------------------------------------- small helpers


def _clean(value: Any) -> str:
    """``value`` as text, without the characters XML cannot carry (shown as ``\\xNN``)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return _BAD_XML.sub(lambda m: "\\x%02x" % ord(m.group()) if ord(m.group()) < 0x100 else "\ufffd", text)


def _e(value: Any) -> str:
    """HTML-escaped text (quotes too: safe in attributes)."""
    return html.escape(_clean(value), quote=True)


def _one_line(value: Any, limit: int = 0) -> str:
    text = " ".join(_clean(value).split())
    if limit and len(text) > limit:
        text = text[: limit - 1].rstrip() + "\u2026"
    return text


def _list(value: Any) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _dict(value: Any) -> dict:
    return value if isinstance(value, Mapping) else {}


def _parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time (``Z`` accepted) as an aware UTC datetime; naive means UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value.strip():
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    return now.replace(tzinfo=timezone.utc) if now.tzinfo is None else now.astimezone(timezone.utc)


def _fmt_time(value: Any, with_date: bool = True) -> str:
    moment = _parse_time(value)
    if moment is None:
        return _clean(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if with_date else "%H:%M:%S UTC")


def _span(seconds: float) -> str:
    """A duration in words, rounded down to the minute: ``2 h 14 min``, ``38 min``, ``1 d 3 h``."""
    minutes = int(max(seconds, 0) // 60)
    if minutes < 1:
        return "less than 1 min"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = []
    if days:
        parts.append("%d d" % days)
    if hours:
        parts.append("%d h" % hours)
    if mins and not days:
        parts.append("%d min" % mins)
    return " ".join(parts) or "%d d" % days


def _duration(start: Any, end: Any) -> str:
    first, last = _parse_time(start), _parse_time(end)
    if first is None or last is None or last < first:
        return ""
    seconds = int((last - first).total_seconds())
    if seconds < 60:
        return "%d s" % seconds
    return "%s %d s" % (_span(seconds), seconds % 60) if seconds < 3600 else _span(seconds)


def _revocation(report: Mapping, now: datetime | None) -> tuple[str, str] | None:
    """``(state, words)`` about the revocation hour, ``None`` when no hour is set.

    state is ``before``, ``soon`` (less than an hour left), ``after`` or ``unknown``.
    """
    raw = report.get("revocation_time")
    if raw in (None, ""):
        return None
    when = _parse_time(raw)
    if when is None:
        return "unknown", "revocation at %s" % _one_line(raw)
    moment = _now(now)
    hour = when.strftime("%H:%M UTC") if when.date() == moment.date() else when.strftime("%Y-%m-%d %H:%M UTC")
    left = (when - moment).total_seconds()
    if left > 0:
        return ("soon" if left < 3600 else "before"), "%s before revocation at %s" % (_span(left), hour)
    return "after", "revoked since %s (%s ago)" % (hour, _span(-left))


def _status(host: Mapping) -> str:
    return _one_line(host.get("status")) or "unknown"


def _rank(status: str) -> int:
    if status in STATUS_ORDER:
        return STATUS_ORDER.index(status)
    return _UNKNOWN_RANK  # unknown: with the ones needing action, after them


def _needs_action(status: str) -> bool:
    return status in ACTION_STATUSES or status not in STATUS_ORDER


def _hosts(report: Mapping) -> list[dict]:
    return [h for h in _list(report.get("hosts")) if isinstance(h, Mapping)]


def _totals(report: Mapping) -> dict[str, int]:
    """Count per status: the report's ``totals`` where given, else counted from ``hosts``."""
    counted: dict[str, int] = {}
    for host in _hosts(report):
        counted[_status(host)] = counted.get(_status(host), 0) + 1
    given = _dict(report.get("totals"))
    totals: dict[str, int] = {}
    for status in list(STATUS_ORDER) + sorted(set(counted) | set(given), key=str):
        if status in totals:
            continue
        value = given.get(status, counted.get(status, 0))
        try:
            totals[status] = int(value)
        except (TypeError, ValueError):
            totals[status] = counted.get(status, 0)
    return totals


def _action_hosts(report: Mapping) -> list[dict]:
    hosts = [h for h in _hosts(report) if _needs_action(_status(h))]
    return sorted(hosts, key=lambda h: (_rank(_status(h)), _one_line(h.get("host"))))


def _reason(host: Mapping, with_proposal: bool = True) -> str:
    """The host's reason in words; built from what is known when the report gave none.

    An unconfigured host's reason names its proposal (``with_proposal``; the HTML links it
    beside the reason instead).
    """
    reason = _one_line(host.get("reason"))
    status = _status(host)
    if not reason:
        if status == "attention" and _list(host.get("needs_attention")):
            places = [_one_line(p) for p in _list(host.get("needs_attention"))]
            reason = "retired certificate still in " + ", ".join(places)
        elif status == "failed":
            msgs = [_store_msg(s) for s in _stores(host) if s.get("failed") and _store_msg(s)]
            reason = "; ".join(msgs)
        elif status == "not reached":
            reason = "unreachable or not run"
        elif status == "unconfigured":
            reason = "no store declared for this host"
        elif status == "pending":
            reason = "not run yet (later batch)"
    proposal = _one_line(host.get("proposal"))
    if with_proposal and status == "unconfigured" and proposal and proposal not in reason:
        reason = (reason + "; " if reason else "") + "proposal: " + proposal
    return reason


def _stores(host: Mapping) -> list[dict]:
    return [s for s in _list(host.get("stores")) if isinstance(s, Mapping)]


def _store_msg(store: Mapping) -> str:
    """A store's message; its code when it has no message but failed."""
    msg = _one_line(store.get("msg"))
    if not msg and store.get("failed") and store.get("code"):
        msg = _one_line(store.get("code"))
    return msg


def _norm_fp(value: Any) -> str:
    return re.sub(r"[^0-9A-F]", "", _clean(value).upper())


def _short_fp(value: Any) -> str:
    text = _one_line(value)
    return text if len(text) <= 20 else text[:11] + "\u2026" + text[-5:]


def _generations(value: Any) -> str:
    items = [_one_line(v) for v in _list(value)]
    return ", ".join(i for i in items if i) or "none"


def _safe_href(path: Any) -> str | None:
    """A relative link to ``path``, or ``None`` when it is not a plain relative path."""
    text = _clean(path).strip()
    if not text or _SCHEME.match(text) or text.startswith(("/", "\\")) or any(c < " " for c in text):
        return None
    return quote(text, safe="/._-~")


# ---------------------------------------------------------------- JSON


def render_json(report: Mapping) -> str:
    """The report as stable JSON: sorted keys, indent 2, UTF-8 text, trailing newline."""
    return json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False, default=str) + "\n"


# ---------------------------------------------------------------- text summary


def render_summary(
    report: Mapping,
    now: datetime | None = None,
    paths: Mapping[str, str] | None = None,
    max_hosts: int = SUMMARY_MAX_HOSTS,
) -> list[str]:
    """The short summary printed at the end of a run, one string per line.

    Header (kind, generation, run id, DRY RUN, time to revocation), totals, then only the
    hosts needing action, one line each (at most ``max_hosts``), then the report files
    (``paths``: label -> path, for example ``{"html": "reports/report.html"}``).
    """
    head = ["sne.guichet", _one_line(report.get("kind")) or "report", _one_line(report.get("generation"))]
    header = " ".join(p for p in head if p)
    if report.get("run_id"):
        header += " - run " + _one_line(report.get("run_id"))
    if report.get("check_mode"):
        header += " - DRY RUN (nothing written)"
    revocation = _revocation(report, now)
    if revocation:
        header += " - " + revocation[1]
    totals = _totals(report)
    total = len(_hosts(report))
    line = "%d hosts: " % total + ", ".join("%d %s" % (n, s) for s, n in totals.items())
    lines = [header, line]
    action = _action_hosts(report)
    if action:
        lines.append("Needs action (%d):" % len(action))
        for host in action[:max_hosts]:
            text = "  %s: %s" % (_one_line(host.get("host")) or "?", _status(host))
            reason = _one_line(_reason(host), _REASON_MAX)
            lines.append(text + (" - " + reason if reason else ""))
        if len(action) > max_hosts:
            where = _one_line(_dict(paths).get("html")) or "report.html"
            lines.append("  ... and %d more, see %s" % (len(action) - max_hosts, where))
    elif totals.get("pending"):
        lines.append("No host needs action so far; %d not run yet." % totals["pending"])
    else:
        lines.append("No host needs action.")
    if paths:
        shown = ", ".join("%s %s" % (_one_line(k), _one_line(v)) for k, v in paths.items())
        lines.append("Reports: " + shown)
    return lines


# ---------------------------------------------------------------- JUnit


def _details(host: Mapping, report: Mapping) -> str:
    """Plain-text details of one host (JUnit failure body and system-out)."""
    lines = ["status: " + _status(host)]
    reason = _reason(host)
    if reason:
        lines.append("reason: " + reason)
    dry = bool(report.get("check_mode"))
    for store in _stores(host):
        state = "failed" if store.get("failed") else ("would change" if dry else "changed")
        if not store.get("failed") and not store.get("changed"):
            state = "skipped" if store.get("skipped") else "unchanged"
        text = "store %s (%s): %s, %s -> %s" % (
            _one_line(store.get("path")),
            _one_line(store.get("type")) or "?",
            state,
            _generations(store.get("before")),
            _generations(store.get("after")),
        )
        if _store_msg(store):
            text += " - " + _store_msg(store)
        lines.append(text)
        for entry in _list(store.get("added")):
            entry = _dict(entry)
            lines.append("  + %s %s" % (_one_line(entry.get("name")), _one_line(entry.get("sha256"))))
        for entry in _list(store.get("removed")):
            entry = _dict(entry)
            lines.append("  - %s %s" % (_one_line(entry.get("name")), _one_line(entry.get("sha256"))))
    for key, label in (
        ("quarantined", "quarantined"),
        ("needs_attention", "needs a person"),
        ("config_rewritten", "configuration rewritten"),
    ):
        for path in _list(host.get(key)):
            lines.append("%s: %s" % (label, _one_line(path)))
    audit = _dict(host.get("audit"))
    for key, label in (
        ("retired_places", "retired certificate in"),
        ("current_places", "current certificate in"),
        ("stores_without_current", "store without the current certificate"),
    ):
        for path in _list(audit.get(key)):
            lines.append("%s: %s" % (label, _one_line(path)))
    for item in _unreadable(audit):
        lines.append("could not be read: " + item)
    probe = _dict(host.get("probe"))
    if probe and _one_line(probe.get("status")) not in ("", "not run", "skipped"):
        text = "asynchronous check: " + _one_line(probe.get("status"))
        if isinstance(probe.get("latency"), (int, float)):
            text += " in %.1f s" % probe["latency"]
        if probe.get("msg"):
            text += " - " + _one_line(probe.get("msg"))
        lines.append(text)
    if host.get("backup_dir"):
        lines.append("backups: " + _one_line(host.get("backup_dir")))
    if host.get("proposal"):
        lines.append("proposal: " + _one_line(host.get("proposal")))
    seen = "last seen: "
    if host.get("seen_at") or host.get("run_id"):
        seen += "%s in run %s" % (_fmt_time(host.get("seen_at")) or "?", _one_line(host.get("run_id")) or "?")
        if host.get("in_this_run") is False:
            seen += " (an earlier run)"
    else:
        seen += "never"
    lines.append(seen)
    return "\n".join(lines)


def _junit_time(value: Any) -> str:
    moment = _parse_time(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") if moment else ""


def render_junit(report: Mapping) -> str:
    """The report as JUnit XML: one test suite, one test case per host.

    failed, unconfigured, not reached, attention (and any unknown status) -> ``<failure>``:
    each needs a person. pending -> ``<skipped>``. ok and changed -> pass, with a summary in
    ``<system-out>``. Times are UTC.
    """
    kind = _one_line(report.get("kind")) or "report"
    generation = _one_line(report.get("generation")) or "unknown"
    hosts = _hosts(report)
    failures = sum(1 for h in hosts if _needs_action(_status(h)))
    skipped = sum(1 for h in hosts if _status(h) == "pending")
    counts = {"tests": str(len(hosts)), "failures": str(failures), "errors": "0", "skipped": str(skipped)}

    root = ET.Element("testsuites", dict(name="sne.guichet", **counts))
    suite = ET.SubElement(root, "testsuite", dict(name="sne.guichet %s %s" % (kind, generation), **counts))
    if _junit_time(report.get("started")):
        suite.set("timestamp", _junit_time(report.get("started")))
    first, last = _parse_time(report.get("started")), _parse_time(report.get("ended"))
    if first and last and last >= first:
        suite.set("time", "%.3f" % (last - first).total_seconds())
        root.set("time", suite.get("time", "0"))
    props = ET.SubElement(suite, "properties")
    for key in ("run_id", "check_mode", "kind", "generation", "target", "limit", "started", "ended",
                "revocation_time"):
        value = report.get(key)
        if isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = "" if value is None else _one_line(value)
        ET.SubElement(props, "property", name=key, value=text)
    classname = "sne.guichet.%s.%s" % (kind, generation)
    for host in hosts:
        status = _status(host)
        case = ET.SubElement(suite, "testcase", classname=classname, name=_one_line(host.get("host")) or "?")
        details = _clean(_details(host, report))
        if _needs_action(status):
            reason = _reason(host)
            message = _one_line(status + (": " + reason if reason else ""))
            failure = ET.SubElement(case, "failure", message=message, type=status)
            failure.text = details
        elif status == "pending":
            ET.SubElement(case, "skipped", message="pending: " + (_reason(host) or "not run yet"))
        else:
            ET.SubElement(case, "system-out").text = details
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ---------------------------------------------------------------- HTML

_CSS = """
:root{--fg:#1d2329;--muted:#5b6670;--line:#d5dade;--bg:#fff;--soft:#f3f5f7;
--failed:#b71c1c;--unconfigured:#6a1b9a;--not-reached:#37474f;--attention:#c25e00;
--pending:#78909c;--changed:#1565c0;--ok:#2e7d32;--unknown:#000}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;padding:1.25rem 1.5rem 2rem;color:var(--fg);background:var(--bg);
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans","Liberation Sans",Arial,sans-serif}
h1{font-size:1.6rem;margin:0 0 .25rem;line-height:1.2}
h1 .run{font-weight:400;color:var(--muted);font-size:1.05rem;white-space:nowrap}
h2{font-size:1.25rem;margin:1.75rem 0 .6rem;padding-bottom:.25rem;border-bottom:2px solid var(--line)}
h3{font-size:1.05rem;margin:1.1rem 0 .3rem}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono","Liberation Mono",Menlo,Consolas,monospace;
font-size:.86em}
a{color:#0b57a4}
.dryrun{margin:0 0 1rem;padding:.8rem 1rem;border:4px solid #111;font-weight:800;font-size:1.5rem;
letter-spacing:.02em;color:#111;background:repeating-linear-gradient(-45deg,#ffd54f 0 18px,#ffe082 18px 36px)}
.dryrun small{display:block;font-size:.95rem;font-weight:600;letter-spacing:0}
.verdict{font-size:1.15rem;font-weight:700;margin:.4rem 0 .8rem}
.verdict.bad{color:var(--failed)}.verdict.good{color:var(--ok)}.verdict.wait{color:var(--muted)}
.revocation{display:inline-block;margin:.2rem 0 .9rem;padding:.45rem .8rem;border-radius:6px;font-weight:700;
font-size:1.1rem;border:2px solid}
.revocation[data-state=before]{color:#7a4b00;background:#fff6e0;border-color:#e0a100}
.revocation[data-state=soon]{color:#fff;background:#c62828;border-color:#8e0000}
.revocation[data-state=after]{color:#fff;background:#4a0d0d;border-color:#000}
.revocation[data-state=unknown]{color:var(--fg);background:var(--soft);border-color:var(--line)}
.revocation small{font-weight:400;font-size:.85rem}
.totals{display:flex;flex-wrap:wrap;gap:.6rem;margin:.3rem 0 1rem}
.total{flex:1 1 8.5rem;max-width:13rem;min-width:7.5rem;padding:.55rem .8rem .6rem;border-radius:8px;
color:#fff;background:var(--c);border:2px solid var(--c);font-weight:600;font-size:1rem;line-height:1.15}
.total .n{display:block;font-size:2.6rem;font-weight:800;line-height:1.05;font-variant-numeric:tabular-nums}
.total.zero{background:var(--soft);color:var(--muted);border-color:var(--line);border-left:8px solid var(--c)}
.total.all{background:#fff;color:var(--fg);border-color:var(--fg)}
.total[data-status=pending]:not(.zero){color:#102027}
html[data-js=ready] .total[data-status]{cursor:pointer}
[data-status=failed]{--c:var(--failed)}[data-status=unconfigured]{--c:var(--unconfigured)}
[data-status="not reached"]{--c:var(--not-reached)}[data-status=attention]{--c:var(--attention)}
[data-status=pending]{--c:var(--pending)}[data-status=changed]{--c:var(--changed)}[data-status=ok]{--c:var(--ok)}
.facts{display:flex;flex-wrap:wrap;gap:.5rem 2.5rem;align-items:flex-start;padding:.6rem .8rem;
background:var(--soft);border:1px solid var(--line);border-radius:8px}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:0;flex:0 1 27rem}
.meta dt{color:var(--muted)}.meta dd{margin:0;overflow-wrap:anywhere}
.deployed{border-collapse:collapse;margin:0;flex:1 1 36rem}
.deployed caption{text-align:left;font-weight:700;padding:0 .6rem .2rem}
.deployed th,.deployed td{text-align:left;vertical-align:top;padding:.3rem .6rem;
border-bottom:1px solid var(--line)}
.deployed th{white-space:nowrap;color:var(--muted);font-weight:600}
.fpfull{overflow-wrap:normal;font-weight:600}
.badge{display:inline-block;padding:.05rem .4rem;border-radius:999px;font-size:.82rem;font-weight:700;
color:#fff;background:var(--c,#000);white-space:nowrap}
.badge[data-status=pending]{color:#102027}
.group{border-left:6px solid var(--c,#000);padding:.1rem 0 .4rem .9rem;margin:0 0 1rem}
.group h3{margin-top:.3rem}.group .help{margin:.1rem 0 .4rem;color:var(--muted)}
.rerun{margin:.3rem 0 .5rem;font-size:.9rem}
.rerun code{display:block;padding:.3rem .5rem;background:var(--soft);border:1px solid var(--line);
border-radius:4px;overflow-wrap:anywhere;user-select:all}
table.list,table.hosts{border-collapse:collapse;width:100%}
table.list th,table.list td,table.hosts th,table.hosts td{text-align:left;vertical-align:top;
padding:.35rem .5rem;border-bottom:1px solid var(--line);overflow-wrap:anywhere}
table.list th,table.hosts th{background:var(--soft);font-size:.85rem;color:#37424b;position:sticky;top:0;
z-index:1}
table.hosts{table-layout:fixed;font-size:.9rem}
table.hosts tbody tr{border-left:5px solid var(--c,#000)}
table.hosts tbody tr:nth-child(even){background:#fafbfc}
td.host{font-weight:700}
.reason{font-weight:600}
.none{color:#98a2ab}
.store{margin:0 0 .35rem;padding:0 0 .3rem;border-bottom:1px dashed var(--line)}
.store:last-child{border-bottom:0;margin-bottom:0;padding-bottom:0}
.store .path{font-weight:600}
.store .gen{white-space:nowrap}
.store.failed .gen,.store .msg{color:var(--failed)}
.store .msg{font-weight:600}
.tag{display:inline-block;padding:0 .35rem;border-radius:4px;font-size:.76rem;border:1px solid currentColor;
white-space:nowrap;margin-left:.25rem}
.tag.changed{color:var(--changed)}.tag.failed{color:var(--failed)}.tag.same{color:var(--muted)}
.tag.earlier{color:var(--attention)}
.fp{white-space:nowrap}
.entry .match{color:var(--ok);font-weight:700}.entry.out{color:var(--muted)}
.runid{font-size:.85rem;overflow-wrap:anywhere}
.badge{max-width:100%;overflow:hidden;text-overflow:ellipsis}
.fp{border-bottom:1px dotted var(--muted);cursor:help}
ul.paths{margin:.1rem 0 .3rem;padding-left:1.1rem}
.label{color:var(--muted);font-size:.8rem;font-weight:600}
.bad-label{color:var(--failed)}
#controls{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;margin:0 0 .5rem}
#controls select,#controls input{font:inherit;padding:.25rem .4rem}
th button.sort{all:unset;cursor:pointer;display:block;width:100%}
th button.sort::after{content:" \\2195";color:#9aa4ad}
th[aria-sort=ascending] button.sort::after{content:" \\25B2";color:var(--fg)}
th[aria-sort=descending] button.sort::after{content:" \\25BC";color:var(--fg)}
[hidden]{display:none!important}
footer{margin-top:2rem;color:var(--muted);font-size:.85rem}
@media (max-width:820px){
body{padding:.75rem}
.total{flex-basis:6.5rem;min-width:6rem}.total .n{font-size:2rem}
.total{font-size:.85rem}
table.hosts,table.list,table.hosts tbody,table.list tbody,table.hosts tr,table.list tr,table.hosts td,
table.list td{display:block;width:auto!important}
table.hosts thead,table.list thead,table.hosts colgroup{display:none}
table.hosts tbody tr{margin:0 0 .8rem;border:1px solid var(--line);border-left:6px solid var(--c,#000)}
table.list tbody tr{margin:0 0 .5rem;border:1px solid var(--line)}
table.hosts td,table.list td{border-bottom:1px solid #eef0f2}
td[data-label]::before{content:attr(data-label);display:block;font-size:.75rem;color:var(--muted);
font-weight:600}
.deployed,.deployed tbody,.deployed tr,.deployed th,.deployed td{display:block;flex-basis:auto;width:100%}
table.list td:empty,table.hosts td.empty{display:none}
.meta{grid-template-columns:1fr}.meta dt{margin-top:.3rem}
}
@media print{
@page{margin:12mm}
html{font-size:10.5px}body{padding:0;font-size:1rem}
#controls,script,th button.sort::after{display:none!important}
table.hosts{font-size:.85rem}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
.dryrun{background:#ffe082}
table.list th,table.hosts th{position:static}
tr,.group,.total{break-inside:avoid}
h2{break-after:avoid}
a{color:inherit;text-decoration:none}
}
"""

_JS = """
(function () {
  var table = document.getElementById("hosts-table");
  if (!table || !table.tBodies.length) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var select = document.getElementById("status-filter");
  var search = document.getElementById("host-filter");
  var shown = document.getElementById("shown-count");
  function apply() {
    var want = select.value, text = search.value.trim().toLowerCase(), n = 0;
    rows.forEach(function (row) {
      var status = row.getAttribute("data-status");
      var keep = want === "all" ||
        (want === "action" ? row.getAttribute("data-action") === "1" : status === want);
      if (keep && text) { keep = row.textContent.toLowerCase().indexOf(text) >= 0; }
      row.hidden = !keep;
      if (keep) { n += 1; }
    });
    shown.textContent = n + " of " + rows.length + " hosts shown";
    try {
      history.replaceState(null, "", want === "all" ? location.pathname + location.search
        : "#status=" + encodeURIComponent(want));
    } catch (e) { /* file:// in some browsers */ }
  }
  var asked = /^#status=(.+)$/.exec(location.hash);
  if (asked) {
    var value = decodeURIComponent(asked[1]);
    Array.prototype.forEach.call(select.options, function (o) {
      if (o.value === value) { select.value = value; }
    });
  }
  select.addEventListener("change", apply);
  search.addEventListener("input", apply);
  Array.prototype.forEach.call(document.querySelectorAll(".total[data-status]"), function (tile) {
    tile.setAttribute("role", "button");
    tile.tabIndex = 0;
    function pick() {
      var status = tile.getAttribute("data-status");
      select.value = select.value === status ? "all" : status;
      apply();
      table.scrollIntoView();
    }
    tile.addEventListener("click", pick);
    tile.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); pick(); }
    });
  });
  function key(row, i) {
    var cell = row.cells[i];
    if (!cell) { return ""; }
    var k = cell.getAttribute("data-sort");
    return k !== null ? k : cell.textContent.trim().toLowerCase();
  }
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, i) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "sort";
    while (th.firstChild) { button.appendChild(th.firstChild); }
    th.appendChild(button);
    button.addEventListener("click", function () {
      var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      Array.prototype.forEach.call(heads, function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
      rows.sort(function (a, b) {
        var x = key(a, i), y = key(b, i);
        if (x !== y) { return (x < y ? -1 : 1) * dir; }
        return Number(a.getAttribute("data-index")) - Number(b.getAttribute("data-index"));
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
  document.getElementById("controls").hidden = false;
  apply();
  document.documentElement.setAttribute("data-js", "ready");
})();
"""


def _breakable(text: Any) -> str:
    """Escaped text that a narrow column may break after each ``/`` (paths in reasons)."""
    return _e(text).replace("/", "/<wbr>")


def _path_html(path: Any) -> str:
    """An escaped path in monospace, breakable after each ``/``."""
    return '<span class="mono">%s</span>' % _breakable(path)


def _paths_html(paths: Iterable[Any], label: str, css: str = "") -> str:
    items = [p for p in paths if _one_line(p)]
    if not items:
        return ""
    cls = "label" + (" " + css if css else "")
    out = ['<div class="%s">%s (%d)</div><ul class="paths">' % (cls, _e(label), len(items))]
    out += ["<li>%s</li>" % _path_html(p) for p in items]
    out.append("</ul>")
    return "".join(out)


def _fp_html(value: Any) -> str:
    text = _one_line(value)
    if not text:
        return ""
    return '<span class="fp mono" title="%s">%s</span>' % (_e(text), _e(_short_fp(text)))


def _badge(status: str) -> str:
    return '<span class="badge" data-status="%s">%s</span>' % (_e(status), _e(status))


def _known_fps(report: Mapping) -> dict[str, str]:
    """Normalised SHA-256 -> what it is, for the deployed certificate and authority."""
    deployed = _dict(report.get("deployed"))
    generation = _one_line(report.get("generation"))
    known = {}
    for key in ("certificate", "authority"):
        label = "%s %s" % (key, generation)
        fp = _norm_fp(_dict(deployed.get(key)).get("sha256"))
        if fp:
            known[fp] = label.strip()
    return known


def _stores_html(host: Mapping, report: Mapping) -> str:
    known = _known_fps(report)
    dry = bool(report.get("check_mode"))
    out = []
    for store in _stores(host):
        failed = bool(store.get("failed"))
        changed = bool(store.get("changed"))
        if failed:
            tag = '<span class="tag failed">failed</span>'
        elif store.get("skipped"):
            tag = '<span class="tag same">skipped</span>'
        elif changed:
            tag = '<span class="tag changed">%s</span>' % ("would change" if dry else "changed")
        else:
            tag = '<span class="tag same">unchanged</span>'
        kind = _one_line(store.get("type"))
        parts = [
            '<div class="store%s">' % (" failed" if failed else (" changed" if changed else "")),
            '<div class="path">%s%s</div>' % (_path_html(store.get("path")),
                                              ' <span class="label">%s</span>' % _e(kind) if kind else ""),
            '<div class="gen">%s \u2192 %s%s</div>'
            % (_e(_generations(store.get("before"))), _e(_generations(store.get("after"))), tag),
        ]
        if _store_msg(store):
            parts.append('<div class="msg">%s</div>' % _e(_store_msg(store)))
        for sign, key in (("+", "added"), ("\u2212", "removed")):
            for entry in _list(store.get(key)):
                entry = _dict(entry)
                match = known.get(_norm_fp(entry.get("sha256"))) if sign == "+" else None
                name = _one_line(entry.get("name")) or "(no name)"
                title = "; ".join(t for t in (("alias " + name), _one_line(entry.get("subject"))) if t)
                parts.append(
                    '<div class="entry %s" title="%s">%s %s %s</div>'
                    % (
                        "in" if sign == "+" else "out",
                        _e(title),
                        sign,
                        '<span class="match">%s</span>' % _e(match) if match else _e(name),
                        _fp_html(entry.get("sha256")),
                    )
                )
        backup = _one_line(store.get("backup"))
        host_backups = _one_line(host.get("backup_dir")).rstrip("/")
        if backup and not (host_backups and backup.startswith(host_backups + "/")):
            parts.append('<div><span class="label">backup</span> %s</div>' % _path_html(backup))
        parts.append("</div>")
        out.append("".join(parts))
    return "".join(out)


def _cleanup_html(host: Mapping) -> str:
    return "".join(
        [
            _paths_html(_list(host.get("needs_attention")), "needs a person", "bad-label"),
            _paths_html(_list(host.get("quarantined")), "quarantined"),
            _paths_html(_list(host.get("config_rewritten")), "configuration rewritten"),
        ]
    )


def _retired_extra(host: Mapping) -> list:
    """Audit places of the retired certificate not already listed in ``needs_attention``."""
    listed = {_one_line(p) for p in _list(host.get("needs_attention"))}
    return [p for p in _list(_dict(host.get("audit")).get("retired_places")) if _one_line(p) not in listed]


def _unreadable(audit: Mapping) -> list[str]:
    out = []
    for item in _list(audit.get("unreadable")):
        if isinstance(item, Mapping):
            text = _one_line(item.get("path"))
            why = _one_line(item.get("msg") or item.get("reason") or item.get("error"))
            out.append(text + (" (%s)" % why if why else ""))
        else:
            out.append(_one_line(item))
    return [o for o in out if o]


def _audit_html(host: Mapping) -> str:
    audit = _dict(host.get("audit"))
    without = _list(audit.get("stores_without_current"))
    return "".join(
        [
            _paths_html(_retired_extra(host), "retired certificate in", "bad-label"),
            _paths_html(without, "stores without the current", "bad-label"),
            _paths_html(_unreadable(audit), "could not be read"),
            _paths_html(_list(audit.get("current_places")), "current certificate in"),
        ]
    )


def _probe_html(host: Mapping) -> str:
    probe = _dict(host.get("probe"))
    status = _one_line(probe.get("status"))
    if not status or status in ("not run", "skipped"):
        return ""
    colours = {"passed": "ok", "rejected": "failed", "timeout": "failed", "error": "failed"}
    colour = colours.get(status, "pending")
    out = '<span class="badge" data-status="%s">%s</span>' % (colour, _e(status))
    latency = probe.get("latency")
    if isinstance(latency, (int, float)) and not isinstance(latency, bool):
        out += " %.1f s" % latency
    if probe.get("msg"):
        out += '<div class="msg">%s</div>' % _e(_one_line(probe.get("msg")))
    return out


def _files_html(host: Mapping) -> str:
    out = []
    if host.get("proposal"):
        href = _safe_href(host.get("proposal"))
        text = _path_html(host.get("proposal"))
        link = '<a href="%s">%s</a>' % (_e(href), text) if href else text
        out.append('<div><span class="label">proposal</span><br>%s</div>' % link)
    if host.get("backup_dir"):
        out.append('<div><span class="label">backups</span><br>%s</div>' % _path_html(host.get("backup_dir")))
    return "".join(out)


def _seen_html(host: Mapping) -> tuple[str, str]:
    seen, run = host.get("seen_at"), _one_line(host.get("run_id"))
    if not seen and not run:
        return '<span class="none">never</span>', ""
    out = _e(_fmt_time(seen)) if seen else '<span class="none">not seen</span>'
    if run:
        out += '<div class="runid"><span class="label">run</span> <span class="mono">%s</span></div>' % (
            _e(run))
    if host.get("in_this_run") is False:
        out += ' <span class="tag earlier" title="%s">earlier run</span>' % _EARLIER
    moment = _parse_time(seen)
    return out, moment.strftime("%Y%m%dT%H%M%S") if moment else _one_line(seen)


def _host_ids(hosts: list[dict]) -> list[str]:
    ids: list[str] = []
    used: set[str] = set()
    for index, host in enumerate(hosts):
        base = "host-" + (re.sub(r"[^A-Za-z0-9_.\-]", "_", _one_line(host.get("host"))) or "x")
        ident = base if base not in used else "%s-%d" % (base, index)
        used.add(ident)
        ids.append(ident)
    return ids


# Columns of the host table: (key, heading, width weight). Optional columns with no content
# on any host are left out.
_COLUMNS = (
    ("host", "Host", 10, True),
    ("status", "Status", 12, True),
    ("reason", "Reason", 15, True),
    ("stores", "Stores: before \u2192 after, SHA-256 added (+) and removed (\u2212)", 26, False),
    ("cleanup", "Copies and configuration", 15, False),
    ("audit", "Audit: where the certificates are", 22, False),
    ("probe", "Async check", 8, False),
    ("files", "Proposal, backups", 12, False),
    ("seen", "Last seen", 12, True),
)


def _host_cells(host: Mapping, report: Mapping) -> dict[str, tuple[str, str | None]]:
    """Per column: (cell HTML, sort key or None)."""
    status = _status(host)
    reason = _reason(host, with_proposal=False)
    seen, seen_key = _seen_html(host)
    probe = _dict(host.get("probe"))
    return {
        "host": (_e(_one_line(host.get("host")) or "?"), None),
        "status": (_badge(status), "%02d" % _rank(status)),
        "reason": ('<span class="reason">%s</span>' % _breakable(reason) if reason else "", None),
        "stores": (_stores_html(host, report), None),
        "cleanup": (_cleanup_html(host), None),
        "audit": (_audit_html(host), None),
        "probe": (_probe_html(host), _one_line(probe.get("status"))),
        "files": (_files_html(host), None),
        "seen": (seen, seen_key),
    }


def _header_html(report: Mapping, now: datetime | None) -> list[str]:
    kind = _one_line(report.get("kind")) or "report"
    generation = _one_line(report.get("generation"))
    run_id = _one_line(report.get("run_id"))
    out = []
    if report.get("check_mode"):
        out.append(
            '<div class="dryrun" id="dry-run" role="alert">DRY RUN \u2014 nothing was written on any server'
            '<small>This is a check-mode run: "changed" means "would change". Run again without --check '
            "to rotate.</small></div>"
        )
    out.append(
        '<h1>%s %s %s<span class="run"> \u00b7 run %s</span></h1>'
        % (
            "DRY RUN \u2014 " if report.get("check_mode") else "",
            _e(kind.capitalize()),
            _e(generation),
            _e(run_id or "?"),
        )
    )
    hosts = _hosts(report)
    action = _action_hosts(report)
    totals = _totals(report)
    if action:
        out.append('<p class="verdict bad" id="verdict">%d of %d hosts need action</p>'
                   % (len(action), len(hosts)))
    elif totals.get("pending"):
        out.append('<p class="verdict wait" id="verdict">No host needs action so far; %d not run yet</p>'
                   % totals["pending"])
    else:
        out.append('<p class="verdict good" id="verdict">No host needs action (%d hosts)</p>' % len(hosts))
    revocation = _revocation(report, now)
    if revocation:
        out.append(
            '<div class="revocation" id="revocation" data-state="%s">%s <small>(as of %s)</small></div>'
            % (_e(revocation[0]), _e(revocation[1]), _e(_now(now).strftime("%H:%M UTC")))
        )
    tiles = ['<div class="total all" id="total-all"><span class="n">%d</span> hosts</div>' % len(hosts)]
    for status, count in totals.items():
        if count == 0 and status not in STATUS_ORDER:
            continue
        ident = "total-" + re.sub(r"[^a-z0-9]+", "-", status.lower()).strip("-")
        tiles.append(
            '<div class="total%s" id="%s" data-status="%s" data-count="%d" title="%s">'
            '<span class="n">%d</span> %s</div>'
            % (" zero" if count == 0 else "", _e(ident), _e(status), count, _e(_help(status, report)), count,
               _e(status))
        )
    out.append('<section class="totals" id="totals" aria-label="Hosts by status">%s</section>'
               % "".join(tiles))
    return out


def _help(status: str, report: Mapping) -> str:
    if report.get("check_mode") and status in _DRY_HELP:
        return _DRY_HELP[status]
    return STATUS_HELP.get(status, "Unknown status: look at this host.")


def _meta_html(report: Mapping) -> list[str]:
    rows = [
        ("Run", '<span class="mono">%s</span>%s' % (
            _e(report.get("run_id") or "?"), " (dry run, check mode)" if report.get("check_mode") else "")),
        ("Started", _e(_fmt_time(report.get("started")))),
        ("Ended", _e(_fmt_time(report.get("ended")))
         + (" (%s)" % _e(_duration(report.get("started"), report.get("ended")))
            if _duration(report.get("started"), report.get("ended")) else "")),
        ("Target", '<span class="mono">%s</span>' % _e(report.get("target") or "?")),
        ("Limit", '<span class="mono">%s</span>' % _e(report.get("limit")) if report.get("limit")
         else '<span class="none">none (whole target)</span>'),
    ]
    if report.get("revocation_time"):
        rows.append(("Revocation", _e(_fmt_time(report.get("revocation_time")))))
    out = ['<dl class="meta" id="meta">']
    out += ["<dt>%s</dt><dd>%s</dd>" % (k, v) for k, v in rows]
    out.append("</dl>")
    deployed = _dict(report.get("deployed"))
    generation = _one_line(report.get("generation"))
    body = []
    for key, label in (("certificate", "Encryption certificate"), ("authority", "Authority")):
        item = _dict(deployed.get(key))
        if not item:
            continue
        cells = []
        if item.get("sha256"):
            cells.append('<div class="fpfull mono" id="deployed-%s-sha256">SHA-256 %s</div>'
                         % (key, _e(_one_line(item.get("sha256"))).replace(":", ":<wbr>")))
        if item.get("subject"):
            cells.append("<div>%s</div>" % _e(_one_line(item.get("subject"))))
        if item.get("not_after"):
            cells.append('<div><span class="label">valid until</span> %s</div>'
                         % _e(_fmt_time(item.get("not_after"))))
        for extra in sorted(k for k in item if k not in ("sha256", "subject", "not_after")):
            cells.append('<div><span class="label">%s</span> %s</div>'
                         % (_e(extra), _e(_one_line(item[extra]))))
        body.append("<tr><th>%s %s</th><td>%s</td></tr>" % (_e(label), _e(generation), "".join(cells)))
    if body:
        out.append('<table class="deployed" id="deployed"><caption>Deployed</caption>'
                   "<tbody>%s</tbody></table>" % "".join(body))
    return out


def _action_html(report: Mapping, ids: dict[int, str]) -> list[str]:
    action = _action_hosts(report)
    out = ['<section id="action"><h2>Needs action (%d)</h2>' % len(action)]
    if not action:
        out.append('<p class="none">No host needs action.</p></section>')
        return out
    groups: dict[str, list[dict]] = {}
    for host in action:
        groups.setdefault(_status(host), []).append(host)
    for status, hosts in groups.items():
        out.append('<div class="group" data-status="%s">' % _e(status))
        out.append("<h3>%s %d %s</h3>" % (_badge(status), len(hosts), "host" if len(hosts) == 1 else "hosts"))
        out.append('<p class="help">%s</p>' % _e(_help(status, report)))
        if status in _RERUN_STATUSES:
            names = ",".join(_one_line(h.get("host")) for h in hosts)
            out.append('<div class="rerun">Once fixed, run again on them with:<code>--limit %s</code></div>'
                       % _e("'%s'" % names))
        out.append('<table class="list"><thead><tr><th style="width:16%">Host</th><th>Reason</th>'
                   '<th style="width:34%">Where</th></tr></thead><tbody>')
        for host in hosts:
            reason = _reason(host, with_proposal=False)
            failed_stores = [s for s in _stores(host) if s.get("failed")]
            where = "".join([
                _paths_html(_list(host.get("needs_attention")), "needs a person", "bad-label"),
                _paths_html(_retired_extra(host), "retired certificate in", "bad-label"),
                _paths_html(_list(_dict(host.get("audit")).get("stores_without_current")),
                            "stores without the current", "bad-label"),
                _paths_html([s.get("path") for s in failed_stores], "store failed", "bad-label"),
                "".join('<div class="msg">%s: %s</div>' % (_path_html(s.get("path")), _e(_store_msg(s)))
                        for s in failed_stores if _store_msg(s) and _store_msg(s) not in reason),
                _files_html(host) if status == "unconfigured" else "",
            ])
            if host.get("in_this_run") is False and host.get("run_id"):
                where += '<div><span class="tag earlier">earlier run</span> %s</div>' % _e(
                    _one_line(host.get("run_id")))
            out.append(
                '<tr data-action-host="%s"><td class="host" data-label="Host"><a href="#%s">%s</a></td>'
                '<td class="reason" data-label="Reason">%s</td><td data-label="Where">%s</td></tr>'
                % (_e(_one_line(host.get("host"))), _e(ids.get(id(host), "")),
                   _e(_one_line(host.get("host"))), _breakable(reason), where)
            )
        out.append("</tbody></table></div>")
    out.append("</section>")
    return out


def _hosts_html(report: Mapping, hosts: list[dict], ids: dict[int, str]) -> list[str]:
    cells = [_host_cells(h, report) for h in hosts]
    columns = [c for c in _COLUMNS if c[3] or any(row[c[0]][0] for row in cells)]
    weight = sum(c[2] for c in columns)
    out = ['<section id="all-hosts"><h2>All hosts (%d)</h2>' % len(hosts)]
    statuses = list(STATUS_ORDER) + sorted({_status(h) for h in hosts} - set(STATUS_ORDER))
    options = ['<option value="all">all statuses</option>', '<option value="action">needs action</option>']
    options += ['<option value="%s">%s</option>' % (_e(s), _e(s)) for s in statuses]
    out.append(
        '<div id="controls" hidden><label>Show <select id="status-filter">%s</select></label>'
        '<label>Find <input id="host-filter" type="search" placeholder="host, path, reason"></label>'
        '<span id="shown-count"></span></div>' % "".join(options)
    )
    out.append('<table class="hosts" id="hosts-table"><colgroup>')
    out += ['<col style="width:%.1f%%">' % (100.0 * c[2] / weight) for c in columns]
    out.append("</colgroup><thead><tr>")
    out += ['<th scope="col">%s</th>' % _e(c[1]) for c in columns]
    out.append("</tr></thead><tbody>")
    for index, (host, row) in enumerate(zip(hosts, cells)):
        status = _status(host)
        out.append(
            '<tr id="%s" data-host="%s" data-status="%s" data-action="%d" data-index="%d">'
            % (_e(ids[id(host)]), _e(_one_line(host.get("host"))), _e(status),
               int(_needs_action(status)), index)
        )
        for key, heading, _weight, _always in columns:
            html_, sort = row[key]
            attrs = ' data-label="%s"' % _e(heading)
            if sort is not None:
                attrs += ' data-sort="%s"' % _e(sort)
            classes = [c for c in (key == "host" and "host", not html_ and "empty") if c]
            if classes:
                attrs += ' class="%s"' % " ".join(classes)
            out.append("<td%s>%s</td>" % (attrs, html_ or '<span class="none">\u2014</span>'))
        out.append("</tr>")
    out.append("</tbody></table></section>")
    return out


def _history_html(report: Mapping) -> list[str]:
    runs = [r for r in _list(report.get("history")) if isinstance(r, Mapping)]
    if not runs:
        return []
    out = ['<section id="history"><h2>Runs in this view (%d)</h2>' % len(runs),
           '<table class="list"><thead><tr><th>Run</th><th>Started</th><th>Ended</th><th>Mode</th>'
           "<th>Hosts</th><th>Limit</th></tr></thead><tbody>"]
    for run in runs:
        out.append(
            '<tr data-run="%s"><td class="mono" data-label="Run">%s</td><td data-label="Started">%s</td>'
            '<td data-label="Ended">%s</td><td data-label="Mode">%s</td><td data-label="Hosts">%s</td>'
            '<td class="mono" data-label="Limit">%s</td></tr>'
            % (
                _e(_one_line(run.get("run_id"))),
                _e(_one_line(run.get("run_id"))),
                _e(_fmt_time(run.get("started"))),
                _e(_fmt_time(run.get("ended"))),
                "DRY RUN" if run.get("check_mode") else "real",
                _e(run.get("hosts", "")),
                _e(run.get("limit") or "") or '<span class="none">none</span>',
            )
        )
    out.append("</tbody></table></section>")
    return out


def render_html(report: Mapping, now: datetime | None = None) -> str:
    """The report as one self-contained HTML page (see docs/report.md, "Reading report.html").

    ``now`` (UTC; default: the current time) is the moment the time left before the
    revocation hour is computed for.
    """
    now = _now(now)
    kind = _one_line(report.get("kind")) or "report"
    generation = _one_line(report.get("generation"))
    title = "sne.guichet %s %s \u2014 run %s" % (kind, generation, _one_line(report.get("run_id")) or "?")
    action = _action_hosts(report)
    if action:
        title = "(%d need action) %s" % (len(action), title)
    if report.get("check_mode"):
        title = "DRY RUN \u2014 " + title
    hosts = _hosts(report)
    ids = dict(zip((id(h) for h in hosts), _host_ids(hosts)))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="sne.guichet report">',
        "<title>%s</title>" % _e(title),
        "<style>%s</style>" % _CSS,
        '</head><body data-kind="%s" data-check-mode="%s">'
        % (_e(kind), "true" if report.get("check_mode") else "false"),
        "<header>",
    ]
    parts += _header_html(report, now)
    parts.append('<div class="facts">')
    parts += _meta_html(report)
    parts.append("</div></header><main>")
    parts += _action_html(report, ids)
    parts += _hosts_html(report, hosts, ids)
    parts += _history_html(report)
    parts.append("</main>")
    parts.append(
        "<footer>Written %s by sne.guichet. The same data is in report.json; times are UTC.</footer>"
        % _e(now.strftime("%Y-%m-%d %H:%M:%S UTC"))
    )
    parts.append("<script>%s</script>" % _JS)
    parts.append("</body></html>\n")
    return "\n".join(parts)
