"""SNE simulator: the asynchronous side of the national registration system, on loopback.

Guichets send CMS EnvelopedData messages encrypted with the ministry's encryption certificate.
The simulator decrypts them with the *current* generation's private key and sends back an XML
return; a message encrypted to a *revoked* generation is dropped without any return, as the
SNE did after V4 was revoked on 2016-01-07 (newsletter #37). Three transports share one engine:
HTTP (``POST /messages``, ``GET /returns/<id>``), SMTP (S/MIME mail in, returns into a Maildir)
and a drop folder (``outbox/*.p7m`` in, ``inbox/<id>.xml`` out). See ``simulator/README.md``.

Usage::

    python simulator/sne_simulator.py start --config CONFIG.json --state-dir DIR [--lifetime S]
    python simulator/sne_simulator.py stop --state-dir DIR
    python simulator/sne_simulator.py status --state-dir DIR
    python simulator/sne_simulator.py run --config CONFIG.json --state-dir DIR   # foreground

Test and demo tool only: it binds to 127.0.0.1, has no authentication, and holds private keys.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import datetime as dt
import email
import email.policy
import email.utils
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree as ET

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7

HOST = "127.0.0.1"
MAX_CMS_BYTES = 1024 * 1024  # a decoded CMS structure larger than this is dropped
MAX_INPUT_BYTES = 2 * 1024 * 1024  # raw transport payload (HTTP body, mail, file): base64 + headers
MAX_ADMIN_BYTES = 64 * 1024
MAX_KEPT_RETURNS = 10000  # HTTP returns kept in memory (oldest forgotten first)
MAX_LOG_ENTRIES = 10000  # log entries kept in memory for GET /admin/log (the file keeps all)
STATE_FILE = "simulator.json"
LOG_FILE = "simulator.log.jsonl"
OUT_FILE = "simulator.out"
DEFAULT_LIFETIME = 3600.0
DEFAULT_DOMAIN = "sne.test"

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SALVAGE_ID_RE = re.compile(rb"<MessageAsynchrone\b[^>]*?\sid\s*=\s*[\"']([^\"'<>&]{1,128})[\"']")
_ADDRESS_RE = re.compile(r"^[a-z0-9._%+-]{1,64}@[a-z0-9.-]{1,190}$")
_MESSAGE_TYPES = ("TEST", "REJET_TEST")


def utc_now() -> str:
    """Current UTC time, ISO 8601 with milliseconds and a ``Z``."""
    now = dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)


# --------------------------------------------------------------------------------------------
# Minimal BER/DER reader: enough of CMS to read the RecipientInfos and to turn BER
# (indefinite lengths, constructed OCTET STRINGs, as streaming encoders write) into the DER
# that cryptography's pkcs7_decrypt_der accepts.
# --------------------------------------------------------------------------------------------


class Asn1Error(ValueError):
    """The input is not the BER/DER structure expected."""


@dataclass
class Node:
    """One TLV: ``children`` is None for a primitive (then ``value`` is its content)."""

    tag: int
    value: bytes = b""
    children: Optional[List[Node]] = None

    def kids(self) -> List[Node]:
        if self.children is None:
            raise Asn1Error("tag 0x%02x: constructed value expected" % self.tag)
        return self.children


def _parse(data: bytes, pos: int, depth: int) -> Tuple[Node, int]:
    if depth > 48:
        raise Asn1Error("nesting too deep")
    if pos + 2 > len(data):
        raise Asn1Error("truncated")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise Asn1Error("high tag numbers are not used by CMS EnvelopedData")
    first = data[pos + 1]
    pos += 2
    constructed = bool(tag & 0x20)
    if first == 0x80:  # indefinite length: children up to the end-of-contents octets
        if not constructed:
            raise Asn1Error("indefinite length on a primitive value")
        children: List[Node] = []
        while True:
            if pos + 2 > len(data):
                raise Asn1Error("truncated (no end-of-contents)")
            if data[pos] == 0 and data[pos + 1] == 0:
                return Node(tag, children=children), pos + 2
            child, pos = _parse(data, pos, depth + 1)
            children.append(child)
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise Asn1Error("bad length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    else:
        length = first
    end = pos + length
    if end > len(data):
        raise Asn1Error("truncated")
    if not constructed:
        return Node(tag, value=data[pos:end]), end
    children = []
    while pos < end:
        child, pos = _parse(data, pos, depth + 1)
        children.append(child)
    if pos != end:
        raise Asn1Error("a value overruns its parent")
    return Node(tag, children=children), end


def _encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _encode(node: Node) -> bytes:
    """Definite-length encoding of ``node``."""
    if node.children is None:
        content = node.value
    else:
        content = b"".join(_encode(child) for child in node.children)
    return bytes([node.tag]) + _encode_length(len(content)) + content


def _flatten(node: Node) -> bytes:
    """Content of a (possibly constructed, BER) string value."""
    if node.children is None:
        return node.value
    return b"".join(_flatten(child) for child in node.children)


def _to_der_strings(node: Node) -> None:
    """Constructed OCTET STRINGs (BER) become primitive ones, as DER requires."""
    if node.children is None:
        return
    for index, child in enumerate(node.children):
        if child.tag == 0x24:
            node.children[index] = Node(0x04, value=_flatten(child))
        else:
            _to_der_strings(child)


_OID_ENVELOPED_DATA = bytes.fromhex("2a864886f70d010703")  # 1.2.840.113549.1.7.3
_NAME_OIDS = {
    bytes.fromhex("550403"): "CN", bytes.fromhex("55040a"): "O", bytes.fromhex("55040b"): "OU",
    bytes.fromhex("550406"): "C", bytes.fromhex("550407"): "L", bytes.fromhex("550408"): "ST",
}


def _name_text(name: Node) -> str:
    """RFC 4514-like text of a DER Name (most specific first, as cryptography prints it)."""
    parts: List[str] = []
    for rdn in name.kids():
        for atv in rdn.kids():
            oid, value = atv.kids()[0], atv.kids()[1]
            label = _NAME_OIDS.get(oid.value, "OID." + oid.value.hex())
            raw = _flatten(value)
            text = raw.decode("utf-16-be", "replace") if value.tag == 0x1E else raw.decode("utf-8", "replace")
            parts.append("%s=%s" % (label, text))
    return ",".join(reversed(parts))


@dataclass
class Recipient:
    """Who a KeyTransRecipientInfo designates: issuer + serial, or a subject key identifier."""

    kind: str  # "issuer_serial", "ski" or "other"
    issuer_der: bytes = b""
    issuer: str = ""
    serial: Optional[int] = None
    ski: bytes = b""

    def describe(self) -> Dict[str, Any]:
        if self.kind == "issuer_serial":
            return {"issuer": self.issuer, "serial_hex": "%X" % (self.serial or 0)}
        if self.kind == "ski":
            return {"subject_key_identifier": self.ski.hex().upper()}
        return {"kind": "other (not key transport)"}


@dataclass
class Envelope:
    der: bytes  # DER, ready for pkcs7_decrypt_der
    recipients: List[Recipient]
    root: Optional[Node] = None
    recipient_infos: Optional[Node] = None

    def der_for(self, certificate: x509.Certificate) -> bytes:
        """DER for decrypting with ``certificate``'s key.

        cryptography's pkcs7_decrypt_der only looks recipients up by issuer and serial number:
        a KeyTransRecipientInfo naming ``certificate`` by subject key identifier (``openssl cms
        -keyid``) is rewritten to name it by issuer and serial (version 2 -> 0).
        """
        ski = _subject_key_identifier(certificate)
        if self.root is None or self.recipient_infos is None:
            return self.der
        if not any(r.kind == "ski" and r.ski == ski for r in self.recipients):
            return self.der
        issuer = _parse(certificate.issuer.public_bytes(), 0, 0)[0]
        serial = certificate.serial_number
        serial_node = Node(0x02, value=serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True))
        for info in self.recipient_infos.kids():
            kids = info.kids() if info.tag == 0x30 else []
            if len(kids) > 1 and kids[1].tag == 0x80 and kids[1].value == ski:
                kids[0] = Node(0x02, value=b"\x00")
                kids[1] = Node(0x30, children=[issuer, serial_node])
        self.recipient_infos.children = sorted(self.recipient_infos.kids(), key=_encode)
        return _encode(self.root)


def parse_envelope(data: bytes) -> Envelope:
    """Read a CMS ContentInfo holding EnvelopedData (BER or DER); raise Asn1Error otherwise."""
    root, end = _parse(data, 0, 0)
    if data[end:].strip(b"\x00\r\n\t "):
        raise Asn1Error("trailing data after the CMS structure")
    top = root.kids()
    if root.tag != 0x30 or len(top) < 2 or top[0].tag != 0x06 or top[0].value != _OID_ENVELOPED_DATA:
        raise Asn1Error("not a CMS EnvelopedData ContentInfo")
    if top[1].tag != 0xA0 or len(top[1].kids()) != 1:
        raise Asn1Error("bad ContentInfo content")
    env = top[1].kids()[0]
    fields = env.kids()
    index = 1
    if len(fields) > index and fields[index].tag == 0xA0:  # originatorInfo
        index += 1
    if len(fields) < index + 2 or fields[index].tag != 0x31 or fields[index + 1].tag != 0x30:
        raise Asn1Error("bad EnvelopedData")
    rinfos, eci = fields[index], fields[index + 1]
    recipients = [_recipient(info) for info in rinfos.kids()]
    if not recipients:
        raise Asn1Error("no RecipientInfo")
    parts = eci.kids()
    if len(parts) > 2 and parts[2].tag == 0xA0:  # encryptedContent [0] IMPLICIT, constructed (BER)
        parts[2] = Node(0x80, value=_flatten(parts[2]))
    _to_der_strings(root)
    rinfos.children = sorted(rinfos.kids(), key=_encode)  # DER orders SET OF
    return Envelope(_encode(root), recipients, root, rinfos)


def _recipient(info: Node) -> Recipient:
    if info.tag != 0x30:  # kari [1], kekri [2], pwri [3], ori [4]
        return Recipient("other")
    rid = info.kids()[1]
    if rid.tag == 0x30:
        issuer, serial = rid.kids()[0], rid.kids()[1]
        return Recipient("issuer_serial", issuer_der=_encode(issuer), issuer=_name_text(issuer),
                         serial=int.from_bytes(serial.value, "big", signed=True))
    if rid.tag == 0x80:
        return Recipient("ski", ski=rid.value)
    return Recipient("other")


def extract_cms(data: bytes) -> Tuple[bytes, str]:
    """The CMS bytes carried by ``data`` (DER/BER, PEM, or an S/MIME entity) and the container."""
    stripped = data.lstrip()
    if stripped[:1] == b"\x30":
        return stripped, "der"
    if stripped.startswith(b"-----BEGIN "):
        match = re.search(rb"-----BEGIN [A-Z0-9 ]+-----(.*?)-----END [A-Z0-9 ]+-----", stripped, re.S)
        if not match:
            raise ValueError("unterminated PEM block")
        return base64.b64decode(b"".join(match.group(1).split()), validate=True), "pem"
    if re.match(rb"^[A-Za-z][A-Za-z0-9-]*:", stripped):
        message = email.message_from_bytes(stripped, policy=email.policy.compat32)
        for part in message.walk():
            if part.get_content_type() in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes) and payload:
                    return payload, "smime"
        raise ValueError("no application/pkcs7-mime part in the MIME entity")
    raise ValueError("neither DER, PEM nor S/MIME")


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
# Configuration
# --------------------------------------------------------------------------------------------


class ConfigError(ValueError):
    """The configuration cannot be used."""


@dataclass
class Generation:
    name: str
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey
    certificate_path: str

    def matches(self, recipient: Recipient) -> bool:
        if recipient.kind == "issuer_serial":
            return (recipient.serial == self.certificate.serial_number
                    and recipient.issuer_der == self.certificate.issuer.public_bytes())
        if recipient.kind == "ski":
            return recipient.ski == _subject_key_identifier(self.certificate)
        return False

    def describe(self) -> Dict[str, Any]:
        return {"generation": self.name, "certificate": self.certificate_path,
                "serial_hex": "%X" % self.certificate.serial_number,
                "issuer": self.certificate.issuer.rfc4514_string()}


def _subject_key_identifier(certificate: x509.Certificate) -> bytes:
    try:
        ext = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return ext.value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_CMS_BYTES)
    except OSError as error:
        raise ConfigError("cannot read %s: %s" % (path, error))


def load_generation(spec: Any, base: str) -> Generation:
    if not isinstance(spec, dict):
        raise ConfigError("a generation must be an object with generation, certificate, key")
    name, cert_path, key_path = spec.get("generation"), spec.get("certificate"), spec.get("key")
    if not (isinstance(name, str) and name and isinstance(cert_path, str) and isinstance(key_path, str)):
        raise ConfigError("generation, certificate and key are required strings: %r" % (spec,))
    cert_path = os.path.join(base, cert_path)
    key_path = os.path.join(base, key_path)
    raw = _read(cert_path)
    try:
        cert = (x509.load_pem_x509_certificate(raw) if b"-----BEGIN" in raw
                else x509.load_der_x509_certificate(raw))
    except ValueError as error:
        raise ConfigError("%s: not a certificate: %s" % (cert_path, error))
    raw = _read(key_path)
    password = spec.get("password")
    secret = password.encode("utf-8") if isinstance(password, str) else None
    try:
        key = (serialization.load_pem_private_key(raw, secret) if b"-----BEGIN" in raw
               else serialization.load_der_private_key(raw, secret))
    except (ValueError, TypeError) as error:
        raise ConfigError("%s: cannot load the private key: %s" % (key_path, error))
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError("%s: only RSA keys are supported (CMS key transport)" % key_path)
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or public != key.public_key():
        raise ConfigError("%s does not match the key %s" % (cert_path, key_path))
    return Generation(name, cert, key, cert_path)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError("%s must be a number >= 0" % what)
    return float(value)


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError("%s must be true or false" % what)
    return value


@dataclass
class Config:
    base: str  # folder of the config file: relative paths start there
    current: Generation
    revoked: List[Generation]
    delay_seconds: float = 0.0
    backlog: bool = False
    http_port: int = 0
    smtp_port: Optional[int] = None  # None: no SMTP transport
    smtp_domain: str = DEFAULT_DOMAIN
    outbox: Optional[str] = None  # None: no folder transport
    inbox: Optional[str] = None
    poll_seconds: float = 0.2


def _port(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigError("%s must be a port number (0: any free port)" % what)
    return value


def load_config(path: str) -> Config:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as error:
        raise ConfigError("cannot read the configuration %s: %s" % (path, error))
    if not isinstance(data, dict):
        raise ConfigError("the configuration must be a JSON object")
    base = os.path.dirname(os.path.abspath(path))
    revoked = data.get("revoked", [])
    if not isinstance(revoked, list):
        raise ConfigError("revoked must be a list")
    config = Config(base, load_generation(data.get("current"), base),
                    [load_generation(item, base) for item in revoked])
    config.delay_seconds = _number(data.get("delay_seconds", 0), "delay_seconds")
    config.backlog = _bool(data.get("backlog", False), "backlog")
    transports = data.get("transports", {"http": {}})
    if not isinstance(transports, dict):
        raise ConfigError("transports must be an object")
    http = transports.get("http") or {}
    config.http_port = _port(http.get("port", 0), "transports.http.port")
    smtp = transports.get("smtp")
    if smtp is not None:
        config.smtp_port = _port(smtp.get("port", 0), "transports.smtp.port")
        domain = str(smtp.get("domain", DEFAULT_DOMAIN)).lower()
        if not re.match(r"^[a-z0-9.-]{1,190}$", domain):
            raise ConfigError("transports.smtp.domain: bad domain %r" % domain)
        config.smtp_domain = domain
    folder = transports.get("folder")
    if folder is not None:
        if not isinstance(folder.get("outbox"), str) or not isinstance(folder.get("inbox"), str):
            raise ConfigError("transports.folder needs outbox and inbox folders")
        config.outbox = os.path.join(base, folder["outbox"])
        config.inbox = os.path.join(base, folder["inbox"])
        config.poll_seconds = max(0.02, _number(folder.get("poll_seconds", 0.2), "poll_seconds"))
    _check_generations(config.current, config.revoked)
    return config


def _check_generations(current: Generation, revoked: List[Generation]) -> None:
    names = [current.name] + [gen.name for gen in revoked]
    if len(set(names)) != len(names):
        raise ConfigError("generation names must be distinct: %s" % names)


# --------------------------------------------------------------------------------------------
# Engine: decide, log, schedule returns
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
        unknown = set(changes) - {"delay_seconds", "backlog", "current", "revoked"}
        if unknown:
            raise ConfigError("unknown settings: %s" % ", ".join(sorted(unknown)))
        with self._lock:
            current, revoked = self.config.current, self.config.revoked
        if "current" in changes:
            current = load_generation(changes["current"], self.config.base)
        if "revoked" in changes:
            if not isinstance(changes["revoked"], list):
                raise ConfigError("revoked must be a list")
            revoked = [load_generation(item, self.config.base) for item in changes["revoked"]]
        _check_generations(current, revoked)
        delay = _number(changes.get("delay_seconds", self.config.delay_seconds), "delay_seconds")
        backlog = _bool(changes.get("backlog", self.config.backlog), "backlog")
        with self._lock:
            self.config.current, self.config.revoked = current, revoked
            self.config.delay_seconds, self.config.backlog = delay, backlog
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


# --------------------------------------------------------------------------------------------
# Transports
# --------------------------------------------------------------------------------------------


def atomic_write(folder: str, name: str, data: bytes) -> str:
    """Write ``folder/name`` through a hidden temporary file in the same folder, fsync, rename."""
    path = os.path.join(folder, name)
    temp = os.path.join(folder, ".%s.%d.%s.tmp" % (name, os.getpid(), secrets.token_hex(4)))
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return path


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: Tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        super().__init__(address, _HttpHandler)


class _HttpHandler(BaseHTTPRequestHandler):
    server_version = "SNE-simulator/1"
    timeout = 15  # seconds a client may stall

    @property
    def sim(self) -> Simulator:
        server = self.server
        assert isinstance(server, _HttpServer)
        return server.simulator

    def log_message(self, format: str, *args: Any) -> None:
        return  # the simulator's own JSON log says what matters

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, value: Any) -> None:
        body = (json.dumps(value, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
        self._send(code, body, "application/json")

    def _body(self, limit: int) -> Optional[bytes]:
        """The request body, or None after answering 411/413/400."""
        self.close_connection = True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._json(411, {"error": "Content-Length required"})
            return None
        raw = self.headers.get("Content-Length")
        if raw is None or not raw.strip().isdigit():
            self._json(411, {"error": "Content-Length required"})
            return None
        length = int(raw)
        if length > limit:
            if length <= 4 * limit:  # read it (bounded) so the client sees the 413, not a broken pipe
                while length > 0:
                    chunk = self.rfile.read(min(length, 65536))
                    if not chunk:
                        break
                    length -= len(chunk)
            self._json(413, {"error": "body larger than %d bytes" % limit})
            return None
        return self.rfile.read(length)

    def _route(self, method: str) -> None:
        try:
            url = urlsplit(self.path)
            path = url.path
            sim = self.sim
            if method == "GET" and path.startswith("/returns/"):
                xml = sim.http_return(unquote(path[len("/returns/"):]))
                if xml is None:
                    self._json(404, {"error": "no return"})
                else:
                    self._send(200, xml, "application/xml; charset=utf-8")
            elif method == "POST" and path == "/messages":
                body = self._body(MAX_INPUT_BYTES)
                if body is not None:
                    receipt = sim.engine.submit(body, "http", sim.deliver_http,
                                                content_type=self.headers.get("Content-Type"))
                    self._json(202, {"id": receipt})
            elif method == "GET" and path == "/health":
                self._json(200, {"status": "ok"})
            elif method == "GET" and path == "/admin/log":
                since = parse_qs(url.query).get("since", ["0"])[0]
                self._json(200, sim.log.entries(int(since) if since.isdigit() else 0))
            elif method == "GET" and path == "/admin/status":
                self._json(200, sim.engine.status())
            elif method == "POST" and path == "/admin/release":
                if self._body(MAX_ADMIN_BYTES) is not None:
                    self._json(200, {"released": sim.engine.release()})
            elif method == "POST" and path == "/admin/config":
                body = self._body(MAX_ADMIN_BYTES)
                if body is not None:
                    try:
                        changes = json.loads(body.decode("utf-8") or "{}")
                        if not isinstance(changes, dict):
                            raise ConfigError("a JSON object is expected")
                        self._json(200, sim.engine.update(changes))
                    except (ValueError, ConfigError) as error:
                        self._json(400, {"error": str(error)})
            else:
                self._json(404 if method == "GET" else 405, {"error": "unknown endpoint"})
        except (ConnectionError, socket.timeout):
            self.close_connection = True
        except Exception as error:  # one bad request never kills the server
            message = "%s: %s" % (type(error).__name__, error)
            self.sim.log.write("http-error", error=message, path=self.path[:200])
            try:
                self._json(500, {"error": "internal error"})
            except OSError:
                self.close_connection = True

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")


class _SmtpHandler:
    """aiosmtpd handler: one recipient, ``sne@<domain>``; the mail body goes to the engine."""

    def __init__(self, simulator: Simulator, address: str) -> None:
        self.simulator = simulator
        self.address = address

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: List[str]) -> str:
        if address.lower() != self.address:
            return "550 5.1.1 <%s>: no such mailbox here (only %s)" % (address, self.address)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        sender = (envelope.mail_from or "").strip().lower()
        header = email.message_from_bytes(data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0] + b"\n\n",
                                          policy=email.policy.compat32)
        mail_id = header.get("Message-ID")
        loop = asyncio.get_running_loop()
        receipt = await loop.run_in_executor(None, self._submit, data, sender, mail_id)
        return "250 2.0.0 OK %s" % receipt

    def _submit(self, data: bytes, sender: str, mail_id: Optional[str]) -> str:
        sim = self.simulator

        def deliver(key: str, xml: bytes) -> str:
            return sim.deliver_maildir(sender, key, xml, mail_id)

        return sim.engine.submit(data, "smtp", deliver, mail_from=sender, mail_message_id=mail_id)


def _smtp_controller(handler: _SmtpHandler, port: int, domain: str) -> Any:
    """An aiosmtpd Controller on 127.0.0.1 that also works with ``port=0`` (ephemeral)."""
    from aiosmtpd.controller import Controller

    class _Controller(Controller):
        def _create_server(self) -> Any:
            create = super()._create_server()

            async def bind() -> Any:
                server: Any = await create
                self.port = server.sockets[0].getsockname()[1]
                return server

            return bind()

    return _Controller(handler, hostname=HOST, port=port, server_hostname=domain,
                       data_size_limit=MAX_INPUT_BYTES, ready_timeout=10.0)


class FolderWatcher:
    """Polls ``outbox`` for ``*.p7m``; a file is taken once its size and mtime held for one poll."""

    def __init__(self, simulator: Simulator, outbox: str, inbox: str, poll: float) -> None:
        self.simulator = simulator
        self.outbox, self.inbox, self.poll = outbox, inbox, poll
        self.processed = os.path.join(outbox, "processed")
        self._seen: Dict[str, Tuple[int, int]] = {}
        self._failed: Dict[str, Tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sne-folder", daemon=True)

    def start(self) -> None:
        for folder in (self.outbox, self.inbox, self.processed):
            os.makedirs(folder, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.scan()
            except Exception as error:  # keep polling whatever happens
                self.simulator.log.write("folder-error", error="%s: %s" % (type(error).__name__, error))

    def scan(self) -> None:
        seen: Dict[str, Tuple[int, int]] = {}
        for entry in sorted(os.scandir(self.outbox), key=lambda e: e.name):
            if entry.name.startswith(".") or not entry.name.lower().endswith(".p7m"):
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            stat = entry.stat(follow_symlinks=False)
            signature = (stat.st_size, stat.st_mtime_ns)
            if self._failed.get(entry.name) == signature:
                continue
            if self._seen.get(entry.name) != signature:
                seen[entry.name] = signature  # still being written, maybe: next poll
                continue
            self._take(entry.name, stat.st_size, signature)
        self._seen = seen

    def _take(self, name: str, size: int, signature: Tuple[int, int]) -> None:
        source = os.path.join(self.outbox, name)
        data: Optional[bytes] = None
        if size <= MAX_INPUT_BYTES:
            with open(source, "rb") as handle:
                data = handle.read(MAX_INPUT_BYTES + 1)
        target = os.path.join(self.processed, name)
        if os.path.exists(target):
            stem, ext = os.path.splitext(name)
            target = os.path.join(self.processed, "%s.%d%s" % (stem, time.time_ns(), ext))
        try:
            os.replace(source, target)
        except OSError as error:
            self._failed[name] = signature
            self.simulator.log.write("folder-error", file=name, error="cannot move to processed/: %s" % error)
        engine = self.simulator.engine
        if data is None:
            engine.drop("folder", engine.new_receipt(), "too large (%d bytes)" % size, file=name)
            return
        engine.submit(data, "folder", self.deliver, file=name, processed=target)

    def deliver(self, key: str, xml: bytes) -> str:
        return atomic_write(self.inbox, key + ".xml", xml)


# --------------------------------------------------------------------------------------------
# The simulator process
# --------------------------------------------------------------------------------------------


class Simulator:
    def __init__(self, config: Config, state_dir: str, lifetime: float = DEFAULT_LIFETIME,
                 config_path: str = "") -> None:
        self.config = config
        self.config_path = config_path
        self.state_dir = os.path.abspath(state_dir)
        self.lifetime = lifetime
        os.makedirs(self.state_dir, exist_ok=True)
        self.maildir = os.path.join(self.state_dir, "maildir")
        self.log = EventLog(os.path.join(self.state_dir, LOG_FILE))
        self.engine = Engine(config, self.log)
        self.stop_event = threading.Event()
        self._returns: OrderedDict[str, bytes] = OrderedDict()
        self._returns_lock = threading.Lock()
        self._maildir_counter = 0
        self._http: Optional[_HttpServer] = None
        self._http_thread: Optional[threading.Thread] = None
        self._smtp: Any = None
        self._folder: Optional[FolderWatcher] = None
        self.info: Dict[str, Any] = {}

    # -- deliveries ---------------------------------------------------------------------------
    def deliver_http(self, key: str, xml: bytes) -> str:
        with self._returns_lock:
            self._returns[key] = xml
            self._returns.move_to_end(key)
            while len(self._returns) > MAX_KEPT_RETURNS:
                self._returns.popitem(last=False)
        return "GET /returns/" + key

    def http_return(self, key: str) -> Optional[bytes]:
        with self._returns_lock:
            return self._returns.get(key)

    def deliver_maildir(self, address: str, key: str, xml: bytes, in_reply_to: Optional[str]) -> str:
        if not _ADDRESS_RE.match(address) or ".." in address:
            raise ValueError("no usable envelope sender (%r) to send the return to" % address)
        box = os.path.join(self.maildir, address)
        if not os.path.isdir(box):
            # Build the Maildir under a hidden name and rename it into place, so a reader
            # never sees a box with new/ but not yet cur/.
            os.makedirs(self.maildir, exist_ok=True)
            building = tempfile.mkdtemp(prefix=".building-", dir=self.maildir)
            for sub in ("tmp", "new", "cur"):
                os.mkdir(os.path.join(building, sub))
            try:
                os.rename(building, box)
            except OSError:  # another delivery made it first
                shutil.rmtree(building, ignore_errors=True)
        domain = self.config.smtp_domain
        mail = EmailMessage()
        mail["From"] = "sne@" + domain
        mail["To"] = address
        mail["Subject"] = "RETOUR " + key
        mail["Date"] = email.utils.formatdate(usegmt=True)
        mail["Message-ID"] = email.utils.make_msgid("retour", domain=domain)
        if in_reply_to:
            mail["In-Reply-To"] = in_reply_to.strip()[:200]
        mail.set_content(xml, maintype="application", subtype="xml", cte="8bit",
                         params={"charset": "utf-8"})
        with self._returns_lock:
            self._maildir_counter += 1
            now_us = time.time_ns() // 1000
            name = "%d.M%dP%dQ%d.sne-simulator" % (now_us // 1000000, now_us % 1000000, os.getpid(),
                                                   self._maildir_counter)
        temp = os.path.join(box, "tmp", name)
        with open(temp, "wb") as handle:
            handle.write(mail.as_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        final = os.path.join(box, "new", name)
        os.rename(temp, final)
        return final

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> Dict[str, Any]:
        config = self.config
        self.engine.start()
        self._http = _HttpServer((HOST, config.http_port), self)
        self._http_thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.2},
                                             name="sne-http", daemon=True)
        self._http_thread.start()
        http_port = self._http.server_address[1]
        info: Dict[str, Any] = {
            "pid": os.getpid(),
            "started": utc_now(),
            "lifetime_seconds": self.lifetime,
            "config": self.config_path,
            "state_dir": self.state_dir,
            "log": self.log.path,
            "generation": config.current.name,
            "revoked": [gen.name for gen in config.revoked],
            "http": {"host": HOST, "port": http_port, "url": "http://%s:%d" % (HOST, http_port)},
        }
        if config.smtp_port is not None:
            address = "sne@" + config.smtp_domain
            self._smtp = _smtp_controller(_SmtpHandler(self, address), config.smtp_port, config.smtp_domain)
            self._smtp.start()
            info["smtp"] = {"host": HOST, "port": self._smtp.port, "domain": config.smtp_domain,
                            "address": address, "maildir": self.maildir}
        if config.outbox is not None and config.inbox is not None:
            self._folder = FolderWatcher(self, config.outbox, config.inbox, config.poll_seconds)
            self._folder.start()
            info["folder"] = {"outbox": config.outbox, "inbox": config.inbox,
                              "processed": self._folder.processed, "poll_seconds": config.poll_seconds}
        self.info = info
        self.log.write("start", **{k: v for k, v in info.items() if k in ("pid", "http", "smtp", "folder")})
        return info

    def stop(self, reason: str = "stop") -> None:
        if self._folder is not None:
            self._folder.stop()
        if self._smtp is not None:
            try:
                self._smtp.stop()
            except Exception as error:
                self.log.write("smtp-error", error=str(error))
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        self.engine.stop()
        self.log.write("stop", reason=reason)
        self.log.close()


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _state_path(state_dir: str) -> str:
    return os.path.join(os.path.abspath(state_dir), STATE_FILE)


def _read_state(state_dir: str) -> Optional[Dict[str, Any]]:
    try:
        with open(_state_path(state_dir), encoding="utf-8") as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """True if ``pid`` runs this simulator (not a zombie, not a recycled pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    proc = "/proc/%d" % pid
    if os.path.isdir("/proc/self"):
        try:
            with open(proc + "/stat", encoding="utf-8", errors="replace") as handle:
                if handle.read().rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
                    return False
            with open(proc + "/cmdline", "rb") as handle:
                return b"sne_simulator" in handle.read()
        except OSError:
            return False
    return True


def cmd_run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print("sne_simulator: %s" % error, file=sys.stderr)
        return 2
    state = _read_state(args.state_dir)
    if state and isinstance(state.get("pid"), int) and state["pid"] != os.getpid() and _alive(state["pid"]):
        print("sne_simulator: already running (pid %d) in %s" % (state["pid"], args.state_dir),
              file=sys.stderr)
        return 1
    if args.lifetime <= 0:
        print("sne_simulator: --lifetime must be > 0", file=sys.stderr)
        return 2
    simulator = Simulator(config, args.state_dir, args.lifetime, os.path.abspath(args.config))
    reason = ["lifetime"]

    def on_signal(number: int, frame: Any) -> None:
        reason[0] = signal.Signals(number).name
        simulator.stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        info = simulator.start()
    except Exception as error:
        print("sne_simulator: cannot start: %s: %s" % (type(error).__name__, error), file=sys.stderr)
        simulator.stop("start failed")
        return 1
    info["expires"] = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=args.lifetime)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    atomic_write(simulator.state_dir, STATE_FILE, (json.dumps(info, indent=2) + "\n").encode("utf-8"))
    print(json.dumps(info), flush=True)
    try:
        simulator.stop_event.wait(args.lifetime)
    finally:
        simulator.stop(reason[0])
        state = _read_state(args.state_dir)
        if state and state.get("pid") == os.getpid():
            os.unlink(_state_path(args.state_dir))
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    state_dir = os.path.abspath(args.state_dir)
    os.makedirs(state_dir, exist_ok=True)
    state = _read_state(state_dir)
    if state and isinstance(state.get("pid"), int) and _alive(state["pid"]):
        print("sne_simulator: already running (pid %d) in %s" % (state["pid"], state_dir), file=sys.stderr)
        return 1
    command = [sys.executable, os.path.abspath(__file__), "run", "--config", os.path.abspath(args.config),
               "--state-dir", state_dir, "--lifetime", str(args.lifetime)]
    out_path = os.path.join(state_dir, OUT_FILE)
    with open(out_path, "ab") as out:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                 start_new_session=True, close_fds=True)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            with open(out_path, "rb") as handle:
                tail = handle.read()[-2000:].decode("utf-8", "replace")
            print("sne_simulator: the server exited with status %s:\n%s" % (child.returncode, tail),
                  file=sys.stderr)
            return 1
        state = _read_state(state_dir)
        if state and state.get("pid") == child.pid:
            child.returncode = 0  # detached on purpose: no "still running" warning
            print(json.dumps(state, indent=2))
            return 0
        time.sleep(0.05)
    child.kill()
    child.wait()
    print("sne_simulator: not ready after %s s (see %s)" % (args.timeout, out_path), file=sys.stderr)
    return 1


def cmd_stop(args: argparse.Namespace) -> int:
    state = _read_state(args.state_dir)
    pid = state.get("pid") if state else None
    if not isinstance(pid, int) or not _alive(pid):
        if state is not None:
            os.unlink(_state_path(args.state_dir))
        print("sne_simulator: not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            print("sne_simulator: stopped (pid %d)" % pid)
            return 0
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    if os.path.exists(_state_path(args.state_dir)):
        os.unlink(_state_path(args.state_dir))
    print("sne_simulator: killed (pid %d) after %s s" % (pid, args.timeout))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state = _read_state(args.state_dir)
    if state and isinstance(state.get("pid"), int) and _alive(state["pid"]):
        print(json.dumps(state, indent=2))
        return 0
    print("sne_simulator: not running")
    return 3


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="sne_simulator", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    commands = (("run", "run in the foreground"), ("start", "start in the background, wait until ready"),
                ("stop", "stop the background server"), ("status", "print simulator.json if running"))
    for name, helptext in commands:
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("--state-dir", required=True, help="log, maildir and simulator.json go here")
        if name in ("run", "start"):
            cmd.add_argument("--config", required=True, help="JSON configuration (see README)")
            cmd.add_argument("--lifetime", type=float, default=DEFAULT_LIFETIME,
                             help="stop by itself after this many seconds (default %(default)s)")
        if name in ("start", "stop"):
            cmd.add_argument("--timeout", type=float, default=20.0,
                             help="seconds to wait (default %(default)s)")
    args = parser.parse_args(argv)
    handlers: Dict[str, Callable[[argparse.Namespace], int]] = {
        "run": cmd_run, "start": cmd_start, "stop": cmd_stop, "status": cmd_status}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
