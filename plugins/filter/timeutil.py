# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters sne.guichet.is_past and sne.guichet.seconds_until (documented in is_past.yml and
seconds_until.yml): compare an ISO 8601 instant with the controller's clock, in UTC.

Only instants that say their offset (``Z``, ``+01:00``, ``+0100``) are accepted: a revocation
hour without one (``2026-12-01T09:00:00``) could be Paris time or UTC, an hour apart, so it is
refused rather than guessed.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, Dict, Optional

from ansible.errors import AnsibleFilterError

_ISO = re.compile(
    r"^\s*(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<h>\d{2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?P<frac>[.,]\d+)?)?"
    r"\s*(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)\s*$"
)


def _parse(value: Any, what: str) -> datetime.datetime:
    """``value`` (ISO 8601 string with an offset, or an aware datetime) as an aware datetime."""
    if isinstance(value, datetime.datetime):
        parsed = value
    elif isinstance(value, str):
        match = _ISO.match(value)
        if not match:
            raise AnsibleFilterError(
                "%s %r is not an ISO 8601 instant with its offset, such as 2026-12-01T09:00:00Z "
                "or 2026-12-01T10:00:00+01:00" % (what, value))
        tz = match.group("tz").upper()
        if tz == "Z":
            offset = datetime.timedelta(0)
        else:
            digits = tz[1:].replace(":", "")
            hours, minutes = int(digits[:2]), int(digits[2:] or 0)
            if hours > 23 or minutes > 59:
                raise AnsibleFilterError("%s %r: offset %s out of range" % (what, value, tz))
            offset = datetime.timedelta(hours=hours, minutes=minutes)
            if tz[0] == "-":
                offset = -offset
        frac = (match.group("frac") or ".0")[1:]
        try:
            parsed = datetime.datetime.strptime(
                "%s %s:%s:%s" % (match.group("date"), match.group("h"), match.group("m"),
                                 match.group("s") or "00"),
                "%Y-%m-%d %H:%M:%S",
            ).replace(microsecond=int((frac + "000000")[:6]),
                      tzinfo=datetime.timezone(offset))
        except ValueError as exc:
            raise AnsibleFilterError("%s %r is not a valid date and time: %s" % (what, value, exc))
    else:
        raise AnsibleFilterError("%s must be an ISO 8601 string such as 2026-12-01T09:00:00Z, not %s"
                                 % (what, type(value).__name__))
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise AnsibleFilterError(
            "%s %s has no offset: write it in UTC (2026-12-01T09:00:00Z) or with its offset "
            "(2026-12-01T10:00:00+01:00)" % (what, value))
    return parsed


def _now(now: Optional[Any]) -> datetime.datetime:
    if now is None or now == "":
        return datetime.datetime.now(datetime.timezone.utc)
    return _parse(now, "now")


def seconds_until(value: Any, now: Optional[Any] = None) -> float:
    """Seconds from ``now`` (default: the controller's clock) to ``value``; negative once past."""
    return (_parse(value, "instant") - _now(now)).total_seconds()


def is_past(value: Any, now: Optional[Any] = None) -> bool:
    """Whether the instant ``value`` is at or before ``now`` (default: the controller's clock)."""
    return seconds_until(value, now) <= 0


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {"is_past": is_past, "seconds_until": seconds_until}
