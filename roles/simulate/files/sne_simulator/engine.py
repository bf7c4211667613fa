# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine every transport shares: decrypt, judge, log, schedule the return.

``Engine.submit`` never raises, whatever the bytes: a message is either dropped (revoked or
unknown generation, not CMS, undecryptable, too large: no return, as the SNE does) or answered
with an XML ``RetourAsynchrone`` (``judge_message`` lists its anomalies), delivered after
``delay_seconds`` or held until ``release`` (``backlog``). Every decision is a line of the
``EventLog``.
"""

from __future__ import annotations

import binascii
import dataclasses
import datetime as dt
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple
from xml.etree import ElementTree as ET

from cryptography.hazmat.primitives.serialization import pkcs7

from .cms import Asn1Error, extract_cms, parse_envelope
from .config import MAX_CMS_BYTES, MAX_INPUT_BYTES, MAX_LOG_ENTRIES, Config, updated

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SALVAGE_ID_RE = re.compile(rb"<MessageAsynchrone\b[^>]*?\sid\s*=\s*[\"']([^\"'<>&]{1,128})[\"']")
_MESSAGE_TYPES = ("TEST", "REJET_TEST")


def utc_now() -> str:
    """Current UTC time, ISO 8601 with milliseconds and a ``Z``."""
    now = dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)


# --------------------------------------------------------------------------------------------
# Messages and returns
# --------------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """What the SNE answers to a decrypted message."""

    message_id: Optional[str]
    anomalies: List[Tuple[str, str]] = field(default_factory=list)
    guichet: Optional[str] = None
    message_type: Optional[str] = None

    @property
    def status(self) -> str:
        return "REJETE" if self.anomalies else "ACCEPTE"


def _strip_mime_header(plaintext: bytes) -> bytes:
    """Content encrypted with S/MIME's Text option starts with ``Content-Type: text/plain``."""
    head = plaintext.lstrip()
    if head[:1] != b"<" and re.match(rb"^Content-[A-Za-z-]+:", head):
        for separator in (b"\r\n\r\n", b"\n\n"):
            if separator in head:
                return head.split(separator, 1)[1]
    return plaintext


def judge_message(plaintext: bytes) -> Verdict:
    """Check the XML message; every problem is an anomaly of a REJETE return."""
    text = _strip_mime_header(plaintext)
    salvaged = _SALVAGE_ID_RE.search(text)
    salvaged_id = salvaged.group(1).decode("ascii", "replace") if salvaged else None
    if salvaged_id is not None and not ID_RE.match(salvaged_id):
        salvaged_id = None
    upper = text.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        return Verdict(salvaged_id, [("XML_INVALIDE", "DTD et entités interdites")])
    try:
        root = ET.fromstring(text)
    except ET.ParseError as error:
        return Verdict(salvaged_id, [("XML_INVALIDE", "XML mal formé : %s" % error)])
    local = root.tag.rsplit("}", 1)[-1]
    raw_id = (root.get("id") or "").strip()
    message_id = raw_id if ID_RE.match(raw_id) else None
    if local != "MessageAsynchrone":
        return Verdict(message_id, [("RACINE_INVALIDE", "élément racine %s au lieu de MessageAsynchrone"
                                     % local[:64])])
    verdict = Verdict(message_id)
    if not raw_id:
        verdict.anomalies.append(("ID_ABSENT", "attribut id absent"))
    elif message_id is None:
        verdict.anomalies.append(("ID_INVALIDE", "id hors du motif [A-Za-z0-9][A-Za-z0-9._-]{0,127}"))
    children = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in root}
    verdict.guichet = children.get("Guichet") or None
    verdict.message_type = children.get("Type") or None
    if verdict.guichet is None:
        verdict.anomalies.append(("GUICHET_ABSENT", "élément Guichet absent ou vide"))
    if verdict.message_type is None:
        verdict.anomalies.append(("TYPE_ABSENT", "élément Type absent ou vide"))
    elif verdict.message_type == "REJET_TEST":
        verdict.anomalies.append(("REJET_TEST", "rejet demandé par le message de test"))
    elif verdict.message_type not in _MESSAGE_TYPES:
        verdict.anomalies.append(("TYPE_NON_SUPPORTE", "type %s non supporté" % verdict.message_type[:64]))
    return verdict


def build_return(verdict: Verdict, receipt: str, generation: str) -> bytes:
    attrs = {"id": verdict.message_id or "", "statut": verdict.status, "reception": receipt,
             "generation": generation, "horodatage": utc_now()}
    root = ET.Element("RetourAsynchrone", attrs)
    if verdict.guichet:
        ET.SubElement(root, "Guichet").text = verdict.guichet[:128]
    for code, libelle in verdict.anomalies:
        ET.SubElement(root, "Anomalie", {"code": code, "libelle": libelle[:256]})
    xml: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return xml + b"\n"


# --------------------------------------------------------------------------------------------
# Log and engine
# --------------------------------------------------------------------------------------------


class EventLog:
    """JSON lines in ``state_dir/simulator.log.jsonl``, the recent ones also kept in memory."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seq = 0
        self._recent: Deque[Dict[str, Any]] = deque(maxlen=MAX_LOG_ENTRIES)
        self._handle = open(path, "a", encoding="utf-8")

    def write(self, event: str, **fields: Any) -> Dict[str, Any]:
        with self._lock:
            self._seq += 1
            entry: Dict[str, Any] = {"seq": self._seq, "time": utc_now(), "event": event}
            entry.update(fields)
            self._recent.append(entry)
            if not self._handle.closed:
                self._handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
                self._handle.flush()
            return entry

    def entries(self, since: int = 0) -> List[Dict[str, Any]]:
        with self._lock:
            return [entry for entry in self._recent if entry["seq"] > since]

    def close(self) -> None:
        with self._lock:
            self._handle.close()


# deliver(key, xml) -> where it went (a path, "http", ...); ``key`` is the message id, or the
# receipt id when the message had no usable id.
Deliver = Callable[[str, bytes], str]


@dataclass
class Pending:
    receipt: str
    key: str
    xml: bytes
    transport: str
    deliver: Deliver
    due: float  # time.monotonic()
    held: bool  # waiting for POST /admin/release (backlog)


class Engine:
    """Shared by every transport: ``submit`` never raises, whatever the bytes."""

    def __init__(self, config: Config, log: EventLog) -> None:
        self.config = config
        self.log = log
        self._lock = threading.Condition()
        self._pending: List[Pending] = []
        self._counter = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._scheduler, name="sne-returns", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread.is_alive():
            self._thread.join(5)

    def new_receipt(self) -> str:
        with self._lock:
            self._counter += 1
            return "R%06d-%s" % (self._counter, secrets.token_hex(3))

    def drop(self, transport: str, receipt: str, reason: str, **context: Any) -> None:
        self.log.write("message", transport=transport, receipt=receipt, decision="dropped",
                       reason=reason, message_id=None, **context)

    def submit(self, data: bytes, transport: str, deliver: Deliver, **context: Any) -> str:
        receipt = self.new_receipt()
        try:
            self._process(data, transport, deliver, receipt, context)
        except Exception as error:  # one bad message never kills the server
            self.drop(transport, receipt, "internal error: %s: %s" % (type(error).__name__, error), **context)
        return receipt

    def _process(self, data: bytes, transport: str, deliver: Deliver, receipt: str,
                 context: Dict[str, Any]) -> None:
        context = dict(context, size=len(data))
        if len(data) > MAX_INPUT_BYTES:
            return self.drop(transport, receipt, "too large (%d bytes)" % len(data), **context)
        try:
            cms, container = extract_cms(data)
        except (ValueError, binascii.Error) as error:
            return self.drop(transport, receipt, "not a CMS message: %s" % error, **context)
        context["container"] = container
        if len(cms) > MAX_CMS_BYTES:
            return self.drop(transport, receipt, "CMS too large (%d bytes)" % len(cms), **context)
        try:
            envelope = parse_envelope(cms)
        except Asn1Error as error:
            return self.drop(transport, receipt, "not a CMS EnvelopedData: %s" % error, **context)
        context["recipients"] = [r.describe() for r in envelope.recipients]
        with self._lock:
            current, revoked = self.config.current, list(self.config.revoked)
            delay, backlog = self.config.delay_seconds, self.config.backlog
        if not any(current.matches(r) for r in envelope.recipients):
            for gen in revoked:
                if any(gen.matches(r) for r in envelope.recipients):
                    return self.drop(transport, receipt, "revoked generation %s, dropped" % gen.name,
                                     generation=gen.name, **context)
            return self.drop(transport, receipt, "unknown recipient (no configured generation), dropped",
                             **context)
        try:
            der = envelope.der_for(current.certificate)
            plaintext = pkcs7.pkcs7_decrypt_der(der, current.certificate, current.key, [])
        except Exception as error:
            reason = "undecryptable with generation %s: %s" % (current.name, error)
            return self.drop(transport, receipt, reason, generation=current.name, **context)
        verdict = judge_message(plaintext)
        xml = build_return(verdict, receipt, current.name)
        key = verdict.message_id or receipt
        pending = Pending(receipt, key, xml, transport, deliver, time.monotonic() + delay, backlog)
        self.log.write("message", transport=transport, receipt=receipt,
                       decision="accepted" if verdict.status == "ACCEPTE" else "rejected",
                       message_id=verdict.message_id, return_key=key, statut=verdict.status,
                       anomalies=[anomaly[0] for anomaly in verdict.anomalies], generation=current.name,
                       guichet=verdict.guichet, type=verdict.message_type,
                       held=backlog, delay_seconds=delay, **context)
        with self._lock:
            self._pending.append(pending)
            self._lock.notify_all()

    def _scheduler(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                now = time.monotonic()
                ready = [p for p in self._pending if not p.held and p.due <= now]
                if ready:
                    self._pending = [p for p in self._pending if p not in ready]
                else:
                    dues = [p.due - now for p in self._pending if not p.held]
                    self._lock.wait(min(dues + [1.0]))
                    continue
            for item in ready:
                self._deliver(item, None)

    def _deliver(self, item: Pending, batch: Optional[str]) -> None:
        try:
            where = item.deliver(item.key, item.xml)
        except Exception as error:
            self.log.write("return-failed", transport=item.transport, receipt=item.receipt,
                           return_key=item.key, error="%s: %s" % (type(error).__name__, error))
            return
        self.log.write("return", transport=item.transport, receipt=item.receipt, return_key=item.key,
                       delivered_to=where, batch=batch)

    def release(self) -> int:
        """Deliver every held return now, together (the 2016-01-04 catch-up); return how many."""
        with self._lock:
            held = [p for p in self._pending if p.held]
            self._pending = [p for p in self._pending if not p.held]
        batch = "release-%s" % secrets.token_hex(3)
        self.log.write("release", count=len(held), batch=batch)
        for item in held:
            self._deliver(item, batch)
        return len(held)

    def update(self, changes: Dict[str, Any]) -> Dict[str, Any]:
        """Apply ``POST /admin/config``: delay_seconds, backlog, current, revoked."""
        with self._lock:
            snapshot = dataclasses.replace(self.config)
        new = updated(snapshot, changes)
        with self._lock:
            self.config.current, self.config.revoked = new.current, new.revoked
            self.config.delay_seconds, self.config.backlog = new.delay_seconds, new.backlog
            self._lock.notify_all()
        status = self.status()
        keys = ("generation", "revoked", "delay_seconds", "backlog")
        self.log.write("config", **{k: status[k] for k in keys})
        return status

    def status(self) -> Dict[str, Any]:
        with self._lock:
            return {
                "generation": self.config.current.name,
                "current": self.config.current.describe(),
                "revoked": [gen.name for gen in self.config.revoked],
                "delay_seconds": self.config.delay_seconds,
                "backlog": self.config.backlog,
                "held": sum(1 for p in self._pending if p.held),
                "scheduled": sum(1 for p in self._pending if not p.held),
            }
