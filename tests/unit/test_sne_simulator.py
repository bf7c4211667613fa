"""Tests of the SNE simulator (the package roles/simulate/files/sne_simulator), started for real on loopback.

One simulator (started with the ``start`` CLI, as the demo and editors' CI do) serves the
module; every transport is exercised over the wire: HTTP with urllib, SMTP with smtplib and a
Maildir read back with the standard ``mailbox`` module, the drop folder with plain files.
Messages are encrypted with cryptography's PKCS7EnvelopeBuilder and, for interoperability,
with the real ``openssl cms -encrypt``.

No test asserts how fast anything is: a test waits for the event that shows what it checks
(the ``message`` entry of the simulator's log, a return, the admin status, a process exit),
with a bounded wait (``WAIT``) only so that a broken simulator cannot hang the suite. "No
return" is asserted once the message is processed and nothing is scheduled any more.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import importlib
import json
import mailbox
import os
import shutil
import smtplib
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from email.mime.application import MIMEApplication
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIMULATOR = os.path.join(ROOT, "roles", "simulate", "files", "sne_simulator")  # python SIMULATOR start ...
OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")
TRANSPORTS = ["http", "smtp", "folder"]
SENDER = "guichet@bailleur.test"
# Bounded waits: generous, only so that a broken simulator cannot hang the suite.
WAIT = 60.0

pytestmark = pytest.mark.slow


def _load_simulator() -> Any:
    sys.path.insert(0, os.path.dirname(SIMULATOR))
    return importlib.import_module("sne_simulator")


sne = _load_simulator()


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------


def new_id(prefix: str = "MSG") -> str:
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def xml_message(msg_id: Optional[str], kind: str = "TEST", guichet: str = "G-TEST-01") -> bytes:
    id_attr = ' id="%s"' % msg_id if msg_id is not None else ""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<MessageAsynchrone%s version="1">'
            "<Guichet>%s</Guichet><Type>%s</Type><Horodatage>2016-01-07T09:30:00Z</Horodatage>"
            "<Contenu>essai</Contenu></MessageAsynchrone>\n" % (id_attr, guichet, kind)).encode("utf-8")


def certificate(pki: Dict[str, Any], ident: str) -> x509.Certificate:
    with open(cert_path(pki, ident), "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read())


def cert_path(pki: Dict[str, Any], ident: str) -> str:
    return os.path.join(pki["dir"], pki["certificates"][ident]["path"])


def encrypt(plaintext: bytes, cert: x509.Certificate) -> bytes:
    """CMS EnvelopedData, DER, AES-256-CBC, RSA PKCS#1 v1.5 key transport."""
    return (pkcs7.PKCS7EnvelopeBuilder().set_data(plaintext).add_recipient(cert)
            .set_content_encryption_algorithm(pkcs7.algorithms.AES256)
            .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))


def openssl_encrypt(plaintext: bytes, cert_file: str, tmp_path: Any, *extra: str) -> bytes:
    source = tmp_path / ("plain-%s.xml" % uuid.uuid4().hex[:8])
    source.write_bytes(plaintext)
    assert OPENSSL is not None
    cmd = [OPENSSL, "cms", "-encrypt", "-aes256", "-binary", "-in", str(source), *extra, cert_file]
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def smime_mail(der: bytes, subject: str, sender: str = SENDER) -> bytes:
    """The S/MIME layout the simulator (and the SNE) expects: one application/pkcs7-mime entity."""
    part = MIMEApplication(der, "pkcs7-mime", name="smime.p7m")
    part.set_param("smime-type", "enveloped-data")
    part.add_header("Content-Disposition", "attachment", filename="smime.p7m")
    part["From"] = sender
    part["To"] = "sne@sne.test"
    part["Subject"] = subject
    return part.as_bytes(policy=email.policy.SMTP)  # CRLF: smtplib sends bytes as they are


# ---------------------------------------------------------------------------------------------
# The running simulator
# ---------------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SIMULATOR, *args], capture_output=True, text=True,
                          timeout=60, check=False)


def write_config(folder: Any, pki: Dict[str, Any], transports: Dict[str, Any], **extra: Any) -> str:
    """A config file whose certificate paths are RELATIVE to it (as the README says)."""
    def rel(name: str) -> str:
        return os.path.relpath(os.path.join(pki["dir"], name), str(folder))

    config = {
        "current": {"generation": "V5", "certificate": rel("chiffrement-v5.pem"),
                    "key": rel("chiffrement-v5.key")},
        "revoked": [{"generation": "V4", "certificate": rel("chiffrement-v4.pem"),
                     "key": rel("chiffrement-v4.key")}],
        "delay_seconds": 0,
        "backlog": False,
        "transports": transports,
    }
    config.update(extra)
    path = os.path.join(str(folder), "config.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(config, handle)
    return path


class Sim:
    """Client side of the three transports plus the admin API."""

    def __init__(self, info: Dict[str, Any], pki: Dict[str, Any]) -> None:
        self.info = info
        self.pki = pki
        self.url = info["http"]["url"]

    # -- HTTP and admin ---------------------------------------------------------------------
    def request(self, method: str, path: str, body: Optional[bytes] = None,
                headers: Optional[Dict[str, str]] = None) -> Tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def admin(self, path: str, payload: Optional[Dict[str, Any]] = None) -> Any:
        status, body = self.request("POST" if payload is not None else "GET", "/admin/" + path,
                                    json.dumps(payload).encode() if payload is not None else None,
                                    {"Content-Type": "application/json"})
        assert status == 200, body
        return json.loads(body)

    def log(self) -> List[Dict[str, Any]]:
        return self.admin("log")

    # -- sending: returns a reference the log entry can be found with ------------------------
    def send(self, transport: str, der: bytes, mail: Optional[bytes] = None) -> Tuple[str, str]:
        if transport == "http":
            status, body = self.request("POST", "/messages", der, {"Content-Type": "application/pkcs7-mime"})
            assert status == 202, body
            return "receipt", json.loads(body)["id"]
        if transport == "smtp":
            payload = mail if mail is not None else smime_mail(der, "MESSAGE %s" % uuid.uuid4().hex[:6])
            with smtplib.SMTP(sne.HOST, self.info["smtp"]["port"], timeout=10) as client:
                client.ehlo("guichet.test")
                assert client.mail(SENDER)[0] == 250
                assert client.rcpt(self.info["smtp"]["address"])[0] == 250
                code, reply = client.data(payload)
            assert code == 250, reply
            return "receipt", reply.decode().split()[-1]
        name = "%s.p7m" % uuid.uuid4().hex
        temp = os.path.join(self.info["folder"]["outbox"], "." + name + ".part")
        with open(temp, "wb") as handle:
            handle.write(der if mail is None else mail)
        os.rename(temp, os.path.join(self.info["folder"]["outbox"], name))
        return "file", name

    def processed(self, ref: Tuple[str, str], timeout: float = WAIT) -> Dict[str, Any]:
        """The ``message`` log entry of a sent message (waits for the folder poll)."""
        field, value = ref
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.log():
                if entry["event"] == "message" and entry.get(field) == value:
                    return entry
            assert time.monotonic() < deadline, "message %s=%s not processed in %s s" % (*ref, timeout)
            time.sleep(0.05)

    def returns_of(self, receipt: str) -> List[Dict[str, Any]]:
        """The ``return`` and ``return-failed`` log entries of the message of ``receipt``."""
        return [e for e in self.log()
                if e["event"] in ("return", "return-failed") and e.get("receipt") == receipt]

    def settled(self, timeout: float = WAIT) -> Dict[str, Any]:
        """Wait until no return is scheduled (held ones stay held); the admin status then.

        Once a message is processed (its ``message`` entry logged) and nothing is scheduled,
        no return can arrive for it any more: a dropped message never schedules one.
        """
        deadline = time.monotonic() + timeout
        while True:
            status = self.admin("status")
            if status["scheduled"] == 0:
                return status
            assert time.monotonic() < deadline, "returns still scheduled after %s s: %s" % (timeout, status)
            time.sleep(0.05)

    # -- returns ------------------------------------------------------------------------------
    def get_return(self, transport: str, key: str) -> Optional[bytes]:
        if transport == "http":
            status, body = self.request("GET", "/returns/" + key)
            assert status in (200, 404), status
            return body if status == 200 else None
        if transport == "smtp":
            box = os.path.join(self.info["smtp"]["maildir"], SENDER)
            if not os.path.isdir(box):
                return None
            for message in mailbox.Maildir(box, factory=None, create=False):
                if message["Subject"] == "RETOUR " + key:
                    assert message["From"] == "sne@sne.test"
                    assert message.get_content_type() == "application/xml"
                    payload = message.get_payload(decode=True)
                    assert isinstance(payload, bytes)
                    return payload
            return None
        path = os.path.join(self.info["folder"]["inbox"], key + ".xml")
        if not os.path.exists(path):
            return None
        with open(path, "rb") as handle:
            return handle.read()

    def wait_return(self, transport: str, key: str, timeout: float = WAIT) -> Optional[bytes]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.get_return(transport, key)
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(0.03)


@pytest.fixture(scope="module")
def sim(pki: Dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("sne-sim")
    transports = {"http": {"port": 0}, "smtp": {"port": 0, "domain": "sne.test"},
                  "folder": {"outbox": "guichet/outbox", "inbox": "guichet/inbox", "poll_seconds": 0.05}}
    config = write_config(folder, pki, transports)
    state = str(folder / "state")
    # The lifetime only reaps a server the suite forgot: far longer than this module ever takes.
    started = run_cli("start", "--config", config, "--state-dir", state, "--lifetime", "3600")
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout)
    assert info == json.loads((folder / "state" / "simulator.json").read_text())
    client = Sim(info, pki)
    yield client
    stopped = run_cli("stop", "--state-dir", state)
    assert stopped.returncode == 0, stopped.stderr
    assert not os.path.exists(os.path.join(state, "simulator.json"))
    assert not sne._alive(info["pid"])


@pytest.fixture(autouse=True)
def _fresh_settings(request: pytest.FixtureRequest) -> None:
    if "sim" in request.fixturenames:
        client = request.getfixturevalue("sim")
        client.admin("config", {"delay_seconds": 0, "backlog": False})
        client.admin("release", {})


def log_seconds(stamp: str) -> float:
    """POSIX seconds of a log entry's ``time`` (``2016-01-07T09:30:00.123Z``)."""
    when = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    return when.replace(tzinfo=dt.timezone.utc).timestamp()


def parse_return(xml: bytes) -> Any:
    assert xml.startswith(b"<?xml"), xml
    from xml.etree import ElementTree as ET

    root = ET.fromstring(xml)
    assert root.tag == "RetourAsynchrone"
    return root


# ---------------------------------------------------------------------------------------------
# The behaviour, per transport
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_v5_message_is_accepted(sim: Sim, transport: str) -> None:
    msg_id = new_id()
    ref = sim.send(transport, encrypt(xml_message(msg_id), certificate(sim.pki, "chiffrement-v5")))
    xml = sim.wait_return(transport, msg_id)
    assert xml is not None, "no return for %s" % msg_id
    root = parse_return(xml)
    assert root.get("id") == msg_id
    assert root.get("statut") == "ACCEPTE"
    assert root.get("generation") == "V5"
    assert root.findtext("Guichet") == "G-TEST-01"
    assert root.find("Anomalie") is None
    entry = sim.processed(ref)
    assert entry["decision"] == "accepted" and entry["message_id"] == msg_id
    assert root.get("reception") == entry["receipt"]
    assert entry["recipients"] == [{"issuer": sim.pki["certificates"]["chiffrement-v5"]["issuer"],
                                    "serial_hex": "5E1005"}]


@needs_openssl
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_openssl_cms_message_is_accepted(sim: Sim, transport: str, tmp_path: Any) -> None:
    """Interop: what ``openssl cms -encrypt`` writes (DER, or a whole S/MIME mail)."""
    msg_id = new_id("OPENSSL")
    v5 = cert_path(sim.pki, "chiffrement-v5")
    if transport == "smtp":
        mail = openssl_encrypt(xml_message(msg_id), v5, tmp_path, "-from", SENDER, "-to", "sne@sne.test",
                               "-subject", "TEST " + msg_id)
        assert b"application/pkcs7-mime" in mail or b"application/x-pkcs7-mime" in mail
        # openssl writes bare LF; SMTP wants CRLF (smtplib only fixes line ends of str messages)
        sim.send(transport, b"", mail=mail.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    else:
        sim.send(transport, openssl_encrypt(xml_message(msg_id), v5, tmp_path, "-outform", "DER"))
    xml = sim.wait_return(transport, msg_id)
    assert xml is not None
    assert parse_return(xml).get("statut") == "ACCEPTE"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_v4_message_is_dropped_without_return(sim: Sim, transport: str) -> None:
    msg_id = new_id("V4")
    ref = sim.send(transport, encrypt(xml_message(msg_id), certificate(sim.pki, "chiffrement-v4")))
    entry = sim.processed(ref)
    assert entry["decision"] == "dropped"
    assert entry["reason"] == "revoked generation V4, dropped"
    assert entry["generation"] == "V4"
    assert entry["message_id"] is None  # unreadable: it is encrypted to V4
    assert entry["recipients"][0]["serial_hex"] == "5E1004"
    sim.settled()  # processed, nothing scheduled: no return can come any more
    assert sim.get_return(transport, msg_id) is None
    assert sim.returns_of(entry["receipt"]) == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rejet_test_gets_a_rejection(sim: Sim, transport: str) -> None:
    msg_id = new_id("REJ")
    sim.send(transport, encrypt(xml_message(msg_id, "REJET_TEST"), certificate(sim.pki, "chiffrement-v5")))
    xml = sim.wait_return(transport, msg_id)
    assert xml is not None
    root = parse_return(xml)
    assert root.get("id") == msg_id and root.get("statut") == "REJETE"
    anomalies = root.findall("Anomalie")
    assert [a.get("code") for a in anomalies] == ["REJET_TEST"]
    assert anomalies[0].get("libelle")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_delay(sim: Sim, transport: str) -> None:
    sim.admin("config", {"delay_seconds": 1.0})
    msg_id = new_id("DELAY")
    sent = time.time()  # before the message exists: its return is due 1 s after this at the earliest
    ref = sim.send(transport, encrypt(xml_message(msg_id), certificate(sim.pki, "chiffrement-v5")))
    entry = sim.processed(ref)
    assert entry["delay_seconds"] == 1.0 and entry["held"] is False
    xml = sim.wait_return(transport, msg_id)
    assert xml is not None and parse_return(xml).get("id") == msg_id
    (returned,) = sim.returns_of(entry["receipt"])
    assert returned["event"] == "return" and returned["seq"] > entry["seq"]
    # A lower bound only (a loaded machine makes it later, never earlier), on the simulator's
    # clock; its log times are in milliseconds, rounded down.
    late = log_seconds(returned["time"]) - sent
    assert late >= 1.0 - 0.001, "the return went out %.3f s after the message was sent" % late


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_backlog_holds_returns_until_release(sim: Sim, transport: str) -> None:
    sim.admin("config", {"backlog": True})
    v5 = certificate(sim.pki, "chiffrement-v5")
    ids = [new_id("BACKLOG-%d" % n) for n in range(3)]
    refs = [sim.send(transport, encrypt(xml_message(msg_id), v5)) for msg_id in ids]
    receipts = [sim.processed(ref)["receipt"] for ref in refs]
    assert sim.admin("status")["held"] == 3  # held until released: none can be delivered
    assert [sim.get_return(transport, msg_id) for msg_id in ids] == [None] * 3
    assert [sim.returns_of(receipt) for receipt in receipts] == [[]] * 3
    assert sim.admin("release", {}) == {"released": 3}
    # release delivers before it answers: every return is there at once
    returns = [sim.get_return(transport, msg_id) for msg_id in ids]
    assert all(xml is not None for xml in returns)
    assert [parse_return(xml).get("id") for xml in returns if xml] == ids
    events = [e for e in sim.log() if e["event"] == "return" and e["receipt"] in receipts]
    assert len(events) == 3 and len({e["batch"] for e in events}) == 1 and events[0]["batch"]
    assert sim.admin("status")["held"] == 0


# ---------------------------------------------------------------------------------------------
# Robustness and edge cases
# ---------------------------------------------------------------------------------------------


def test_bad_input_never_kills_the_server(sim: Sim) -> None:
    v5 = certificate(sim.pki, "chiffrement-v5")
    good = encrypt(xml_message(new_id()), v5)
    bad = [b"", b"garbage", good[:100], b"\x30\x80" * 40000,
           b"-----BEGIN PKCS7-----\n!!!\n-----END PKCS7-----\n",
           b"Content-Type: text/plain\n\nhello", good + b"trailing"]
    for body in bad:
        status, reply = sim.request("POST", "/messages", body, {"Content-Type": "application/pkcs7-mime"})
        assert status == 202, reply  # the SNE gives no error, ever
        entry = sim.processed(("receipt", json.loads(reply)["id"]))
        assert entry["decision"] == "dropped", entry
    status = sim.request("POST", "/messages", b"x" * (sne.MAX_INPUT_BYTES + 1))[0]
    assert status == 413
    status = sim.request("GET", "/nothing")[0]
    assert status == 404
    status = sim.request("POST", "/admin/config", b"[1]")[0]
    assert status == 400
    # wrong-recipient mail, and a folder file that is not CMS
    with smtplib.SMTP(sne.HOST, sim.info["smtp"]["port"], timeout=10) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail(SENDER, ["someone@sne.test"], b"Subject: x\r\n\r\nx")
    with smtplib.SMTP(sne.HOST, sim.info["smtp"]["port"], timeout=10) as client:
        client.ehlo("guichet.test")
        client.mail(SENDER)
        client.rcpt("sne@sne.test")
        code = client.data(b"Subject: bare LF\n\n" + b"x" * 70 * 20 + b"\n")[0]
        assert code == 500  # bare-LF mail (one "line" > 1000 bytes), as strict MTAs refuse it
    ref = sim.send("folder", b"not cms at all")
    assert sim.processed(ref)["decision"] == "dropped"
    assert os.path.exists(os.path.join(sim.info["folder"]["processed"], ref[1]))
    # and it still works
    msg_id = new_id("AFTER")
    for transport in TRANSPORTS:
        sim.send(transport, encrypt(xml_message(msg_id), v5))
        assert sim.wait_return(transport, msg_id) is not None


def test_malformed_xml_and_missing_id_get_a_rejection(sim: Sim) -> None:
    v5 = certificate(sim.pki, "chiffrement-v5")
    msg_id = new_id("BROKEN")
    truncated = b'<MessageAsynchrone id="%s"><Guichet>G</Guichet><Type>TEST' % msg_id.encode()
    sim.send("http", encrypt(truncated, v5))
    xml = sim.wait_return("http", msg_id)
    assert xml is not None
    root = parse_return(xml)
    assert root.get("statut") == "REJETE" and root.find("Anomalie").get("code") == "XML_INVALIDE"
    # no id: the return is filed under the receipt id
    receipt = sim.send("http", encrypt(xml_message(None), v5))[1]
    xml = sim.wait_return("http", receipt)
    assert xml is not None
    root = parse_return(xml)
    assert root.get("id") == "" and root.get("reception") == receipt
    assert [a.get("code") for a in root.findall("Anomalie")] == ["ID_ABSENT"]
    # DTDs are refused (no entity expansion), unknown types rejected
    doctype = (b'<!DOCTYPE x [<!ENTITY a "b">]><MessageAsynchrone id="DTD-1"><Guichet>&a;</Guichet>'
               b"</MessageAsynchrone>")
    sim.send("http", encrypt(doctype, v5))
    root = parse_return(sim.wait_return("http", "DTD-1") or b"")
    assert root.find("Anomalie").get("code") == "XML_INVALIDE"
    other = new_id("OTHER")
    sim.send("http", encrypt(xml_message(other, "DEMANDE"), v5))
    root = parse_return(sim.wait_return("http", other) or b"")
    assert root.find("Anomalie").get("code") == "TYPE_NON_SUPPORTE"


@needs_openssl
def test_ber_streaming_and_key_identifier_recipients(sim: Sim, tmp_path: Any) -> None:
    """Streaming encoders write BER (indefinite lengths); -keyid names the recipient by SKI."""
    v5 = cert_path(sim.pki, "chiffrement-v5")
    streamed, by_ski = new_id("STREAM"), new_id("KEYID")
    der = openssl_encrypt(xml_message(streamed), v5, tmp_path, "-outform", "DER", "-stream")
    assert der[1] == 0x80  # indefinite length: cryptography alone refuses it
    sim.send("http", der)
    sim.send("http", openssl_encrypt(xml_message(by_ski), v5, tmp_path, "-outform", "DER", "-keyid"))
    for msg_id in (streamed, by_ski):
        assert parse_return(sim.wait_return("http", msg_id) or b"").get("statut") == "ACCEPTE"
    ski = sne.parse_envelope(openssl_encrypt(b"x", v5, tmp_path, "-outform", "DER", "-keyid")).recipients
    assert ski[0].kind == "ski"


def test_unknown_recipient_is_dropped(sim: Sim) -> None:
    msg_id = new_id("V6")
    ref = sim.send("http", encrypt(xml_message(msg_id), certificate(sim.pki, "chiffrement-v6")))
    entry = sim.processed(ref)
    assert entry["reason"].startswith("unknown recipient")
    sim.settled()
    assert sim.get_return("http", msg_id) is None
    assert sim.returns_of(entry["receipt"]) == []


def test_rotation_to_v6_is_a_config_change(sim: Sim) -> None:
    """V5 -> V6: new certificate and key in the config, V5 joins the revoked list; no code."""
    def rel(name: str) -> str:
        return os.path.join(sim.pki["dir"], name)  # absolute paths are fine too

    def gen(n: int) -> Dict[str, str]:
        return {"generation": "V%d" % n, "certificate": rel("chiffrement-v%d.pem" % n),
                "key": rel("chiffrement-v%d.key" % n)}

    status = sim.admin("config", {"current": gen(6), "revoked": [gen(5), gen(4)]})
    try:
        assert status["generation"] == "V6" and status["revoked"] == ["V5", "V4"]
        old, new = new_id("OLD"), new_id("NEW")
        ref = sim.send("http", encrypt(xml_message(old), certificate(sim.pki, "chiffrement-v5")))
        sim.send("http", encrypt(xml_message(new), certificate(sim.pki, "chiffrement-v6")))
        assert parse_return(sim.wait_return("http", new) or b"").get("generation") == "V6"
        entry = sim.processed(ref)
        assert entry["reason"] == "revoked generation V5, dropped"
        sim.settled()
        assert sim.get_return("http", old) is None
        assert sim.returns_of(entry["receipt"]) == []
    finally:
        sim.admin("config", {"current": gen(5), "revoked": [gen(4)]})
    incomplete = json.dumps({"current": {"generation": "V7"}}).encode()
    status, body = sim.request("POST", "/admin/config", incomplete)
    assert status == 400 and b"required" in body


def test_cli_lifetime_double_start_and_stop(pki: Dict[str, Any], tmp_path: Any) -> None:
    config = write_config(tmp_path, pki, {"http": {"port": 0}})
    state = str(tmp_path / "state")

    def last_event() -> Tuple[str, str]:
        with open(os.path.join(state, "simulator.log.jsonl"), encoding="utf-8") as handle:
            last = json.loads(handle.read().splitlines()[-1])
        return last["event"], last.get("reason", "")

    # A second start is refused while the first runs; stop ends it.
    first = run_cli("start", "--config", config, "--state-dir", state, "--lifetime", "3600")
    assert first.returncode == 0, first.stderr
    pid = json.loads(first.stdout)["pid"]
    again = run_cli("start", "--config", config, "--state-dir", state)
    assert again.returncode == 1 and "already running" in again.stderr
    assert run_cli("status", "--state-dir", state).returncode == 0
    stopped = run_cli("stop", "--state-dir", state)
    assert stopped.returncode == 0 and "stopped (pid %d)" % pid in stopped.stdout, stopped.stdout
    assert not sne._alive(pid) and not os.path.exists(os.path.join(state, "simulator.json"))
    assert last_event() == ("stop", "SIGTERM")
    # The server (what ``start`` runs in the background) ends by itself after its --lifetime:
    # run in the foreground, its exit is the event (run_cli's timeout only bounds the wait).
    ran = run_cli("run", "--config", config, "--state-dir", state, "--lifetime", "0.5")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout.splitlines()[0])["pid"] != pid
    assert not os.path.exists(os.path.join(state, "simulator.json"))
    assert last_event() == ("stop", "lifetime")
    assert run_cli("status", "--state-dir", state).returncode == 3
    stopped = run_cli("stop", "--state-dir", state)
    assert stopped.returncode == 0 and "not running" in stopped.stdout


def test_bad_config_is_reported(pki: Dict[str, Any], tmp_path: Any) -> None:
    config = write_config(tmp_path, pki, {"http": {"port": 0}},
                          current={"generation": "V5",
                                   "certificate": os.path.join(pki["dir"], "chiffrement-v5.pem"),
                                   "key": os.path.join(pki["dir"], "chiffrement-v4.key")})
    result = run_cli("start", "--config", config, "--state-dir", str(tmp_path / "state"), "--timeout", "10")
    assert result.returncode == 1
    assert "does not match the key" in result.stderr


def test_envelope_reader_matches_cryptography(pki: Dict[str, Any]) -> None:
    v5 = certificate(pki, "chiffrement-v5")
    envelope = sne.parse_envelope(encrypt(b"<x/>", v5))
    (recipient,) = envelope.recipients
    assert recipient.kind == "issuer_serial" and recipient.serial == v5.serial_number
    assert recipient.issuer_der == v5.issuer.public_bytes()
    assert recipient.issuer == v5.issuer.rfc4514_string()
    for garbage in (b"", b"\x30", b"\x30\x03\x02\x01\x00", b"\x04\x80\x00\x00", b"\x30\x84\xff\xff\xff\xff"):
        with pytest.raises(sne.Asn1Error):
            sne.parse_envelope(garbage)


JUDGE_CASES: List[Tuple[bytes, Callable[[Any], bool]]] = [
    (b'<MessageAsynchrone id="A"><Guichet>G</Guichet><Type>TEST</Type></MessageAsynchrone>',
     lambda v: v.status == "ACCEPTE" and v.message_id == "A"),
    (b'Content-Type: text/plain\r\n\r\n<MessageAsynchrone id="A"><Guichet>G</Guichet><Type>TEST</Type>'
     b"</MessageAsynchrone>", lambda v: v.status == "ACCEPTE"),
    (b'<Autre id="A"/>', lambda v: v.anomalies[0][0] == "RACINE_INVALIDE" and v.message_id == "A"),
    (b'<MessageAsynchrone id="../../etc"><Guichet>G</Guichet><Type>TEST</Type></MessageAsynchrone>',
     lambda v: v.message_id is None and v.anomalies[0][0] == "ID_INVALIDE"),
    (b'<MessageAsynchrone id="A"><Type>TEST</Type></MessageAsynchrone>',
     lambda v: [a[0] for a in v.anomalies] == ["GUICHET_ABSENT"]),
]


@pytest.mark.parametrize("case", range(len(JUDGE_CASES)))
def test_judge_message(case: int) -> None:
    plaintext, check = JUDGE_CASES[case]
    assert check(sne.judge_message(plaintext)), sne.judge_message(plaintext)
