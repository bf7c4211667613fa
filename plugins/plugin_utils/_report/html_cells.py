# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""report.html: escaping and the cells of the host table (stores, copies, audit, check, files, seen).

This API is private to the sne.guichet collection; it may change without notice.
Controller-side code: Python standard library only. Every value is escaped with
``html.escape`` (quotes too) after :func:`common.clean`.
"""

from __future__ import annotations

import html
import re
from typing import Any, Iterable, Mapping
from urllib.parse import quote

from ansible_collections.sne.guichet.plugins.plugin_utils._report.common import (
    as_dict,
    as_list,
    clean,
    fmt_time,
    generations,
    one_line,
    outbox_summary,
    parse_time,
    reason_of,
    status_of,
    status_rank,
    store_msg,
    stores_of,
    unreadable_of,
)

_EARLIER = "This host was not in this run: its status comes from the earlier run named here."
_SCHEME = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.\-]*:")


def esc(value: Any) -> str:
    """HTML-escaped text (quotes too: safe in attributes)."""
    return html.escape(clean(value), quote=True)


def breakable(text: Any) -> str:
    """Escaped text that a narrow column may break after each ``/`` (paths in reasons)."""
    return esc(text).replace("/", "/<wbr>")


def path_html(path: Any) -> str:
    """An escaped path in monospace, breakable after each ``/``."""
    return '<span class="mono">%s</span>' % breakable(path)


def paths_html(paths: Iterable[Any], label: str, css: str = "") -> str:
    items = [p for p in paths if one_line(p)]
    if not items:
        return ""
    cls = "label" + (" " + css if css else "")
    out = ['<div class="%s">%s (%d)</div><ul class="paths">' % (cls, esc(label), len(items))]
    out += ["<li>%s</li>" % path_html(p) for p in items]
    out.append("</ul>")
    return "".join(out)


def _norm_fp(value: Any) -> str:
    return re.sub(r"[^0-9A-F]", "", clean(value).upper())


def _short_fp(value: Any) -> str:
    text = one_line(value)
    return text if len(text) <= 20 else text[:11] + "\u2026" + text[-5:]


def _fp_html(value: Any) -> str:
    text = one_line(value)
    if not text:
        return ""
    return '<span class="fp mono" title="%s">%s</span>' % (esc(text), esc(_short_fp(text)))


def badge(status: str) -> str:
    return '<span class="badge" data-status="%s">%s</span>' % (esc(status), esc(status))


def safe_href(path: Any) -> str | None:
    """A relative link to ``path``, or ``None`` when it is not a plain relative path."""
    text = clean(path).strip()
    if not text or _SCHEME.match(text) or text.startswith(("/", "\\")) or any(c < " " for c in text):
        return None
    return quote(text, safe="/._-~")


def _known_fps(report: Mapping) -> dict[str, str]:
    """Normalised SHA-256 -> what it is, for the deployed certificate and authority."""
    deployed = as_dict(report.get("deployed"))
    generation = one_line(report.get("generation"))
    known = {}
    for key in ("certificate", "authority"):
        label = "%s %s" % (key, generation)
        fp = _norm_fp(as_dict(deployed.get(key)).get("sha256"))
        if fp:
            known[fp] = label.strip()
    return known


def _stores_html(host: Mapping, report: Mapping) -> str:
    known = _known_fps(report)
    dry = bool(report.get("check_mode"))
    out = []
    for store in stores_of(host):
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
        kind = one_line(store.get("type"))
        parts = [
            '<div class="store%s">' % (" failed" if failed else (" changed" if changed else "")),
            '<div class="path">%s%s</div>' % (path_html(store.get("path")),
                                              ' <span class="label">%s</span>' % esc(kind) if kind else ""),
            '<div class="gen">%s \u2192 %s%s</div>'
            % (esc(generations(store.get("before"))), esc(generations(store.get("after"))), tag),
        ]
        if store_msg(store):
            parts.append('<div class="msg">%s</div>' % esc(store_msg(store)))
        for sign, key in (("+", "added"), ("\u2212", "removed")):
            for entry in as_list(store.get(key)):
                entry = as_dict(entry)
                match = known.get(_norm_fp(entry.get("sha256"))) if sign == "+" else None
                name = one_line(entry.get("name")) or "(no name)"
                title = "; ".join(t for t in (("alias " + name), one_line(entry.get("subject"))) if t)
                parts.append(
                    '<div class="entry %s" title="%s">%s %s %s</div>'
                    % (
                        "in" if sign == "+" else "out",
                        esc(title),
                        sign,
                        '<span class="match">%s</span>' % esc(match) if match else esc(name),
                        _fp_html(entry.get("sha256")),
                    )
                )
        backup = one_line(store.get("backup"))
        host_backups = one_line(host.get("backup_dir")).rstrip("/")
        if backup and not (host_backups and backup.startswith(host_backups + "/")):
            parts.append('<div><span class="label">backup</span> %s</div>' % path_html(backup))
        parts.append("</div>")
        out.append("".join(parts))
    return "".join(out)


def _cleanup_html(host: Mapping) -> str:
    outbox = as_dict(host.get("outbox"))
    summary = outbox_summary(host, bool(host.get("check_mode")))
    return "".join(
        [
            paths_html(as_list(host.get("needs_attention")), "needs a person", "bad-label"),
            paths_html(as_list(host.get("quarantined")), "quarantined"),
            paths_html(as_list(host.get("config_rewritten")), "configuration rewritten"),
            '<div class="label">%s</div>' % esc(summary) if summary else "",
            paths_html(as_list(outbox.get("left")), "messages to the retired certificate left", "bad-label"),
            paths_html(as_list(outbox.get("moved")), "messages to the retired certificate quarantined"),
        ]
    )


def retired_extra(host: Mapping) -> list:
    """Audit places of the retired certificate not already listed in ``needs_attention``."""
    listed = {one_line(p) for p in as_list(host.get("needs_attention"))}
    return [p for p in as_list(as_dict(host.get("audit")).get("retired_places")) if one_line(p) not in listed]


def _audit_html(host: Mapping) -> str:
    audit = as_dict(host.get("audit"))
    without = as_list(audit.get("stores_without_current"))
    return "".join(
        [
            paths_html(retired_extra(host), "retired certificate in", "bad-label"),
            paths_html(without, "stores without the current", "bad-label"),
            paths_html(unreadable_of(audit), "could not be read"),
            paths_html(as_list(audit.get("current_places")), "current certificate in"),
        ]
    )


def _probe_html(host: Mapping) -> str:
    probe = as_dict(host.get("probe"))
    status = one_line(probe.get("status"))
    if not status or status in ("not run", "skipped"):
        return ""
    colours = {"passed": "ok", "rejected": "failed", "timeout": "failed", "error": "failed"}
    colour = colours.get(status, "pending")
    out = '<span class="badge" data-status="%s">%s</span>' % (colour, esc(status))
    latency = probe.get("latency")
    if isinstance(latency, (int, float)) and not isinstance(latency, bool):
        out += " %.1f s" % latency
    if probe.get("msg"):
        out += '<div class="msg">%s</div>' % esc(one_line(probe.get("msg")))
    return out


def files_html(host: Mapping) -> str:
    out = []
    if host.get("proposal"):
        href = safe_href(host.get("proposal"))
        text = path_html(host.get("proposal"))
        link = '<a href="%s">%s</a>' % (esc(href), text) if href else text
        out.append('<div><span class="label">proposal</span><br>%s</div>' % link)
    if host.get("backup_dir"):
        out.append('<div><span class="label">backups</span><br>%s</div>' % path_html(host.get("backup_dir")))
    return "".join(out)


def _seen_html(host: Mapping) -> tuple[str, str]:
    seen, run = host.get("seen_at"), one_line(host.get("run_id"))
    if not seen and not run:
        return '<span class="none">never</span>', ""
    out = esc(fmt_time(seen)) if seen else '<span class="none">not seen</span>'
    if run:
        out += '<div class="runid"><span class="label">run</span> <span class="mono">%s</span></div>' % (
            esc(run))
    if host.get("in_this_run") is False:
        out += ' <span class="tag earlier" title="%s">earlier run</span>' % _EARLIER
    moment = parse_time(seen)
    return out, moment.strftime("%Y%m%dT%H%M%S") if moment else one_line(seen)


# Columns of the host table: (key, heading, width weight). Optional columns with no content
# on any host are left out.
COLUMNS = (
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


def host_cells(host: Mapping, report: Mapping) -> dict[str, tuple[str, str | None]]:
    """Per column: (cell HTML, sort key or None)."""
    status = status_of(host)
    reason = reason_of(host, with_proposal=False)
    seen, seen_key = _seen_html(host)
    probe = as_dict(host.get("probe"))
    return {
        "host": (esc(one_line(host.get("host")) or "?"), None),
        "status": (badge(status), "%02d" % status_rank(status)),
        "reason": ('<span class="reason">%s</span>' % breakable(reason) if reason else "", None),
        "stores": (_stores_html(host, report), None),
        "cleanup": (_cleanup_html(host), None),
        "audit": (_audit_html(host), None),
        "probe": (_probe_html(host), one_line(probe.get("status"))),
        "files": (files_html(host), None),
        "seen": (seen, seen_key),
    }
