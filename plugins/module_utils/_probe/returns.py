# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The SNE's returns: reading a ``RetourAsynchrone``, and waiting for the returns of one
message or of a whole batch (``phase=await`` of sne.guichet.async_probe). Standard library only."""

from __future__ import annotations

import hashlib
import time
from typing import Any, Callable, Dict, List, Optional, Tuple
from xml.etree import ElementTree as ET

from ansible_collections.sne.guichet.plugins.module_utils._probe.transports import make_transport

# The only two statuts of a RetourAsynchrone (the SNE interface; the simulator role's engine.py).
ACCEPTED = "ACCEPTE"
REJECTED = "REJETE"


def parse_return(data: bytes) -> Optional[Dict[str, Any]]:
    """The attributes of a ``RetourAsynchrone`` document, or None if it is not one."""
    upper = data.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        return None
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return None
    if root.tag.rsplit("}", 1)[-1] != "RetourAsynchrone":
        return None
    anomalies = [{"code": item.get("code") or "", "label": item.get("libelle") or ""}
                 for item in root if item.tag.rsplit("}", 1)[-1] == "Anomalie"]
    guichet = None
    for item in root:
        if item.tag.rsplit("}", 1)[-1] == "Guichet":
            guichet = (item.text or "").strip()
    return {
        "id": root.get("id") or "",
        "statut": root.get("statut") or "",
        "reception": root.get("reception"),
        "generation": root.get("generation"),
        "horodatage": root.get("horodatage"),
        "guichet": guichet,
        "anomalies": anomalies,
    }


def error_result(result: Dict[str, Any], code: str, msg: str) -> Dict[str, Any]:
    result.update(status="error", code=code, msg=msg)
    return result


def transport_for(params: Dict[str, Any]) -> Any:
    name = params["transport"]
    return make_transport(name, dict(params[name]), float(params.get("connect_timeout") or 30))


def seconds_text(value: float) -> str:
    return ("%.3f" % value).rstrip("0").rstrip(".")


def await_return(params: Dict[str, Any], result: Dict[str, Any], transport: Any = None,
                 wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> Dict[str, Any]:
    """Phase two for one message: ``await_returns`` of ``[result]``."""
    return await_returns(params, [result], transport, wall, sleep)[0]


def await_returns(params: Dict[str, Any], results: List[Dict[str, Any]], transport: Any = None,
                  wall: Callable[[], float] = time.time,
                  sleep: Callable[[float], None] = time.sleep) -> List[Dict[str, Any]]:
    """Phase two: wait for the return of each ``result["message_id"]``, sent at
    ``result["sent_at"]`` (wall clock), until its ``sent_at + timeout``; every round looks for
    every message still awaited. Each result gets its outcome (``passed``, ``rejected``,
    ``timeout`` or ``error``) and ``elapsed``, counted from its sending to its conclusion.

    A wait that starts late (the other hosts of a batch sent and waited first) finds a return
    already there at its first look; it never waits longer than the timeout after the send.
    One wait over a whole batch's messages (from the controller) takes about the SNE's delay."""
    if transport is None:
        transport = transport_for(params)
        details = transport.describe()
        for result in results:
            result.setdefault("transport_details", details)
    timeout = float(params["timeout"])
    interval = float(params["poll_interval"])
    ignored: List[set] = [set() for result in results]
    pending = list(range(len(results)))
    while pending:
        still = []
        for index in pending:
            result = results[index]
            found = _look(transport, result["message_id"], ignored[index])
            result["ignored_returns"] = len(ignored[index])
            start = float(result["sent_at"])
            if found is not None:
                result["elapsed"] = round(max(0.0, wall() - start), 3)
                _conclude(result, found)
            elif wall() >= start + timeout:
                result["elapsed"] = round(max(0.0, wall() - start), 3)
                msg = ("no return for message %s within %s s: a message encrypted to a revoked or unknown "
                       "certificate is dropped by the SNE without any answer"
                       % (result["message_id"], seconds_text(timeout)))
                if transport.last_error:
                    msg += " (last problem while waiting: %s)" % transport.last_error
                result.update(status="timeout", msg=msg)
            else:
                still.append(index)
        pending = still
        if pending:
            next_deadline = min(float(results[i]["sent_at"]) + timeout for i in pending)
            sleep(max(0.0, min(interval, next_deadline - wall())))
    return results


def _look(transport: Any, message_id: str, ignored: set) -> Optional[Tuple[Dict[str, Any], bytes]]:
    """The return of ``message_id`` among what the transport holds now; others go to ``ignored``."""
    for candidate in transport.poll(message_id):
        parsed = parse_return(candidate)
        if parsed is not None and parsed["id"] == message_id:
            return parsed, candidate
        ignored.add(hashlib.sha256(candidate).hexdigest())
    return None


def _conclude(result: Dict[str, Any], found: Tuple[Dict[str, Any], bytes]) -> None:
    message_id = result["message_id"]
    parsed, raw = found
    result["return_xml"] = raw.decode("utf-8", "replace")
    keys = ("statut", "reception", "generation", "horodatage", "guichet")
    result["return_info"] = {k: parsed[k] for k in keys}
    anomalies = parsed["anomalies"]
    if parsed["statut"] == ACCEPTED:
        result.update(status="passed", msg="message %s accepted by the SNE (generation %s) after %s s"
                      % (message_id, parsed["generation"] or "?", seconds_text(result["elapsed"])))
    elif parsed["statut"] == REJECTED:
        result["anomaly"] = anomalies[0] if anomalies else {"code": "", "label": ""}
        result["anomalies"] = anomalies
        described = "; ".join("%s (%s)" % (a["code"], a["label"]) for a in anomalies)
        result.update(status="rejected", msg="message %s rejected by the SNE: %s"
                      % (message_id, described or "no anomaly given"))
    else:  # never a pass: only ACCEPTE says the SNE could decrypt and accept the message
        error_result(result, "return", "unknown statut %r in the SNE's return of message %s (expected %s "
                     "or %s): nothing can be concluded" % (parsed["statut"], message_id, ACCEPTED, REJECTED))


# Which status a batch takes when its messages did not all pass: the one that most needs a look.
_BATCH_ORDER = ("error", "rejected", "timeout", "passed")


def await_batch(params: Dict[str, Any]) -> Dict[str, Any]:
    """``phase=await`` with ``messages``: one wait for them all; ``awaited`` by message id."""
    results = [{"changed": False, "status": "error", "transport": params["transport"],
                "message_id": item["message_id"], "sent_at": float(item["sent_at"]),
                "host_label": item.get("host")} for item in params["messages"]]
    await_returns(params, results)
    counts: Dict[str, int] = {}
    for result in results:
        counts[result["status"]] = counts.get(result["status"], 0) + 1
    status = next(s for s in _BATCH_ORDER if counts.get(s) or s == "passed")
    described = ", ".join("%d %s" % (counts[s], s) for s in _BATCH_ORDER if counts.get(s))
    return {"changed": False, "status": status, "transport": params["transport"], "warnings_": [],
            "awaited": {r["message_id"]: r for r in results}, "counts": counts,
            "msg": "%d message(s) awaited together: %s" % (len(results), described)}
