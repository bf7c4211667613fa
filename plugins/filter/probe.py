# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filter sne.guichet.probe_outcome (documented in probe_outcome.yml)."""

from __future__ import annotations

from typing import Any, Dict, Optional

# What a registered result carries that is not the probe's (Ansible's own keys).
_ANSIBLE_KEYS = ("invocation", "changed", "failed", "skipped", "skip_reason", "false_condition",
                 "_ansible_no_log", "_ansible_delegated_vars", "warnings", "deprecations")


def _ran(result: Optional[Dict[str, Any]]) -> bool:
    return isinstance(result, dict) and bool(result) and not result.get("skipped")


def probe_outcome(sent: Optional[Dict[str, Any]], awaited: Optional[Dict[str, Any]] = None,
                  sent_by_controller: Optional[Dict[str, Any]] = None,
                  awaited_by_controller: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """One probe result from the two phases (the host's, or the controller's when it sent).

    The send's result (certificate, envelope, message) completed by the wait's (status,
    return, elapsed). A wait that could not run (host unreachable, module failure) is an
    ``error``, never the send's ``sent``: only a return proves the certificate works."""
    by_controller = _ran(sent_by_controller)
    send = dict(sent_by_controller if by_controller else (sent or {}))
    wait = awaited_by_controller if by_controller else awaited
    if send.get("status") != "sent":
        outcome = send
    elif not _ran(wait):
        outcome = dict(send, status="error", code="await",
                       msg="message %s was sent but its return could not be awaited%s"
                       % (send.get("message_id", "?"),
                          ": %s" % wait.get("msg") if isinstance(wait, dict) and wait.get("msg") else ""))
    else:
        outcome = dict(send)
        outcome.update(wait)
        if wait.get("unreachable") or (wait.get("failed") and "status" not in wait):
            outcome.update(status="error", code="await",
                           msg="message %s was sent but its return could not be awaited: %s"
                           % (send.get("message_id", "?"), wait.get("msg", "")))
    for key in _ANSIBLE_KEYS:
        outcome.pop(key, None)
    if by_controller:
        outcome["probed_from"] = "controller"
    return outcome


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {"probe_outcome": probe_outcome}
