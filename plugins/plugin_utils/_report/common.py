# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every rendering of the fleet report shares: statuses, text cleaning, times, host facts.

This API is private to the sne.guichet collection; it may change without notice.
Controller-side code: Python standard library only.

Every value of the report may come from the field (host names, paths, reasons, messages):
text is cleaned of the characters XML 1.0 cannot carry. Missing keys are tolerated: a partial
report renders what it has rather than failing at the end of a run.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Mapping

# Display order everywhere: what needs a person first.
STATUS_ORDER = ("failed", "unconfigured", "not reached", "attention", "pending", "changed", "ok")
ACTION_STATUSES = ("failed", "unconfigured", "not reached", "attention")
# A status this renderer does not know is shown as is, and treated as needing action.
_UNKNOWN_RANK = len(ACTION_STATUSES)

# Characters XML 1.0 cannot hold (even escaped); also stripped from HTML.
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def clean(value: Any) -> str:
    """``value`` as text, without the characters XML cannot carry (shown as ``\\xNN``)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return _BAD_XML.sub(lambda m: "\\x%02x" % ord(m.group()) if ord(m.group()) < 0x100 else "\ufffd", text)


def one_line(value: Any, limit: int = 0) -> str:
    text = " ".join(clean(value).split())
    if limit and len(text) > limit:
        text = text[: limit - 1].rstrip() + "\u2026"
    return text


def as_list(value: Any) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def as_dict(value: Any) -> dict:
    return value if isinstance(value, Mapping) else {}


def parse_time(value: Any) -> datetime | None:
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


def utc_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    return now.replace(tzinfo=timezone.utc) if now.tzinfo is None else now.astimezone(timezone.utc)


def fmt_time(value: Any, with_date: bool = True) -> str:
    moment = parse_time(value)
    if moment is None:
        return clean(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if with_date else "%H:%M:%S UTC")


def span(seconds: float) -> str:
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


def duration(start: Any, end: Any) -> str:
    first, last = parse_time(start), parse_time(end)
    if first is None or last is None or last < first:
        return ""
    seconds = int((last - first).total_seconds())
    if seconds < 60:
        return "%d s" % seconds
    return "%s %d s" % (span(seconds), seconds % 60) if seconds < 3600 else span(seconds)


def revocation_of(report: Mapping, now: datetime | None) -> tuple[str, str] | None:
    """``(state, words)`` about the revocation hour, ``None`` when no hour is set.

    state is ``before``, ``soon`` (less than an hour left), ``after`` or ``unknown``.
    """
    raw = report.get("revocation_time")
    if raw in (None, ""):
        return None
    when = parse_time(raw)
    if when is None:
        return "unknown", "revocation at %s" % one_line(raw)
    moment = utc_now(now)
    hour = when.strftime("%H:%M UTC") if when.date() == moment.date() else when.strftime("%Y-%m-%d %H:%M UTC")
    left = (when - moment).total_seconds()
    if left > 0:
        return ("soon" if left < 3600 else "before"), "%s before revocation at %s" % (span(left), hour)
    return "after", "revoked since %s (%s ago)" % (hour, span(-left))


def status_of(host: Mapping) -> str:
    return one_line(host.get("status")) or "unknown"


def status_rank(status: str) -> int:
    if status in STATUS_ORDER:
        return STATUS_ORDER.index(status)
    return _UNKNOWN_RANK  # unknown: with the ones needing action, after them


def needs_action(status: str) -> bool:
    return status in ACTION_STATUSES or status not in STATUS_ORDER


def hosts_of(report: Mapping) -> list[dict]:
    return [h for h in as_list(report.get("hosts")) if isinstance(h, Mapping)]


def totals_of(report: Mapping) -> dict[str, int]:
    """Count per status: the report's ``totals`` where given, else counted from ``hosts``."""
    counted: dict[str, int] = {}
    for host in hosts_of(report):
        counted[status_of(host)] = counted.get(status_of(host), 0) + 1
    given = as_dict(report.get("totals"))
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


def action_hosts(report: Mapping) -> list[dict]:
    hosts = [h for h in hosts_of(report) if needs_action(status_of(h))]
    return sorted(hosts, key=lambda h: (status_rank(status_of(h)), one_line(h.get("host"))))


def reason_of(host: Mapping, with_proposal: bool = True) -> str:
    """The host's reason in words; built from what is known when the report gave none.

    An unconfigured host's reason names its proposal (``with_proposal``; the HTML links it
    beside the reason instead).
    """
    reason = one_line(host.get("reason"))
    status = status_of(host)
    if not reason:
        if status == "attention" and as_list(host.get("needs_attention")):
            places = [one_line(p) for p in as_list(host.get("needs_attention"))]
            reason = "retired certificate still in " + ", ".join(places)
        elif status == "failed":
            msgs = [store_msg(s) for s in stores_of(host) if s.get("failed") and store_msg(s)]
            reason = "; ".join(msgs)
        elif status == "not reached":
            reason = "unreachable or not run"
        elif status == "unconfigured":
            reason = "no store declared for this host"
        elif status == "pending":
            reason = "not run yet (later batch)"
    proposal = one_line(host.get("proposal"))
    if with_proposal and status == "unconfigured" and proposal and proposal not in reason:
        reason = (reason + "; " if reason else "") + "proposal: " + proposal
    return reason


def stores_of(host: Mapping) -> list[dict]:
    return [s for s in as_list(host.get("stores")) if isinstance(s, Mapping)]


def store_msg(store: Mapping) -> str:
    """A store's message; its code when it has no message but failed."""
    msg = one_line(store.get("msg"))
    if not msg and store.get("failed") and store.get("code"):
        msg = one_line(store.get("code"))
    return msg


def generations(value: Any) -> str:
    items = [one_line(v) for v in as_list(value)]
    return ", ".join(i for i in items if i) or "none"


def unreadable_of(audit: Mapping) -> list[str]:
    out = []
    for item in as_list(audit.get("unreadable")):
        if isinstance(item, Mapping):
            text = one_line(item.get("path"))
            why = one_line(item.get("msg") or item.get("reason") or item.get("error"))
            out.append(text + (" (%s)" % why if why else ""))
        else:
            out.append(one_line(item))
    return [o for o in out if o]


def outbox_summary(host: Mapping, dry: bool = False) -> str:
    """One line on the host's outbound messages to the retired certificate (``outbox`` of its
    record): how many found, the oldest, how many moved to the quarantine; "" when none."""
    outbox = as_dict(host.get("outbox"))
    found = outbox.get("retired_messages")
    moved = as_list(outbox.get("moved"))
    if not isinstance(found, int) or found <= 0:
        return ""
    text = "outbound messages to the retired certificate: %d found" % found
    if outbox.get("oldest"):
        text += " (oldest %s)" % one_line(outbox.get("oldest"))
    return text + ", %d %s to the quarantine" % (len(moved), "would be moved" if dry else "moved")
