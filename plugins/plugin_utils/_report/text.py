# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet report as text: stable JSON (report.json) and the summary printed at the end of a run.

This API is private to the sne.guichet collection; it may change without notice.
Controller-side code: Python standard library only.

The summary is what the operator reads first, in the terminal: a header (kind, generation,
run, DRY RUN, time to revocation), the totals, one line per host needing action (at most
``max_hosts``), then where the report files are.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Mapping

from ansible_collections.sne.guichet.plugins.plugin_utils._report.common import (
    action_hosts,
    as_dict,
    hosts_of,
    one_line,
    outbox_summary,
    reason_of,
    revocation_of,
    status_of,
    totals_of,
)
from ansible_collections.sne.guichet.plugins.plugin_utils._report.revocation import revocation_lines

SUMMARY_MAX_HOSTS = 40
_REASON_MAX = 200


def render_json(report: Mapping) -> str:
    """The report as stable JSON: sorted keys, indent 2, UTF-8 text, trailing newline."""
    return json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False, default=str) + "\n"


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
    head = ["sne.guichet", one_line(report.get("kind")) or "report", one_line(report.get("generation"))]
    header = " ".join(p for p in head if p)
    if report.get("run_id"):
        header += " - run " + one_line(report.get("run_id"))
    if report.get("check_mode"):
        header += " - DRY RUN (nothing written)"
    revocation = revocation_of(report, now)
    if revocation:
        header += " - " + revocation[1]
    totals = totals_of(report)
    total = len(hosts_of(report))
    line = "%d hosts: " % total + ", ".join("%d %s" % (n, s) for s, n in totals.items())
    lines = [header, line] + revocation_lines(report)  # V4: revoked by the CRL of ... since ...
    action = action_hosts(report)
    if action:
        lines.append("Needs action (%d):" % len(action))
        for host in action[:max_hosts]:
            text = "  %s: %s" % (one_line(host.get("host")) or "?", status_of(host))
            reason = one_line(reason_of(host), _REASON_MAX)
            lines.append(text + (" - " + reason if reason else ""))
        if len(action) > max_hosts:
            where = one_line(as_dict(paths).get("html")) or "report.html"
            lines.append("  ... and %d more, see %s" % (len(action) - max_hosts, where))
    elif totals.get("pending"):
        lines.append("No host needs action so far; %d not run yet." % totals["pending"])
    else:
        lines.append("No host needs action.")
    outboxes = [(h, outbox_summary(h, bool(report.get("check_mode")))) for h in hosts_of(report)]
    outboxes = [(h, line) for h, line in outboxes if line]
    if outboxes:
        lines.append("Outbound messages to the retired certificate (%d host%s):"
                     % (len(outboxes), "" if len(outboxes) == 1 else "s"))
        for host, line in outboxes[:max_hosts]:
            lines.append("  %s: %s" % (one_line(host.get("host")) or "?", line.split(": ", 1)[1]))
        if len(outboxes) > max_hosts:
            lines.append("  ... and %d more" % (len(outboxes) - max_hosts))
    if paths:
        shown = ", ".join("%s %s" % (one_line(k), one_line(v)) for k, v in paths.items())
        lines.append("Reports: " + shown)
    return lines
