# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the ``sne.guichet.async_probe`` module does once its arguments are parsed.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only, plus ``cryptography`` when present (see
``_envelope``).

One probe: read the encryption certificate where the guichet's software takes it, check it
is the expected generation, build a small XML test message with a unique id, encrypt it to
that certificate (CMS EnvelopedData, AES-256-CBC, RSA PKCS#1 v1.5), hand it to the SNE over
one transport, and wait for the return that carries the same id. The outcome is a
``status``: ``passed`` (ACCEPTE), ``rejected`` (REJETE), ``timeout`` (no return: what a
message encrypted to a revoked certificate gets), ``error`` (nothing could be concluded,
including a return whose ``statut`` is neither ACCEPTE nor REJETE), ``skipped`` (check mode).
"""

from __future__ import annotations

import datetime
import re
import secrets
import socket
import time
from typing import Any, Callable, Dict, List, Optional, Tuple
from xml.etree import ElementTree as ET

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import (
    TOOL_MISSING,
    ArgumentError,
    ProbeError,
    StoreError,
)
from ansible_collections.sne.guichet.plugins.module_utils._common.fingerprint import normalize_fingerprint
from ansible_collections.sne.guichet.plugins.module_utils._common.tools import module_tools
from ansible_collections.sne.guichet.plugins.module_utils._formats.detect import JCEKS, detect
from ansible_collections.sne.guichet.plugins.module_utils._formats.keystore import open_keystore
from ansible_collections.sne.guichet.plugins.module_utils._probe.envelope import (
    EnvelopeError,
    check_envelope,
    encrypt,
)
from ansible_collections.sne.guichet.plugins.module_utils._probe.returns import (
    await_batch,
    await_return,
    error_result,
    transport_for,
)
from ansible_collections.sne.guichet.plugins.module_utils._probe.transports import TransportError
from ansible_collections.sne.guichet.plugins.module_utils._x509 import (
    cert_info,
    common_names,
    der_to_pem,
    generation_matches,
    load_certificates,
)

CERTIFICATE_TYPES = ("pem", "der", "jks", "pkcs12")
MAX_CERTIFICATE_FILE = 10 * 1024 * 1024
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

# (alias or locator, certificate DER)
Candidate = Tuple[Optional[str], bytes]


# --------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------

def check_await_arguments(params: Dict[str, Any]) -> None:
    """The arguments of ``phase=await``: the message (``message_id``, ``sent_at``) or the
    messages (``messages``) to wait for, and the transport."""
    messages = params.get("messages")
    if messages:
        if params.get("message_id"):
            raise ArgumentError("phase=await takes message_id or messages, not both")
        seen = set()
        for item in messages:
            if not isinstance(item, dict):
                raise ArgumentError("messages: each item is {message_id, sent_at}, got %r" % (item,))
            _check_message(item.get("message_id"), item.get("sent_at"), "messages: ")
            if item["message_id"] in seen:
                raise ArgumentError("messages: message %s is listed twice" % item["message_id"])
            seen.add(item["message_id"])
    else:
        _check_message(params.get("message_id"), params.get("sent_at"), "")
    _check_wait(params)


def _check_message(message_id: Any, sent_at: Any, where: str) -> None:
    if not isinstance(message_id, str) or not _ID_RE.match(message_id):
        raise ArgumentError("%sphase=await needs message_id, the id phase=send returned (got %r)"
                            % (where, message_id))
    try:
        ok = sent_at is not None and float(sent_at) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ArgumentError("%sphase=await needs sent_at, the time phase=send returned (got %r)"
                            % (where, sent_at))


def _check_wait(params: Dict[str, Any]) -> None:
    if params.get("timeout") is None or params["timeout"] < 0:
        raise ArgumentError("timeout must be a number of seconds >= 0")
    if params.get("poll_interval") is None or params["poll_interval"] <= 0:
        raise ArgumentError("poll_interval must be a number of seconds > 0")
    transport = params.get("transport")
    if not params.get(transport):
        raise ArgumentError("transport is %s: the %s option is required" % (transport, transport))


def check_arguments(params: Dict[str, Any]) -> Optional[str]:
    """Normalise what needs it; return the expected fingerprint (canonical) or None."""
    expected = None
    if params.get("expected_sha256"):
        try:
            expected = normalize_fingerprint(params["expected_sha256"])
        except ValueError as exc:
            raise ArgumentError("expected_sha256: %s" % exc)
    if not expected and not params.get("expected_generation"):
        raise ArgumentError("give expected_sha256 and/or expected_generation: the probe proves "
                            "nothing unless it knows which certificate should be installed")
    _check_wait(params)
    if not (params.get("guichet_id") or "").strip():
        raise ArgumentError("guichet_id must not be empty")
    if not (params.get("message_type") or "").strip():
        raise ArgumentError("message_type must not be empty")
    if params.get("certificate") is None and not params.get("certificate_pem"):
        raise ArgumentError("give certificate (where the guichet reads it) or certificate_pem")
    return expected


# --------------------------------------------------------------------------------------
# Reading the certificate
# --------------------------------------------------------------------------------------

def _detect_type(data: bytes) -> str:
    kind = detect(data)
    if kind == JCEKS:
        return "jks"  # one reader for both
    if kind not in CERTIFICATE_TYPES:
        raise ProbeError("certificate", "the file is neither PEM, DER, JKS nor PKCS#12: give "
                         "certificate.type")
    return str(kind)


def _keystore_candidates(path: str, data: bytes, kind: str, password: Optional[str], run_command: Any,
                         find_tool: Any) -> List[Candidate]:
    """The certificates the guichet may use: trusted ones, and each private key's own."""
    if kind == "jks":
        password = password or None  # an empty JKS password checks nothing
    opened = open_keystore(path, data, password, kind, run_command, find_tool,
                           ask="certificate.password")
    if opened.problem is not None:
        if opened.problem.code == TOOL_MISSING:
            raise StoreError(TOOL_MISSING, opened.problem.reason + ", or read the certificate "
                             "elsewhere and give certificate_pem")
        raise opened.problem
    return [(c.alias, c.der) for c in opened.certificates if c.index in (None, 0)]


def _label(der: bytes) -> str:
    """Short name of a certificate for messages: its CN, else its subject."""
    info = cert_info(der)
    names = common_names(info["subject"])
    return ", ".join(names) if names else (info["subject"] or "(empty subject)")


def _select(candidates: List[Candidate], alias: Optional[str], where: str, keystore: bool
            ) -> Tuple[bytes, Optional[str]]:
    """The one certificate the guichet uses among ``candidates``."""
    if not candidates:
        raise ProbeError("certificate", "%s holds no certificate" % where)
    if alias:
        wanted = alias.strip()
        if keystore:
            found = [c for c in candidates if (c[0] or "").lower() == wanted.lower()]
        elif wanted.startswith("#") and wanted[1:].isdigit():
            index = int(wanted[1:])
            found = [candidates[index]] if index < len(candidates) else []
        else:
            found = [c for c in candidates
                     if wanted.lower() in [n.lower() for n in common_names(cert_info(c[1])["subject"])]]
        if not found:
            known = ", ".join(sorted(set(c[0] for c in candidates if c[0]))) if keystore else ", ".join(
                "%s %s" % (c[0], _label(c[1])) for c in candidates)
            raise ProbeError("certificate", "%s has no %s %s (it holds: %s)" % (
                where, "alias" if keystore else "certificate named", alias, known or "no named entry"))
        if len(found) > 1:
            raise ProbeError("certificate", "%s holds %d certificates named %s: select one by its "
                             "position (#0, #1...)" % (where, len(found), alias))
        return found[0][1], found[0][0]
    leaves = [c for c in candidates if not cert_info(c[1])["is_ca"]] or candidates
    if len(leaves) > 1:
        names = ", ".join("%s (%s)" % (c[0], _label(c[1])) for c in leaves)
        raise ProbeError("certificate", "%s holds %d certificates that could be the encryption "
                         "certificate: %s; set certificate.alias to the one the guichet uses"
                         % (where, len(leaves), names))
    return leaves[0][1], leaves[0][0]


def read_certificate(params: Dict[str, Any], run_command: Any = None, find_tool: Any = None
                     ) -> Tuple[bytes, str]:
    """(DER, where it was read: "/opt/guichet/conf/app.jks alias sne-chiffrement")."""
    if params.get("certificate_pem"):
        data = params["certificate_pem"].encode("utf-8")
        try:
            candidates: List[Candidate] = [("#%d" % i, der) for i, der in enumerate(load_certificates(data))]
        except ValueError as exc:
            raise ProbeError("certificate", "certificate_pem: %s" % exc)
        der, _name = _select(candidates, None, "certificate_pem", keystore=False)
        return der, "certificate_pem"
    spec = params["certificate"]
    path = spec["path"]
    kind = spec.get("type")
    alias = spec.get("alias")
    password = spec.get("password")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CERTIFICATE_FILE + 1)
    except OSError as exc:
        raise ProbeError("certificate", "cannot read %s: %s" % (path, exc.strerror or exc))
    if len(data) > MAX_CERTIFICATE_FILE:
        raise ProbeError("certificate", "%s is larger than %d bytes" % (path, MAX_CERTIFICATE_FILE))
    kind = kind or _detect_type(data)
    try:
        if kind in ("jks", "pkcs12"):
            candidates = _keystore_candidates(path, data, kind, password, run_command, find_tool)
        else:
            if kind == "der" and data.lstrip()[:10] == b"-----BEGIN":
                raise ProbeError("certificate", "%s is PEM, not DER: set certificate.type to pem" % path)
            candidates = [("#%d" % i, der) for i, der in enumerate(load_certificates(data))]
    except StoreError as exc:
        raise ProbeError("certificate", "%s (%s): %s" % (path, kind, exc.reason))
    except ValueError as exc:
        raise ProbeError("certificate", "%s (%s): %s" % (path, kind, exc))
    der, name = _select(candidates, alias, path, keystore=kind in ("jks", "pkcs12"))
    if kind in ("jks", "pkcs12"):
        where = "%s alias %s" % (path, name)
    elif len(candidates) > 1:
        where = "%s (certificate %s of %d)" % (path, name, len(candidates))
    else:
        where = path
    return der, where


def expectation_problem(info: Dict[str, Any], where: str, expected_sha256: Optional[str],
                        generation: Optional[str]) -> Optional[str]:
    """Why the certificate is not the expected one, or None."""
    names = common_names(info["subject"])
    label = ", ".join(names) if names else info["subject"]
    source = "the certificate given in certificate_pem" if where == "certificate_pem" else \
        "the certificate installed in %s" % where
    if generation and not generation_matches(info["subject"], generation):
        return "%s is %s, not %s" % (source, label, generation)
    if expected_sha256 and info["sha256"] != expected_sha256:
        return ("%s is %s with SHA-256 %s, not the expected certificate (SHA-256 %s)"
                % (source, label, info["sha256"], expected_sha256))
    return None


# --------------------------------------------------------------------------------------
# The message and its return
# --------------------------------------------------------------------------------------

def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def new_message_id(host: Optional[str] = None) -> str:
    """SNEPROBE-<host>-<UTC time>-<random>: unique per run, within the SNE's id pattern."""
    name = host or socket.gethostname().split(".")[0] or "host"
    name = re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip(".-")[:48] or "host"
    return "SNEPROBE-%s-%s-%s" % (name, _utc_now().strftime("%Y%m%dT%H%M%SZ"), secrets.token_hex(4))


def build_message(message_id: str, guichet: str, message_type: str = "TEST",
                  content: str = "sonde asynchrone sne.guichet") -> bytes:
    root = ET.Element("MessageAsynchrone", {"id": message_id, "version": "1"})
    ET.SubElement(root, "Guichet").text = guichet
    ET.SubElement(root, "Type").text = message_type
    ET.SubElement(root, "Horodatage").text = _utc_now().strftime("%Y-%m-%dT%H:%M:%SZ")
    ET.SubElement(root, "Contenu").text = content
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


# --------------------------------------------------------------------------------------
# The probe
# --------------------------------------------------------------------------------------

def send_probe(params: Dict[str, Any], run_command: Any = None,
               find_tool: Optional[Callable[[str], Optional[str]]] = None,
               message_id: Optional[str] = None, wall: Callable[[], float] = time.time,
               ) -> Tuple[Dict[str, Any], Any]:
    """Phase one: read the certificate, check it, build and encrypt the message, send it.

    Returns the result (status ``sent`` with ``message_id`` and ``sent_at``, the wall-clock
    second it was handed over, or ``error``) and the transport (None when nothing was sent).
    Raises ArgumentError only."""
    expected_sha256 = check_arguments(params)
    generation = params.get("expected_generation")
    transport_name = params["transport"]
    result: Dict[str, Any] = {"changed": False, "status": "error", "transport": transport_name,
                              "elapsed": 0.0, "warnings_": []}

    # 1. the certificate the guichet uses, and is it the expected one?
    try:
        der, where = read_certificate(params, run_command, find_tool)
        info = cert_info(der)
    except ProbeError as exc:
        return error_result(result, exc.code, exc.reason), None
    except ValueError as exc:
        return error_result(result, "certificate", "the certificate cannot be read: %s" % exc), None
    problem = expectation_problem(info, where, expected_sha256, generation)
    result["certificate"] = {
        "source": where, "subject": info["subject"], "issuer": info["issuer"],
        "serial": info["serial"], "sha256": info["sha256"], "not_after": info["not_after"],
        "expected": problem is None, "pem": der_to_pem(der).decode("ascii"),
    }
    if problem is not None:
        if not params.get("send_anyway"):
            return error_result(result, "generation", problem), None
        result["warnings_"].append("%s; sending anyway (send_anyway)" % problem)

    # 2. the message, encrypted to that certificate
    message_id = message_id or new_message_id(params.get("host_label"))
    if not _ID_RE.match(message_id):
        raise ArgumentError("host_label gives a message id the SNE refuses: %r" % message_id)
    result["message_id"] = message_id
    plaintext = build_message(message_id, params["guichet_id"].strip(), params["message_type"].strip())
    result["message_xml"] = plaintext.decode("utf-8")
    try:
        cms, backend = encrypt(plaintext, der, params.get("encryption") or "auto", run_command, find_tool)
        result["encryption"] = backend
        result["envelope"] = check_envelope(cms, der)
    except EnvelopeError as exc:
        return error_result(result, exc.code, exc.reason), None
    result["envelope"]["recipient_issuer"] = info["issuer"]

    # 3. send
    transport = transport_for(params)
    result["transport_details"] = transport.describe()
    result["sent_at"] = wall()
    try:
        result["receipt"] = transport.send(message_id, cms)
    except TransportError as exc:
        return error_result(result, "send", "message %s could not be sent: %s" % (message_id, exc)), None
    result.update(status="sent", msg="message %s sent; its return is awaited" % message_id)
    return result, transport


def probe(params: Dict[str, Any], run_command: Any = None,
          find_tool: Optional[Callable[[str], Optional[str]]] = None,
          message_id: Optional[str] = None, clock: Callable[[], float] = time.time,
          sleep: Callable[[float], None] = time.sleep) -> Dict[str, Any]:
    """Run one whole probe (send, then wait for the return); return the module's result.
    Raises ArgumentError only; every other problem is a result with status ``error``."""
    result, transport = send_probe(params, run_command, find_tool, message_id, wall=clock)
    if result["status"] != "sent":
        if "sent_at" in result:
            result["elapsed"] = round(max(0.0, clock() - result["sent_at"]), 3)
        return result
    return await_return(params, result, transport, wall=clock, sleep=sleep)


def run_async_probe(module: Any) -> None:
    params = module.params
    phase = params.get("phase") or "probe"
    try:
        if phase == "await":
            check_await_arguments(params)
        else:
            check_arguments(params)
    except ArgumentError as exc:
        module.fail_json(msg=str(exc))
    if module.check_mode:
        module.exit_json(changed=False, status="skipped", transport=params["transport"], elapsed=0.0,
                         msg="check mode: no probe message sent")

    run_command, find_tool = module_tools(module)

    try:
        if phase == "await" and params.get("messages"):
            result = await_batch(params)
        elif phase == "await":
            result = await_return(params, {"changed": False, "status": "error", "warnings_": [],
                                           "transport": params["transport"],
                                           "message_id": params["message_id"],
                                           "sent_at": params["sent_at"]})
        elif phase == "send":
            result = send_probe(params, run_command, find_tool)[0]
        else:
            result = probe(params, run_command, find_tool)
    except ArgumentError as exc:
        module.fail_json(msg=str(exc))
    for warning in result.pop("warnings_", []):
        module.warn(warning)
    wanted = "sent" if phase == "send" else "passed"
    if result["status"] != wanted and params["fail_on_status"]:
        module.fail_json(**result)
    module.exit_json(**result)
