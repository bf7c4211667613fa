# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the CRLs proved, fleet-wide: one line per generation, for every rendering of the report.

This API is private to the sne.guichet collection; it may change without notice.
Controller-side code: Python standard library only.

The report's ``revocation`` is the ``sne.guichet.bundle`` module's return of the same name
(one entry per certificate looked up in a verified CRL); ``revocation_entries`` keeps only the
public facts the report shows, ``revocation_words`` says each in one line:
``V4: revoked by the CRL of AC SNE V4 since 2016-01-07 08:00:00 UTC``.
"""

from __future__ import annotations

from typing import Any, Mapping

from ansible_collections.sne.guichet.plugins.plugin_utils._report.common import (
    as_dict,
    as_list,
    fmt_time,
    one_line,
)

# The keys of an entry the report keeps (no PEM, nothing else the module may add).
KEYS = ("generation", "role", "subject", "sha256", "serial", "authority", "revoked", "revoked_at",
        "reason", "crl", "crl_this_update", "crl_next_update")


def revocation_entries(value: Any) -> list[dict]:
    """The bundle module's ``revocation`` list, reduced to what the report shows."""
    out = []
    for item in as_list(value):
        entry = as_dict(item)
        if entry:
            out.append({k: entry.get(k) for k in KEYS})
    return out


def revocation_words(entry: Mapping) -> str:
    """One line: ``V4: revoked by the CRL of AC SNE V4 since <date>``, or not revoked, or unknown."""
    generation = one_line(entry.get("generation")) or "?"
    authority = one_line(entry.get("authority")) or "its authority"
    if entry.get("revoked") is True:
        since = fmt_time(entry.get("revoked_at"))
        text = "%s: revoked by the CRL of %s since %s" % (generation, authority, since)
        reason = one_line(entry.get("reason"))
        return text + (" (%s)" % reason.replace("_", " ") if reason else "")
    if entry.get("revoked") is False:
        text = "%s: not revoked by the CRL of %s" % (generation, authority)
        if entry.get("crl_next_update"):
            text += " (CRL current until %s)" % fmt_time(entry.get("crl_next_update"))
        return text
    return "%s: revocation not known (no CRL of %s given)" % (generation, authority)


def revocation_lines(report: Mapping) -> list[str]:
    """One line per entry of the report's ``revocation``, in its order (new generation first)."""
    return [revocation_words(entry) for entry in revocation_entries(report.get("revocation"))]
