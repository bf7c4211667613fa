"""sne.guichet.async_probe against the real SNE simulator, over its three transports.

The simulator (roles/simulate/files/sne_simulator) is started with the ``start`` CLI and the test PKI:
current generation V5, V4 revoked. A probe with the V5 certificate passes; with V4
(``send_anyway``) it gets no return and times out; REJET_TEST gets a rejection; a return
delayed within the timeout still passes; returns of other messages are ignored, and a return
whose statut is neither ACCEPTE nor REJETE is an error, never a pass. The envelope
is checked with the real ``openssl cms -decrypt``; both encryption backends (cryptography,
the openssl command) are exercised; certificates are read from PEM, DER, and keytool-made
JKS and PKCS#12 keystores.
"""

from __future__ import annotations

import email.policy
import json
import mailbox
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional
from urllib.parse import unquote

import pytest
from javatools import keytool, needs_keytool

from ansible_collections.sne.guichet.plugins.module_utils import _oids as O
from ansible_collections.sne.guichet.plugins.module_utils._formats import pkcs12 as _p12
from ansible_collections.sne.guichet.plugins.module_utils._probe import envelope as E
from ansible_collections.sne.guichet.plugins.module_utils._probe import probe as P
from ansible_collections.sne.guichet.plugins.module_utils._probe import returns as R

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))))
SIMULATOR = os.path.join(ROOT, "roles", "simulate", "files", "sne_simulator")  # the package, run as a folder
OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")
TRANSPORTS = ["http", "smtp", "folder"]
SENDER = "guichet@bailleur.test"
GUICHET = "G-013-0042"

pytestmark = pytest.mark.slow


def run_command(argv, data=None, environ_update=None):
    env = dict(os.environ, **(environ_update or {}))
    proc = subprocess.run(argv, input=data, capture_output=True, text=True, env=env, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def find_tool(name):
    return shutil.which(name)


def no_tool(name):
    return None


def cert_file(pki, ident, form="pem"):
    return os.path.join(pki["dir"], "%s.%s" % (ident, form))


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


# ---------------------------------------------------------------------------------------------
# The simulator
# ---------------------------------------------------------------------------------------------


def run_cli(*args):
    return subprocess.run([sys.executable, SIMULATOR, *args], capture_output=True, text=True,
                          timeout=60, check=False)


class Sim:
    def __init__(self, info: Dict[str, Any]) -> None:
        self.info = info
        self.url = info["http"]["url"]

    def admin(self, path: str, payload: Optional[Dict[str, Any]] = None) -> Any:
        body = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(self.url + "/admin/" + path, data=body,
                                         method="POST" if body is not None else "GET",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def transport_options(self, transport: str) -> Dict[str, Any]:
        if transport == "http":
            return {"url": self.url, "validate_certs": True, "ca_path": None, "use_proxy": False}
        if transport == "smtp":
            return {"host": "127.0.0.1", "port": self.info["smtp"]["port"], "sender": SENDER,
                    "recipient": self.info["smtp"]["address"],
                    "maildir": os.path.join(self.info["smtp"]["maildir"], SENDER)}
        return {"outbox": self.info["folder"]["outbox"], "inbox": self.info["folder"]["inbox"]}


@pytest.fixture(scope="module")
def sim(pki, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sne-probe-sim")

    def rel(name):
        return os.path.relpath(os.path.join(pki["dir"], name), str(folder))

    config = {
        "current": {"generation": "V5", "certificate": rel("chiffrement-v5.pem"),
                    "key": rel("chiffrement-v5.key")},
        "revoked": [{"generation": "V4", "certificate": rel("chiffrement-v4.pem"),
                     "key": rel("chiffrement-v4.key")}],
        "delay_seconds": 0,
        "backlog": False,
        "transports": {"http": {"port": 0}, "smtp": {"port": 0, "domain": "sne.test"},
                       "folder": {"outbox": "guichet/outbox", "inbox": "guichet/inbox",
                                  "poll_seconds": 0.05}},
    }
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    state = str(folder / "state")
    started = run_cli("start", "--config", str(path), "--state-dir", state, "--lifetime", "600")
    assert started.returncode == 0, started.stderr
    yield Sim(json.loads(started.stdout))
    stopped = run_cli("stop", "--state-dir", state)
    assert stopped.returncode == 0, stopped.stderr


class Relay(ThreadingHTTPServer):
    """A tiny HTTP server in front of the simulator, where the HTTP transport sends and polls:
    ``GET /returns/<id>`` answers the return planted for that id when there is one; every other
    request goes to the simulator unchanged. The simulator's admin API cannot plant a return."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.planted: Dict[str, bytes] = {}
        super().__init__(("127.0.0.1", 0), _RelayHandler)
        self.url = "http://127.0.0.1:%d" % self.server_address[1]


class _RelayHandler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        return

    def _answer(self, code, body, content_type):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _forward(self, body=None):
        relay = self.server
        headers = {"Content-Type": self.headers.get("Content-Type", "application/octet-stream")}
        request = urllib.request.Request(relay.upstream + self.path, data=body, headers=headers,
                                         method=self.command)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                self._answer(response.status, response.read(), response.headers.get("Content-Type", ""))
        except urllib.error.HTTPError as exc:
            self._answer(exc.code, exc.read(), exc.headers.get("Content-Type", ""))

    def do_GET(self):
        if self.path.startswith("/returns/"):
            planted = self.server.planted.get(unquote(self.path[len("/returns/"):]))
            if planted is not None:
                self._answer(200, planted, "application/xml; charset=utf-8")
                return
        self._forward()

    def do_POST(self):
        self._forward(self.rfile.read(int(self.headers.get("Content-Length") or 0)))


@pytest.fixture(scope="module")
def relay(sim):
    server = Relay(sim.url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(autouse=True)
def _fresh_settings(request):
    if "sim" in request.fixturenames:
        request.getfixturevalue("sim").admin("config", {"delay_seconds": 0, "backlog": False})


def make_params(pki, sim=None, transport="http", ident="chiffrement-v5", **overrides):
    """The module's parameters, defaults included (as AnsibleModule would pass them)."""
    params: Dict[str, Any] = {
        "certificate": {"path": cert_file(pki, ident), "type": "pem", "alias": None, "password": None},
        "certificate_pem": None,
        "expected_sha256": pki["certificates"]["chiffrement-v5"]["sha256"],
        "expected_generation": "V5",
        "send_anyway": False,
        "guichet_id": GUICHET,
        "message_type": "TEST",
        "host_label": "guichet01",
        "transport": transport,
        "http": None, "smtp": None, "folder": None,
        "timeout": 10.0,
        "poll_interval": 0.1,
        "connect_timeout": 10.0,
        "encryption": "auto",
        "fail_on_status": True,
    }
    if sim is not None:
        params[transport] = sim.transport_options(transport)
    else:
        params[transport] = {"url": "http://127.0.0.1:9", "validate_certs": True, "ca_path": None,
                             "use_proxy": False} if transport == "http" else {}
    params.update(overrides)
    return params


def probe(params, **kwargs):
    return P.probe(params, run_command, find_tool, **kwargs)


# ---------------------------------------------------------------------------------------------
# Over the wire, per transport
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["cryptography", pytest.param("openssl", marks=needs_openssl)])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_v5_certificate_passes(pki, sim, transport, backend):
    result = probe(make_params(pki, sim, transport, encryption=backend))
    assert result["status"] == "passed", result
    assert result["encryption"] == backend
    assert result["changed"] is False
    assert result["transport"] == transport
    mid = result["message_id"]
    assert mid.startswith("SNEPROBE-guichet01-")
    root = P.ET.fromstring(result["return_xml"].encode())
    assert root.get("id") == mid and root.get("statut") == "ACCEPTE"
    assert result["return_info"]["generation"] == "V5"
    assert result["return_info"]["guichet"] == GUICHET
    v5 = pki["certificates"]["chiffrement-v5"]
    assert result["certificate"]["sha256"] == v5["sha256"]
    assert result["certificate"]["serial"] == v5["serial_hex"]
    assert result["certificate"]["issuer"] == v5["issuer"]
    assert result["certificate"]["subject"] == v5["subject"]
    assert result["certificate"]["expected"] is True
    assert result["envelope"]["recipient_serial"] == "5E1005"
    assert result["envelope"]["content_encryption"] == "aes-256-cbc"
    assert result["receipt"]
    assert result["elapsed"] >= 0  # how long it took is a benchmark's business, not a test's
    assert "accepted by the SNE (generation V5)" in result["msg"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_v4_certificate_times_out(pki, sim, transport):
    result = probe(make_params(pki, sim, transport, ident="chiffrement-v4", send_anyway=True, timeout=2.0))
    assert result["status"] == "timeout", result
    assert result["certificate"]["expected"] is False
    assert "return_xml" not in result
    assert result["elapsed"] >= 2.0
    assert "no return for message %s within 2 s" % result["message_id"] in result["msg"]
    assert any("is Chiffrement_SNEV4, not V5" in w for w in result["warnings_"])
    assert result["envelope"]["recipient_serial"] == "5E1004"


def test_v4_certificate_is_not_sent_without_send_anyway(pki, sim):
    path = cert_file(pki, "chiffrement-v4")
    result = probe(make_params(pki, sim, "http", ident="chiffrement-v4"))
    assert result["status"] == "error" and result["code"] == "generation"
    assert result["msg"] == "the certificate installed in %s is Chiffrement_SNEV4, not V5" % path
    assert "message_id" not in result and "receipt" not in result


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rejet_test_is_rejected(pki, sim, transport):
    result = probe(make_params(pki, sim, transport, message_type="REJET_TEST"))
    assert result["status"] == "rejected", result
    assert result["anomaly"] == {"code": "REJET_TEST", "label": "rejet demandé par le message de test"}
    assert result["anomalies"] == [result["anomaly"]]
    assert "REJET_TEST" in result["msg"]
    assert 'statut="REJETE"' in result["return_xml"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_delayed_return_within_timeout_passes(pki, sim, transport):
    sim.admin("config", {"delay_seconds": 1})
    result = probe(make_params(pki, sim, transport, timeout=6.0, poll_interval=0.2))
    assert result["status"] == "passed", result
    assert result["elapsed"] >= 1.0


def _plant(sim, relay, transport, message_id, xml_id, statut="ACCEPTE"):
    """Plant, where ``transport`` looks for the return of ``message_id``, a return whose XML is
    for ``xml_id`` with ``statut``; return the transport options that look there."""
    xml = ('<?xml version="1.0" encoding="utf-8"?>\n<RetourAsynchrone id="%s" statut="%s" '
           'reception="R999999-000000" generation="V5" horodatage="2016-01-07T09:30:00Z">'
           '<Guichet>%s</Guichet></RetourAsynchrone>\n' % (xml_id, statut, GUICHET)).encode()
    options = sim.transport_options(transport)
    if transport == "http":
        relay.planted[message_id] = xml
        options["url"] = relay.url
    elif transport == "folder":
        with open(os.path.join(sim.info["folder"]["inbox"], message_id + ".xml"), "wb") as handle:
            handle.write(xml)
    elif transport == "smtp":
        mail = EmailMessage()
        mail["From"] = "sne@sne.test"
        mail["To"] = SENDER
        mail["Subject"] = "RETOUR " + message_id
        mail.set_content(xml, maintype="application", subtype="xml", cte="8bit")
        box = mailbox.Maildir(os.path.join(sim.info["smtp"]["maildir"], SENDER), create=True)
        box.add(mail.as_bytes(policy=email.policy.SMTP))
    else:
        raise AssertionError("no way to plant a return for %s" % transport)
    return options


def test_the_relay_passes_the_simulator_through(pki, sim, relay):
    """Through the relay, with nothing planted, a V5 probe passes as it does straight."""
    params = make_params(pki, sim, "http")
    params["http"]["url"] = relay.url
    assert probe(params)["status"] == "passed"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_returns_of_other_messages_are_ignored(pki, sim, relay, transport):
    first = probe(make_params(pki, sim, transport))
    assert first["status"] == "passed"
    mid = P.new_message_id("stale")
    options = _plant(sim, relay, transport, mid, first["message_id"])  # a previous probe's return, misfiled
    # V4: the SNE drops the message, so the planted return is the only one there is
    result = probe(make_params(pki, sim, transport, ident="chiffrement-v4", send_anyway=True,
                               timeout=1.5, **{transport: options}), message_id=mid)
    assert result["status"] == "timeout", result
    assert result["message_id"] == mid
    assert result["ignored_returns"] >= 1  # the planted one (the Maildir also holds earlier returns)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_return_with_an_unknown_statut_is_an_error(pki, sim, relay, transport):
    mid = P.new_message_id("odd")
    options = _plant(sim, relay, transport, mid, mid, statut="EN_COURS")
    result = probe(make_params(pki, sim, transport, ident="chiffrement-v4", send_anyway=True,
                               timeout=5.0, **{transport: options}), message_id=mid)
    assert result["status"] == "error", result
    assert result["code"] == "return"
    assert result["msg"] == ("unknown statut 'EN_COURS' in the SNE's return of message %s (expected "
                             "ACCEPTE or REJETE): nothing can be concluded" % mid)
    assert result["return_info"]["statut"] == "EN_COURS"
    assert 'statut="EN_COURS"' in result["return_xml"]


class PlantedTransport:
    """A transport that accepts every message and gives back one planted return."""

    name = "folder"
    last_error = None

    def __init__(self, xml: bytes) -> None:
        self.xml = xml

    def send(self, message_id, cms):
        return "R000001-000000"

    def poll(self, message_id):
        return [self.xml]

    def describe(self):
        return {"name": self.name}


@pytest.mark.parametrize("statut, status", [
    ("ACCEPTE", "passed"), ("REJETE", "rejected"),  # the two the SNE sends
    (None, "error"), ("", "error"), ("accepte", "error"), ("ACCEPTE ", "error"), ("ACCEPTÉ", "error"),
    ("ACCEPTEE", "error"), ("OK", "error"), ("PASSED", "error"), ("EN_COURS", "error"),
])
def test_only_accepte_passes(pki, monkeypatch, statut, status):
    mid = P.new_message_id("statut")
    attribute = "" if statut is None else ' statut="%s"' % statut
    xml = ('<RetourAsynchrone id="%s"%s generation="V5"><Guichet>%s</Guichet></RetourAsynchrone>'
           % (mid, attribute, GUICHET)).encode("utf-8")
    monkeypatch.setattr(R, "make_transport", lambda name, options, timeout: PlantedTransport(xml))
    result = probe(make_params(pki, None, "folder", folder={"outbox": "-", "inbox": "-"}, timeout=5.0),
                   message_id=mid)
    assert result["status"] == status, result
    if status == "error":
        assert result["code"] == "return"
        assert result["msg"].startswith("unknown statut %r in the SNE's return of message %s"
                                        % (statut or "", mid))
    else:
        assert "code" not in result


def test_impostor_with_the_right_name_is_not_answered(pki, sim):
    """Same CN as V5 but another issuer/serial: the generation check passes, the SNE drops it;
    with the fingerprint expected, the probe refuses to send it."""
    by_name = probe(make_params(pki, sim, "http", ident="chiffrement-v5-impostor",
                                expected_sha256=None, timeout=1.5))
    assert by_name["status"] == "timeout"
    by_fingerprint = probe(make_params(pki, sim, "http", ident="chiffrement-v5-impostor"))
    assert by_fingerprint["status"] == "error" and by_fingerprint["code"] == "generation"
    assert "not the expected certificate (SHA-256 %s)" % pki["certificates"]["chiffrement-v5"]["sha256"] \
        in by_fingerprint["msg"]


def test_unreachable_endpoint_is_an_error(pki):
    result = probe(make_params(pki, None, "http", connect_timeout=2.0))
    assert result["status"] == "error" and result["code"] == "send"
    assert "could not be sent" in result["msg"]


def test_smtp_recipient_refused_is_an_error(pki, sim):
    params = make_params(pki, sim, "smtp")
    params["smtp"]["recipient"] = "nobody@sne.test"
    result = probe(params)
    assert result["status"] == "error" and result["code"] == "send"
    assert "550" in result["msg"]


def test_missing_maildir_is_reported_on_timeout(pki, sim, tmp_path):
    params = make_params(pki, sim, "smtp", timeout=0.5)
    params["smtp"]["maildir"] = str(tmp_path / "nowhere")
    result = probe(params)
    assert result["status"] == "timeout"
    assert "does not exist (yet)" in result["msg"]


# ---------------------------------------------------------------------------------------------
# The envelope
# ---------------------------------------------------------------------------------------------


def _decrypt(pki, cms, ident, tmp_path):
    source = tmp_path / "message.p7m"
    source.write_bytes(cms)
    key = os.path.join(pki["dir"], ident + ".key")
    return subprocess.run([OPENSSL, "cms", "-decrypt", "-inform", "DER", "-in", str(source),
                           "-recip", cert_file(pki, ident), "-inkey", key],
                          capture_output=True, check=False)


@needs_openssl
@pytest.mark.parametrize("backend", ["cryptography", "openssl"])
def test_envelope_decrypts_to_the_exact_message_with_v5_only(pki, tmp_path, backend):
    message = P.build_message(P.new_message_id("h1"), GUICHET)
    der = read(cert_file(pki, "chiffrement-v5", "der"))
    cms, used = E.encrypt(message, der, backend, run_command, find_tool)
    assert used == backend
    done = _decrypt(pki, cms, "chiffrement-v5", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == message
    assert _decrypt(pki, cms, "chiffrement-v4", tmp_path).returncode != 0
    info = E.inspect_envelope(cms)
    assert info["content_encryption"] == O.OID_AES256_CBC
    assert info["content_type"] == O.OID_DATA
    assert [r["key_encryption"] for r in info["recipients"]] == [E.OID_RSA_ENCRYPTION]
    summary = E.check_envelope(cms, der)
    assert summary["recipient_serial"] == "5E1005"
    with pytest.raises(E.EnvelopeError, match="not the certificate read"):
        E.check_envelope(cms, read(cert_file(pki, "chiffrement-v4", "der")))


def test_the_probe_message_is_what_the_sne_expects():
    mid = P.new_message_id("guichet 01/a")
    assert P._ID_RE.match(mid) and mid.startswith("SNEPROBE-guichet-01-a-")
    assert P.new_message_id("x") != P.new_message_id("x")
    root = P.ET.fromstring(P.build_message(mid, "G<&>1", "REJET_TEST"))
    assert root.tag == "MessageAsynchrone" and root.get("id") == mid
    assert root.findtext("Guichet") == "G<&>1" and root.findtext("Type") == "REJET_TEST"


@needs_openssl
def test_openssl_is_used_when_cryptography_is_missing(pki, monkeypatch):
    monkeypatch.setattr(E, "HAS_CRYPTOGRAPHY", False)
    der = read(cert_file(pki, "chiffrement-v5", "der"))
    _cms, used = E.encrypt(b"<x/>", der, "auto", run_command, find_tool)
    assert used == "openssl"


def test_without_any_backend_the_probe_says_to_delegate(pki, monkeypatch):
    monkeypatch.setattr(E, "HAS_CRYPTOGRAPHY", False)
    result = P.probe(make_params(pki), run_command, no_tool)
    assert result["status"] == "error" and result["code"] == "no_backend"
    assert "delegate_to: localhost" in result["msg"] and "certificate_pem" in result["msg"]
    # what the delegated run needs
    assert result["certificate"]["pem"] == read(cert_file(pki, "chiffrement-v5")).decode()
    with pytest.raises(E.EnvelopeError, match="openssl command is not available"):
        E.encrypt(b"<x/>", read(cert_file(pki, "chiffrement-v5", "der")), "openssl", run_command, no_tool)
    with pytest.raises(E.EnvelopeError, match="cryptography"):
        E.encrypt(b"<x/>", read(cert_file(pki, "chiffrement-v5", "der")), "cryptography")


def test_certificate_pem_is_used_as_given(pki, sim):
    pem = read(cert_file(pki, "chiffrement-v5")).decode()
    result = probe(make_params(pki, sim, "folder", certificate=None, certificate_pem=pem))
    assert result["status"] == "passed"
    assert result["certificate"]["source"] == "certificate_pem"


# ---------------------------------------------------------------------------------------------
# Reading the certificate where the guichet takes it
# ---------------------------------------------------------------------------------------------


def read_cert(pki, path, kind=None, alias=None, password=None, **extra):
    params = make_params(pki, certificate={"path": str(path), "type": kind, "alias": alias,
                                           "password": password}, **extra)
    return P.read_certificate(params, run_command, find_tool)


def fingerprint(pki, ident):
    return pki["certificates"][ident]["sha256"]


def sha(der):
    return P.cert_info(der)["sha256"]


def test_pem_and_der_files(pki, tmp_path):
    der, where = read_cert(pki, cert_file(pki, "chiffrement-v5", "der"), "der")
    assert sha(der) == fingerprint(pki, "chiffrement-v5") and where == cert_file(pki, "chiffrement-v5", "der")
    der, _where = read_cert(pki, cert_file(pki, "chiffrement-v5", "der"))  # type guessed
    assert sha(der) == fingerprint(pki, "chiffrement-v5")
    with pytest.raises(P.ProbeError, match="PEM, not DER"):
        read_cert(pki, cert_file(pki, "chiffrement-v5"), "der")
    bundle = tmp_path / "sne.pem"
    bundle.write_bytes(read(cert_file(pki, "ac-v5")) + read(cert_file(pki, "chiffrement-v5")))
    der, where = read_cert(pki, bundle, "pem")  # the authority is not a candidate
    assert sha(der) == fingerprint(pki, "chiffrement-v5")
    assert where == "%s (certificate #1 of 2)" % bundle
    mixed = tmp_path / "mixed.pem"
    mixed.write_bytes(read(cert_file(pki, "chiffrement-v4")) + read(cert_file(pki, "chiffrement-v5")))
    with pytest.raises(P.ProbeError, match="2 certificates that could be the encryption certificate"):
        read_cert(pki, mixed, "pem")
    der, _where = read_cert(pki, mixed, "pem", alias="Chiffrement_SNEV4")
    assert sha(der) == fingerprint(pki, "chiffrement-v4")
    der, _where = read_cert(pki, mixed, "pem", alias="#1")
    assert sha(der) == fingerprint(pki, "chiffrement-v5")
    with pytest.raises(P.ProbeError, match="no certificate named Chiffrement_SNEV6"):
        read_cert(pki, mixed, "pem", alias="Chiffrement_SNEV6")
    with pytest.raises(P.ProbeError, match="cannot read"):
        read_cert(pki, tmp_path / "missing.pem", "pem")


@needs_keytool
def test_jks_made_by_keytool(pki, tmp_path, sim):
    store = str(tmp_path / "app.jks")
    for alias, ident in (("sne-chiffrement", "chiffrement-v4"), ("sne-ac-v5", "ac-v5")):
        keytool("-importcert", "-noprompt", "-alias", alias, "-file", cert_file(pki, ident),
                "-keystore", store, "-storetype", "JKS", "-storepass", "changeit")
    der, where = read_cert(pki, store, "jks", alias="sne-chiffrement", password="changeit")
    assert sha(der) == fingerprint(pki, "chiffrement-v4")
    assert where == "%s alias sne-chiffrement" % store
    der, _where = read_cert(pki, store)  # no alias: the only non-CA entry; type guessed
    assert sha(der) == fingerprint(pki, "chiffrement-v4")
    with pytest.raises(P.ProbeError, match="integrity check failed"):
        read_cert(pki, store, "jks", password="wrong")
    with pytest.raises(P.ProbeError, match=r"has no alias other \(it holds: sne-ac-v5, sne-chiffrement\)"):
        read_cert(pki, store, "jks", alias="other")
    # the whole probe: the message the issue asks for, and no message sent
    params = make_params(pki, sim, "http", certificate={"path": store, "type": "jks",
                                                        "alias": "sne-chiffrement", "password": "changeit"})
    result = probe(params)
    assert result["status"] == "error"
    assert result["msg"] == ("the certificate installed in %s alias sne-chiffrement is Chiffrement_SNEV4, "
                             "not V5" % store)
    # after the rotation: V5 under the same alias
    keytool("-delete", "-alias", "sne-chiffrement", "-keystore", store, "-storepass", "changeit")
    keytool("-importcert", "-noprompt", "-alias", "sne-chiffrement", "-file",
            cert_file(pki, "chiffrement-v5"), "-keystore", store, "-storetype", "JKS",
            "-storepass", "changeit")
    assert probe(params)["status"] == "passed"


@needs_keytool
def test_pkcs12_made_by_keytool(pki, tmp_path, monkeypatch):
    store = str(tmp_path / "trust.p12")
    keytool("-importcert", "-noprompt", "-alias", "sne-chiffrement-v5", "-file",
            cert_file(pki, "chiffrement-v5"), "-keystore", store, "-storetype", "PKCS12",
            "-storepass", "trustpass")
    der, where = read_cert(pki, store, "pkcs12", password="trustpass")
    assert sha(der) == fingerprint(pki, "chiffrement-v5")
    assert where == "%s alias sne-chiffrement-v5" % store
    with pytest.raises(P.ProbeError, match="integrity check failed"):
        read_cert(pki, store, "pkcs12", password="wrong")
    with pytest.raises(P.ProbeError, match="give certificate.password"):
        read_cert(pki, store, "pkcs12")
    # without cryptography, keytool lists the store
    monkeypatch.setattr(_p12, "HAS_CRYPTOGRAPHY", False)
    der, _where = read_cert(pki, store, "pkcs12", alias="SNE-CHIFFREMENT-V5", password="trustpass")
    assert sha(der) == fingerprint(pki, "chiffrement-v5")


# ---------------------------------------------------------------------------------------------
# Returns, arguments, and the module's behaviour around probe()
# ---------------------------------------------------------------------------------------------


def test_parse_return():
    ok = R.parse_return(b'<RetourAsynchrone id="A" statut="REJETE"><Anomalie code="X" libelle="y"/>'
                        b'<Anomalie code="Z" libelle="w"/></RetourAsynchrone>')
    assert ok is not None and ok["id"] == "A" and ok["statut"] == "REJETE"
    assert ok["anomalies"] == [{"code": "X", "label": "y"}, {"code": "Z", "label": "w"}]
    assert R.parse_return(b"<MessageAsynchrone id='A'/>") is None
    assert R.parse_return(b"not xml") is None
    assert R.parse_return(b'<!DOCTYPE x [<!ENTITY a "b">]><RetourAsynchrone id="A"/>') is None


def test_arguments(pki):
    with pytest.raises(P.ArgumentError, match="expected_sha256 and/or expected_generation"):
        P.check_arguments(make_params(pki, expected_sha256=None, expected_generation=None))
    with pytest.raises(P.ArgumentError, match="not a SHA-256 fingerprint"):
        P.check_arguments(make_params(pki, expected_sha256="12:34"))
    assert P.check_arguments(make_params(pki, expected_sha256=fingerprint(pki, "chiffrement-v5")
                                         .replace(":", "").lower())) == fingerprint(pki, "chiffrement-v5")
    with pytest.raises(P.ArgumentError, match="the smtp option is required"):
        P.check_arguments(make_params(pki, transport="smtp"))


class Exit(Exception):
    pass


class FakeModule:
    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode
        self.warnings = []
        self.result = None
        self.failed = None

    def exit_json(self, **result):
        self.result, self.failed = result, False
        raise Exit()

    def fail_json(self, **result):
        self.result, self.failed = result, True
        raise Exit()

    def warn(self, text):
        self.warnings.append(text)

    def run_command(self, argv, data=None, environ_update=None, binary_data=False):
        return run_command(argv, data, environ_update)

    def get_bin_path(self, name, required=False):
        return shutil.which(name)


def run_module(params, check_mode=False):
    module = FakeModule(params, check_mode)
    with pytest.raises(Exit):
        P.run_async_probe(module)
    return module


def test_module_check_mode_sends_nothing(pki, sim):
    before = len(sim.admin("log"))
    module = run_module(make_params(pki, sim, "http"), check_mode=True)
    assert module.failed is False
    assert module.result == {"changed": False, "status": "skipped", "transport": "http", "elapsed": 0.0,
                             "msg": "check mode: no probe message sent"}
    assert not [e for e in sim.admin("log")[before:] if e["event"] == "message"]


def test_module_fails_unless_passed(pki, sim):
    module = run_module(make_params(pki, sim, "folder"))
    assert module.failed is False and module.result["status"] == "passed"
    assert "warnings_" not in module.result
    v4 = dict(ident="chiffrement-v4", send_anyway=True, timeout=1.0)
    module = run_module(make_params(pki, sim, "folder", **v4))
    assert module.failed is True and module.result["status"] == "timeout"
    assert module.warnings and "sending anyway" in module.warnings[0]
    module = run_module(make_params(pki, sim, "folder", fail_on_status=False, **v4))
    assert module.failed is False and module.result["status"] == "timeout"
    module = run_module(make_params(pki, sim, "folder", fail_on_status=False, expected_generation=None,
                                    expected_sha256=None))
    assert module.failed is True and "expected_generation" in module.result["msg"]


def test_timeout_is_measured_on_the_clock(pki, sim):
    """A deadline reached exactly is a timeout; the wait never sleeps past it."""
    now = [0.0]
    sleeps = []

    def clock():
        return now[0]

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    result = P.probe(make_params(pki, sim, "folder", ident="chiffrement-v4", send_anyway=True,
                                 timeout=1.0, poll_interval=0.3),
                     run_command, find_tool, clock=clock, sleep=sleep)
    assert result["status"] == "timeout"
    assert sleeps == pytest.approx([0.3, 0.3, 0.3, 0.1])
    assert result["elapsed"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# Split probe: every host sends, then every host awaits (the role's two phases)
# ---------------------------------------------------------------------------------------------


def await_params(pki, sim, transport, sent, **overrides):
    """What the role passes to phase=await: the transport, the id and time of the send."""
    params = make_params(pki, sim, transport, phase="await", certificate=None, guichet_id=None,
                         expected_sha256=None, expected_generation=None,
                         message_id=sent["message_id"], sent_at=sent["sent_at"], **overrides)
    return params


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sends_first_then_awaits_the_returns_together(pki, sim, transport):
    """Three hosts send, then each waits: the SNE's delay is waited for once, by the first;
    every host gets its own return (by id), and elapsed counts from its send."""
    sim.admin("config", {"delay_seconds": 1})
    sent = []
    for host in ("g1", "g2", "g3"):
        module = run_module(make_params(pki, sim, transport, phase="send", host_label=host))
        assert module.failed is False and module.result["status"] == "sent", module.result
        assert "return_xml" not in module.result and module.result["sent_at"] > 0
        sent.append(module.result)
    results = []
    for one in sent:
        module = run_module(await_params(pki, sim, transport, one, timeout=8.0, poll_interval=0.1))
        assert module.failed is False, module.result
        results.append(module.result)
    assert [r["status"] for r in results] == ["passed"] * 3
    assert [r["message_id"] for r in results] == [s["message_id"] for s in sent]
    assert all('id="%s"' % r["message_id"] in r["return_xml"] for r in results)
    assert all(r["elapsed"] >= 1.0 for r in results)


@pytest.mark.parametrize("transport", ["http", "folder"])
def test_one_wait_on_the_controller_over_the_whole_batch(pki, sim, transport):
    """Where the returns reach one place (HTTP: anywhere that reaches the URL), one await run
    with ``messages`` waits for a whole batch: the SNE's delay once, each message its own
    result by id; the V4 one (dropped by the SNE) times out without holding the others."""
    sim.admin("config", {"delay_seconds": 1})
    sent = []
    for host, ident in (("g1", "chiffrement-v5"), ("g2", "chiffrement-v4"), ("g3", "chiffrement-v5")):
        module = run_module(make_params(pki, sim, transport, phase="send", host_label=host, ident=ident,
                                        send_anyway=True))
        assert module.result["status"] == "sent", module.result
        sent.append(module.result)
    messages = [{"message_id": one["message_id"], "sent_at": one["sent_at"], "host": host}
                for one, host in zip(sent, ("g1", "g2", "g3"))]
    started = time.monotonic()
    module = run_module(make_params(pki, sim, transport, phase="await", certificate=None, guichet_id=None,
                                    expected_sha256=None, expected_generation=None, messages=messages,
                                    timeout=4.0, poll_interval=0.1, fail_on_status=False))
    waited = time.monotonic() - started
    assert module.failed is False, module.result
    result = module.result
    awaited = result["awaited"]
    assert sorted(awaited) == sorted(m["message_id"] for m in messages)
    by_host = {r["host_label"]: r for r in awaited.values()}
    assert by_host["g1"]["status"] == by_host["g3"]["status"] == "passed"
    assert by_host["g2"]["status"] == "timeout" and "dropped by the SNE" in by_host["g2"]["msg"]
    for host in ("g1", "g3"):
        assert 'id="%s"' % by_host[host]["message_id"] in by_host[host]["return_xml"]
        assert 1.0 <= by_host[host]["elapsed"] < by_host["g2"]["elapsed"]
    assert result["counts"] == {"passed": 2, "timeout": 1} and result["status"] == "timeout"
    assert "3 message(s) awaited together" in result["msg"]
    # One wait: bounded by the V4 message's deadline, not by three waits in turn.
    assert waited < 4.0 + 2.0
    module = run_module(make_params(pki, sim, transport, phase="await", certificate=None, guichet_id=None,
                                    expected_sha256=None, expected_generation=None, messages=messages,
                                    timeout=4.0, poll_interval=0.1))
    assert module.failed is True  # fail_on_status: not every message passed


def test_a_batch_wait_checks_every_message(pki, sim):
    good = {"message_id": "SNEPROBE-g1-1", "sent_at": 1000.0}
    for messages, expected in (([good, dict(good)], "listed twice"),
                               ([good, {"message_id": "../x", "sent_at": 1.0}], "message_id"),
                               ([{"message_id": "SNEPROBE-g2-1", "sent_at": "soon"}], "sent_at"),
                               (["SNEPROBE-g3-1"], "each item")):
        module = run_module(make_params(pki, sim, "http", phase="await", messages=messages))
        assert module.failed is True and expected in module.result["msg"], module.result
    module = run_module(make_params(pki, sim, "http", phase="await", messages=[good],
                                    message_id="SNEPROBE-g1-1", sent_at=1000.0))
    assert module.failed is True and "not both" in module.result["msg"]


def test_await_ends_at_sent_at_plus_timeout(pki, sim):
    """A wait that starts late never extends the deadline: sent long ago, timed out at once."""
    module = run_module(make_params(pki, sim, "folder", phase="send", ident="chiffrement-v4",
                                    send_anyway=True, fail_on_status=False))
    sent = dict(module.result, sent_at=module.result["sent_at"] - 100)
    now = [time.time()]
    sleeps = []
    result = R.await_return(await_params(pki, sim, "folder", sent, timeout=30.0),
                            {"message_id": sent["message_id"], "sent_at": sent["sent_at"]},
                            wall=lambda: now[0], sleep=sleeps.append)
    assert result["status"] == "timeout" and sleeps == []
    assert result["elapsed"] >= 100


def test_send_phase_errors_are_not_sent(pki, sim):
    """A host whose certificate is not the expected one sends nothing in phase=send: error, no id."""
    before = len(sim.admin("log"))
    module = run_module(make_params(pki, sim, "http", phase="send", ident="chiffrement-v4",
                                    fail_on_status=False))
    assert module.result["status"] == "error" and module.result["code"] == "generation"
    assert "sent_at" not in module.result
    assert not [e for e in sim.admin("log")[before:] if e["event"] == "message"]
    module = run_module(make_params(pki, sim, "http", phase="send", ident="chiffrement-v4"))
    assert module.failed is True


def test_await_phase_needs_what_the_send_returned(pki, sim):
    module = run_module(make_params(pki, sim, "http", phase="await", message_id=None, sent_at=1.0))
    assert module.failed is True and "message_id" in module.result["msg"]
    module = run_module(make_params(pki, sim, "http", phase="await", message_id="SNEPROBE-x", sent_at=None))
    assert module.failed is True and "sent_at" in module.result["msg"]
