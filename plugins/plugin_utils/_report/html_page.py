# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet report as one self-contained HTML page (report.html, see docs/report.md).

This API is private to the sne.guichet collection; it may change without notice.
Controller-side code: Python standard library only.

Inline CSS, a small inline script that only adds a status filter and column sort (the page
is complete without it), no external resource. Every value is escaped (:func:`html_cells.esc`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Mapping

from ansible_collections.sne.guichet.plugins.plugin_utils._report.common import (
    STATUS_ORDER,
    action_hosts,
    as_dict,
    as_list,
    duration,
    fmt_time,
    hosts_of,
    needs_action,
    one_line,
    reason_of,
    revocation_of,
    status_of,
    store_msg,
    stores_of,
    totals_of,
    utc_now,
)
from ansible_collections.sne.guichet.plugins.plugin_utils._report.html_assets import CSS, JS
from ansible_collections.sne.guichet.plugins.plugin_utils._report.html_cells import (
    COLUMNS,
    badge,
    breakable,
    esc,
    files_html,
    host_cells,
    path_html,
    paths_html,
    retired_extra,
)
from ansible_collections.sne.guichet.plugins.plugin_utils._report.revocation import (
    revocation_entries,
    revocation_words,
)

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


def _host_ids(hosts: list[dict]) -> list[str]:
    ids: list[str] = []
    used: set[str] = set()
    for index, host in enumerate(hosts):
        base = "host-" + (re.sub(r"[^A-Za-z0-9_.\-]", "_", one_line(host.get("host"))) or "x")
        ident = base if base not in used else "%s-%d" % (base, index)
        used.add(ident)
        ids.append(ident)
    return ids


def _header_html(report: Mapping, now: datetime | None) -> list[str]:
    kind = one_line(report.get("kind")) or "report"
    generation = one_line(report.get("generation"))
    run_id = one_line(report.get("run_id"))
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
            esc(kind.capitalize()),
            esc(generation),
            esc(run_id or "?"),
        )
    )
    hosts = hosts_of(report)
    action = action_hosts(report)
    totals = totals_of(report)
    if action:
        out.append('<p class="verdict bad" id="verdict">%d of %d hosts need action</p>'
                   % (len(action), len(hosts)))
    elif totals.get("pending"):
        out.append('<p class="verdict wait" id="verdict">No host needs action so far; %d not run yet</p>'
                   % totals["pending"])
    else:
        out.append('<p class="verdict good" id="verdict">No host needs action (%d hosts)</p>' % len(hosts))
    revocation = revocation_of(report, now)
    if revocation:
        out.append(
            '<div class="revocation" id="revocation" data-state="%s">%s <small>(as of %s)</small></div>'
            % (esc(revocation[0]), esc(revocation[1]), esc(utc_now(now).strftime("%H:%M UTC")))
        )
    crl = revocation_entries(report.get("revocation"))
    if crl:  # what the CRLs proved, one line per generation
        out.append('<ul class="crl" id="crl">%s</ul>' % "".join(
            '<li data-generation="%s" data-revoked="%s">%s</li>'
            % (esc(one_line(e.get("generation"))), esc(str(e.get("revoked")).lower()),
               esc(revocation_words(e)))
            for e in crl))
    tiles = ['<div class="total all" id="total-all"><span class="n">%d</span> hosts</div>' % len(hosts)]
    for status, count in totals.items():
        if count == 0 and status not in STATUS_ORDER:
            continue
        ident = "total-" + re.sub(r"[^a-z0-9]+", "-", status.lower()).strip("-")
        tiles.append(
            '<div class="total%s" id="%s" data-status="%s" data-count="%d" title="%s">'
            '<span class="n">%d</span> %s</div>'
            % (" zero" if count == 0 else "", esc(ident), esc(status), count, esc(_help(status, report)),
               count, esc(status))
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
            esc(report.get("run_id") or "?"), " (dry run, check mode)" if report.get("check_mode") else "")),
        ("Started", esc(fmt_time(report.get("started")))),
        ("Ended", esc(fmt_time(report.get("ended")))
         + (" (%s)" % esc(duration(report.get("started"), report.get("ended")))
            if duration(report.get("started"), report.get("ended")) else "")),
        ("Target", '<span class="mono">%s</span>' % esc(report.get("target") or "?")),
        ("Limit", '<span class="mono">%s</span>' % esc(report.get("limit")) if report.get("limit")
         else '<span class="none">none (whole target)</span>'),
    ]
    if report.get("revocation_time"):
        rows.append(("Revocation", esc(fmt_time(report.get("revocation_time")))))
    out = ['<dl class="meta" id="meta">']
    out += ["<dt>%s</dt><dd>%s</dd>" % (k, v) for k, v in rows]
    out.append("</dl>")
    deployed = as_dict(report.get("deployed"))
    generation = one_line(report.get("generation"))
    body = []
    for key, label in (("certificate", "Encryption certificate"), ("authority", "Authority")):
        item = as_dict(deployed.get(key))
        if not item:
            continue
        cells = []
        if item.get("sha256"):
            cells.append('<div class="fpfull mono" id="deployed-%s-sha256">SHA-256 %s</div>'
                         % (key, esc(one_line(item.get("sha256"))).replace(":", ":<wbr>")))
        if item.get("subject"):
            cells.append("<div>%s</div>" % esc(one_line(item.get("subject"))))
        if item.get("not_after"):
            cells.append('<div><span class="label">valid until</span> %s</div>'
                         % esc(fmt_time(item.get("not_after"))))
        for extra in sorted(k for k in item if k not in ("sha256", "subject", "not_after")):
            cells.append('<div><span class="label">%s</span> %s</div>'
                         % (esc(extra), esc(one_line(item[extra]))))
        body.append("<tr><th>%s %s</th><td>%s</td></tr>" % (esc(label), esc(generation), "".join(cells)))
    if body:
        out.append('<table class="deployed" id="deployed"><caption>Deployed</caption>'
                   "<tbody>%s</tbody></table>" % "".join(body))
    return out


def _action_html(report: Mapping, ids: dict[int, str]) -> list[str]:
    action = action_hosts(report)
    out = ['<section id="action"><h2>Needs action (%d)</h2>' % len(action)]
    if not action:
        out.append('<p class="none">No host needs action.</p></section>')
        return out
    groups: dict[str, list[dict]] = {}
    for host in action:
        groups.setdefault(status_of(host), []).append(host)
    for status, hosts in groups.items():
        out.append('<div class="group" data-status="%s">' % esc(status))
        out.append("<h3>%s %d %s</h3>" % (badge(status), len(hosts), "host" if len(hosts) == 1 else "hosts"))
        out.append('<p class="help">%s</p>' % esc(_help(status, report)))
        if status in _RERUN_STATUSES:
            names = ",".join(one_line(h.get("host")) for h in hosts)
            out.append('<div class="rerun">Once fixed, run again on them with:<code>--limit %s</code></div>'
                       % esc("'%s'" % names))
        out.append('<table class="list"><thead><tr><th style="width:16%">Host</th><th>Reason</th>'
                   '<th style="width:34%">Where</th></tr></thead><tbody>')
        for host in hosts:
            reason = reason_of(host, with_proposal=False)
            failed_stores = [s for s in stores_of(host) if s.get("failed")]
            where = "".join([
                paths_html(as_list(host.get("needs_attention")), "needs a person", "bad-label"),
                paths_html(retired_extra(host), "retired certificate in", "bad-label"),
                paths_html(as_list(as_dict(host.get("audit")).get("stores_without_current")),
                           "stores without the current", "bad-label"),
                paths_html([s.get("path") for s in failed_stores], "store failed", "bad-label"),
                "".join('<div class="msg">%s: %s</div>' % (path_html(s.get("path")), esc(store_msg(s)))
                        for s in failed_stores if store_msg(s) and store_msg(s) not in reason),
                files_html(host) if status == "unconfigured" else "",
            ])
            if host.get("in_this_run") is False and host.get("run_id"):
                where += '<div><span class="tag earlier">earlier run</span> %s</div>' % esc(
                    one_line(host.get("run_id")))
            out.append(
                '<tr data-action-host="%s"><td class="host" data-label="Host"><a href="#%s">%s</a></td>'
                '<td class="reason" data-label="Reason">%s</td><td data-label="Where">%s</td></tr>'
                % (esc(one_line(host.get("host"))), esc(ids.get(id(host), "")),
                   esc(one_line(host.get("host"))), breakable(reason), where)
            )
        out.append("</tbody></table></div>")
    out.append("</section>")
    return out


def _hosts_html(report: Mapping, hosts: list[dict], ids: dict[int, str]) -> list[str]:
    cells = [host_cells(h, report) for h in hosts]
    columns = [c for c in COLUMNS if c[3] or any(row[c[0]][0] for row in cells)]
    weight = sum(c[2] for c in columns)
    out = ['<section id="all-hosts"><h2>All hosts (%d)</h2>' % len(hosts)]
    statuses = list(STATUS_ORDER) + sorted({status_of(h) for h in hosts} - set(STATUS_ORDER))
    options = ['<option value="all">all statuses</option>', '<option value="action">needs action</option>']
    options += ['<option value="%s">%s</option>' % (esc(s), esc(s)) for s in statuses]
    out.append(
        '<div id="controls" hidden><label>Show <select id="status-filter">%s</select></label>'
        '<label>Find <input id="host-filter" type="search" placeholder="host, path, reason"></label>'
        '<span id="shown-count"></span></div>' % "".join(options)
    )
    out.append('<table class="hosts" id="hosts-table"><colgroup>')
    out += ['<col style="width:%.1f%%">' % (100.0 * c[2] / weight) for c in columns]
    out.append("</colgroup><thead><tr>")
    out += ['<th scope="col">%s</th>' % esc(c[1]) for c in columns]
    out.append("</tr></thead><tbody>")
    for index, (host, row) in enumerate(zip(hosts, cells)):
        status = status_of(host)
        out.append(
            '<tr id="%s" data-host="%s" data-status="%s" data-action="%d" data-index="%d">'
            % (esc(ids[id(host)]), esc(one_line(host.get("host"))), esc(status),
               int(needs_action(status)), index)
        )
        for key, heading, _weight, _always in columns:
            html_, sort = row[key]
            attrs = ' data-label="%s"' % esc(heading)
            if sort is not None:
                attrs += ' data-sort="%s"' % esc(sort)
            classes = [c for c in (key == "host" and "host", not html_ and "empty") if c]
            if classes:
                attrs += ' class="%s"' % " ".join(classes)
            out.append("<td%s>%s</td>" % (attrs, html_ or '<span class="none">\u2014</span>'))
        out.append("</tr>")
    out.append("</tbody></table></section>")
    return out


def _history_html(report: Mapping) -> list[str]:
    runs = [r for r in as_list(report.get("history")) if isinstance(r, Mapping)]
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
                esc(one_line(run.get("run_id"))),
                esc(one_line(run.get("run_id"))),
                esc(fmt_time(run.get("started"))),
                esc(fmt_time(run.get("ended"))),
                "DRY RUN" if run.get("check_mode") else "real",
                esc(run.get("hosts", "")),
                esc(run.get("limit") or "") or '<span class="none">none</span>',
            )
        )
    out.append("</tbody></table></section>")
    return out


def render_html(report: Mapping, now: datetime | None = None) -> str:
    """The report as one self-contained HTML page (see docs/report.md, "Reading report.html").

    ``now`` (UTC; default: the current time) is the moment the time left before the
    revocation hour is computed for.
    """
    now = utc_now(now)
    kind = one_line(report.get("kind")) or "report"
    generation = one_line(report.get("generation"))
    title = "sne.guichet %s %s \u2014 run %s" % (kind, generation, one_line(report.get("run_id")) or "?")
    action = action_hosts(report)
    if action:
        title = "(%d need action) %s" % (len(action), title)
    if report.get("check_mode"):
        title = "DRY RUN \u2014 " + title
    hosts = hosts_of(report)
    ids = dict(zip((id(h) for h in hosts), _host_ids(hosts)))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="sne.guichet report">',
        "<title>%s</title>" % esc(title),
        "<style>%s</style>" % CSS,
        '</head><body data-kind="%s" data-check-mode="%s">'
        % (esc(kind), "true" if report.get("check_mode") else "false"),
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
        % esc(now.strftime("%Y-%m-%d %H:%M:%S UTC"))
    )
    parts.append("<script>%s</script>" % JS)
    parts.append("</body></html>\n")
    return "\n".join(parts)
