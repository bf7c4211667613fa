# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters sne.guichet.probe_outcome and sne.guichet.probe_pending (documented in
probe_outcome.yml and probe_pending.yml)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

# What a registered result carries that is not the probe's (Ansible's own keys).
_ANSIBLE_KEYS = ("invocation", "changed", "failed", "skipped", "skip_reason", "false_condition",
                 "_ansible_no_log", "_ansible_delegated_vars", "warnings", "deprecations")


def _ran(result: Optional[Dict[str, Any]]) -> bool:
    return isinstance(result, dict) and bool(result) and not result.get("skipped")


def _the_send(sent: Optional[Dict[str, Any]], sent_by_controller: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    return dict(sent_by_controller) if _ran(sent_by_controller) else dict(sent or {})


def _from_batch(batch: Dict[str, Any], message_id: Optional[str]) -> Dict[str, Any]:
    """This message's part of a batch wait (one await run with ``messages`` for the batch)."""
    awaited = batch.get("awaited")
    if isinstance(awaited, dict) and message_id in awaited:
        return awaited[message_id]
    reason = batch.get("msg") or "the batch wait did not return this message"
    return {"failed": True, "msg": "the batch wait on the controller: %s" % reason}


def probe_outcome(sent: Optional[Dict[str, Any]], awaited: Optional[Dict[str, Any]] = None,
                  sent_by_controller: Optional[Dict[str, Any]] = None,
                  awaited_by_controller: Optional[Dict[str, Any]] = None,
                  batch: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """One probe result from the two phases (the host's, or the controller's when it sent).

    The send's result (certificate, envelope, message) completed by the wait's (status,
    return, elapsed): the host's (or the controller's) own wait, or its message's part of the
    ``batch`` wait when that ran. A wait that could not run (host unreachable, module failure)
    is an ``error``, never the send's ``sent``: only a return proves the certificate works."""
    by_controller = _ran(sent_by_controller)
    send = _the_send(sent, sent_by_controller)
    wait = awaited_by_controller if by_controller else awaited
    if _ran(batch) and send.get("status") == "sent":
        wait = _from_batch(batch, send.get("message_id"))  # type: ignore[arg-type]
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


def probe_pending(hostvars: Mapping[str, Any], hosts: Sequence[str]) -> List[Dict[str, Any]]:
    """The messages sent by ``hosts`` (their own send, or the controller's for them), for one
    batch wait: ``[{message_id, sent_at, host}]``; a host that sent nothing is not in it."""
    pending = []
    for host in hosts:
        facts = hostvars[host]
        send = _the_send(facts.get("__async_check_sent"), facts.get("__async_check_sent_by_controller"))
        if send.get("status") == "sent" and send.get("message_id") and send.get("sent_at"):
            pending.append({"message_id": send["message_id"], "sent_at": send["sent_at"], "host": host})
    return pending


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {"probe_outcome": probe_outcome, "probe_pending": probe_pending}
