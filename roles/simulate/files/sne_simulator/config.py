# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The simulator's configuration: its fixed limits and names, and the JSON file it is started with.

A generation is a certificate with its private key; ``current`` decrypts and answers, ``revoked``
ones are recognised and dropped. ``updated`` applies ``POST /admin/config`` to a copy.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .cms import Recipient, subject_key_identifier

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
SETTINGS = ("delay_seconds", "backlog", "current", "revoked")  # what POST /admin/config may change


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
            return recipient.ski == subject_key_identifier(self.certificate)
        return False

    def describe(self) -> Dict[str, Any]:
        return {"generation": self.name, "certificate": self.certificate_path,
                "serial_hex": "%X" % self.certificate.serial_number,
                "issuer": self.certificate.issuer.rfc4514_string()}


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


def updated(config: Config, changes: Dict[str, Any]) -> Config:
    """A copy of ``config`` with ``changes`` (``POST /admin/config``) applied; ConfigError if unusable."""
    unknown = set(changes) - set(SETTINGS)
    if unknown:
        raise ConfigError("unknown settings: %s" % ", ".join(sorted(unknown)))
    current, revoked = config.current, config.revoked
    if "current" in changes:
        current = load_generation(changes["current"], config.base)
    if "revoked" in changes:
        if not isinstance(changes["revoked"], list):
            raise ConfigError("revoked must be a list")
        revoked = [load_generation(item, config.base) for item in changes["revoked"]]
    _check_generations(current, revoked)
    delay = _number(changes.get("delay_seconds", config.delay_seconds), "delay_seconds")
    backlog = _bool(changes.get("backlog", config.backlog), "backlog")
    return dataclasses.replace(config, current=current, revoked=revoked, delay_seconds=delay, backlog=backlog)
