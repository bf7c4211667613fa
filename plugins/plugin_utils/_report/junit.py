# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet report as JUnit XML (junit.xml): one test case per host, a host needing a person fails.

This API is private to the sne.guichet collection; it may change without notice.
Controller-side code: Python standard library only. ``xml.etree.ElementTree`` escapes every
value; the characters XML 1.0 cannot carry are replaced first (:func:`common.clean`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, Mapping

from ansible_collections.sne.guichet.plugins.plugin_utils._report.common import (
    as_dict,
    as_list,
    clean,
    fmt_time,
    generations,
    hosts_of,
    needs_action,
    one_line,
    outbox_summary,
    parse_time,
    reason_of,
    status_of,
    store_msg,
    stores_of,
    unreadable_of,
)


def _details(host: Mapping, report: Mapping) -> str:
    """Plain-text details of one host (JUnit failure body and system-out)."""
    lines = ["status: " + status_of(host)]
    reason = reason_of(host)
    if reason:
        lines.append("reason: " + reason)
    dry = bool(report.get("check_mode"))
    for store in stores_of(host):
        state = "failed" if store.get("failed") else ("would change" if dry else "changed")
        if not store.get("failed") and not store.get("changed"):
            state = "skipped" if store.get("skipped") else "unchanged"
        text = "store %s (%s): %s, %s -> %s" % (
            one_line(store.get("path")),
            one_line(store.get("type")) or "?",
            state,
            generations(store.get("before")),
            generations(store.get("after")),
        )
        if store_msg(store):
            text += " - " + store_msg(store)
        lines.append(text)
        for sign, key in (("+", "added"), ("-", "removed")):
            for entry in as_list(store.get(key)):
                entry = as_dict(entry)
                name, sha256 = one_line(entry.get("name")), one_line(entry.get("sha256"))
                lines.append("  %s %s %s" % (sign, name, sha256))
    audit = as_dict(host.get("audit"))
    for source, key, label in (
        (host, "quarantined", "quarantined"),
        (host, "needs_attention", "needs a person"),
        (host, "config_rewritten", "configuration rewritten"),
        (audit, "retired_places", "retired certificate in"),
        (audit, "current_places", "current certificate in"),
        (audit, "stores_without_current", "store without the current certificate"),
    ):
        for path in as_list(source.get(key)):
            lines.append("%s: %s" % (label, one_line(path)))
    for item in unreadable_of(audit):
        lines.append("could not be read: " + item)
    if outbox_summary(host, dry):
        lines.append(outbox_summary(host, dry))
        outbox = as_dict(host.get("outbox"))
        lines += ["  moved: " + one_line(p) for p in as_list(outbox.get("moved"))]
        lines += ["  left: " + one_line(p) for p in as_list(outbox.get("left"))]
    probe = as_dict(host.get("probe"))
    if probe and one_line(probe.get("status")) not in ("", "not run", "skipped"):
        text = "asynchronous check: " + one_line(probe.get("status"))
        if isinstance(probe.get("latency"), (int, float)):
            text += " in %.1f s" % probe["latency"]
        if probe.get("msg"):
            text += " - " + one_line(probe.get("msg"))
        lines.append(text)
    if host.get("backup_dir"):
        lines.append("backups: " + one_line(host.get("backup_dir")))
    if host.get("proposal"):
        lines.append("proposal: " + one_line(host.get("proposal")))
    seen = "last seen: "
    if host.get("seen_at") or host.get("run_id"):
        seen += "%s in run %s" % (fmt_time(host.get("seen_at")) or "?", one_line(host.get("run_id")) or "?")
        if host.get("in_this_run") is False:
            seen += " (an earlier run)"
    else:
        seen += "never"
    lines.append(seen)
    return "\n".join(lines)


def _junit_time(value: Any) -> str:
    moment = parse_time(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") if moment else ""


def render_junit(report: Mapping) -> str:
    """The report as JUnit XML: one test suite, one test case per host.

    failed, unconfigured, not reached, attention (and any unknown status) -> ``<failure>``:
    each needs a person. pending -> ``<skipped>``. ok and changed -> pass, with a summary in
    ``<system-out>``. Times are UTC.
    """
    kind = one_line(report.get("kind")) or "report"
    generation = one_line(report.get("generation")) or "unknown"
    hosts = hosts_of(report)
    failures = sum(1 for h in hosts if needs_action(status_of(h)))
    skipped = sum(1 for h in hosts if status_of(h) == "pending")
    counts = {"tests": str(len(hosts)), "failures": str(failures), "errors": "0", "skipped": str(skipped)}

    root = ET.Element("testsuites", dict(name="sne.guichet", **counts))
    suite = ET.SubElement(root, "testsuite", dict(name="sne.guichet %s %s" % (kind, generation), **counts))
    if _junit_time(report.get("started")):
        suite.set("timestamp", _junit_time(report.get("started")))
    first, last = parse_time(report.get("started")), parse_time(report.get("ended"))
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
            text = "" if value is None else one_line(value)
        ET.SubElement(props, "property", name=key, value=text)
    classname = "sne.guichet.%s.%s" % (kind, generation)
    for host in hosts:
        status = status_of(host)
        case = ET.SubElement(suite, "testcase", classname=classname, name=one_line(host.get("host")) or "?")
        details = clean(_details(host, report))
        if needs_action(status):
            reason = reason_of(host)
            message = one_line(status + (": " + reason if reason else ""))
            failure = ET.SubElement(case, "failure", message=message, type=status)
            failure.text = details
        elif status == "pending":
            ET.SubElement(case, "skipped", message="pending: " + (reason_of(host) or "not run yet"))
        else:
            ET.SubElement(case, "system-out").text = details
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
