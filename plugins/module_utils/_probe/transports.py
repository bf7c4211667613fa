# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How a probe message reaches the SNE and how its return comes back.

This API is private to the sne.guichet collection; it may change without notice.
Target-side code: Python standard library only (and Ansible's ``open_url``).

Every transport has ``send(message_id, cms) -> receipt or None`` (raises TransportError
when the message could not be handed over) and ``poll(message_id) -> list of candidate
returns`` (bytes of XML documents that may be the return; the caller keeps the one whose
``id`` is the message id and ignores the others). ``poll`` never raises for "not yet":
it returns an empty list, and keeps the last problem it met in ``last_error``.

``http``
    ``POST <url>/messages`` (the DER envelope, ``Content-Type: application/pkcs7-mime``),
    then ``GET <url>/returns/<message id>`` (404 while there is none).
``smtp``
    an S/MIME mail (one ``application/pkcs7-mime`` entity, base64, CRLF line ends as SMTP
    wants) sent with smtplib; returns are mails in a Maildir (read with ``mailbox``, never
    modified), whose body is the XML return.
``folder``
    ``<outbox>/<message id>.p7m`` (written as a hidden temporary file, synced, then renamed so
    that the SNE's side never takes a half-written file); the return is ``<inbox>/<message
    id>.xml``.
"""

from __future__ import annotations

import email.policy
import email.utils
import json
import mailbox
import os
import smtplib
from email.mime.application import MIMEApplication
from typing import Any, Dict, List, NamedTuple, Optional, Set
from urllib.error import HTTPError, URLError
from urllib.parse import quote

from ansible.module_utils.urls import open_url

from ansible_collections.sne.guichet.plugins.module_utils._common.errors import TransportError

MAX_RETURN_BYTES = 1024 * 1024  # a return larger than this is not read (the SNE's are < 1 KiB)
TRANSPORTS = ("http", "smtp", "folder")


def _describe_http_error(exc: Exception) -> str:
    if isinstance(exc, HTTPError):
        return "HTTP %s %s" % (exc.code, exc.reason)
    if isinstance(exc, URLError):
        return "%s" % (exc.reason,)
    return "%s: %s" % (type(exc).__name__, exc)


class _Transport:
    """What every transport shares: the last error seen while polling, and the size bound."""

    name = ""

    def __init__(self) -> None:
        self.last_error: Optional[str] = None

    def _failed(self, message: str) -> List[bytes]:
        self.last_error = message
        return []

    def _bounded(self, data: bytes, where: str) -> List[bytes]:
        if len(data) > MAX_RETURN_BYTES:
            return self._failed("%s: return larger than %d bytes, ignored" % (where, MAX_RETURN_BYTES))
        return [data]


class HttpTransport(_Transport):
    name = "http"

    def __init__(self, url: str, validate_certs: bool = True, ca_path: Optional[str] = None,
                 use_proxy: bool = True, timeout: float = 30.0) -> None:
        super().__init__()
        self.url = url.rstrip("/")
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.use_proxy = use_proxy
        self.timeout = timeout

    def _open(self, url: str, data: Optional[bytes] = None, method: str = "GET",
              headers: Optional[Dict[str, str]] = None) -> Any:
        return open_url(url, data=data, method=method, headers=headers or {},
                        validate_certs=self.validate_certs, ca_path=self.ca_path,
                        use_proxy=self.use_proxy, timeout=self.timeout,
                        http_agent="sne.guichet-async_probe", follow_redirects="safe")

    def send(self, message_id: str, cms: bytes) -> Optional[str]:
        target = self.url + "/messages"
        try:
            response = self._open(target, data=cms, method="POST",
                                  headers={"Content-Type": "application/pkcs7-mime"})
            try:
                body = response.read(64 * 1024)
            finally:
                response.close()
        except (HTTPError, URLError, OSError, ValueError) as exc:
            raise TransportError("POST %s failed: %s" % (target, _describe_http_error(exc)))
        try:
            answer = json.loads(body.decode("utf-8"))
            receipt = answer.get("id") if isinstance(answer, dict) else None
            return str(receipt) if receipt is not None else None
        except (ValueError, UnicodeDecodeError):
            return None

    def poll(self, message_id: str) -> List[bytes]:
        target = "%s/returns/%s" % (self.url, quote(message_id, safe=""))
        try:
            response = self._open(target)
            try:
                data = response.read(MAX_RETURN_BYTES + 1)
            finally:
                response.close()
        except HTTPError as exc:
            if exc.code != 404:
                self.last_error = "GET %s: %s" % (target, _describe_http_error(exc))
            return []
        except (URLError, OSError, ValueError) as exc:
            return self._failed("GET %s: %s" % (target, _describe_http_error(exc)))
        return self._bounded(data, "GET " + target)

    def describe(self) -> Dict[str, Any]:
        return {"name": self.name, "url": self.url}


def smime_entity(cms: bytes, sender: str, recipient: str, subject: str) -> bytes:
    """An S/MIME enveloped-data mail: one application/pkcs7-mime entity, CRLF line ends."""
    part = MIMEApplication(cms, "pkcs7-mime", name="smime.p7m")
    part.set_param("smime-type", "enveloped-data")
    part.add_header("Content-Disposition", "attachment", filename="smime.p7m")
    part["From"] = sender
    part["To"] = recipient
    part["Subject"] = subject
    part["Date"] = email.utils.formatdate(usegmt=True)
    domain = sender.rsplit("@", 1)[-1] if "@" in sender else None
    part["Message-ID"] = email.utils.make_msgid("sneprobe", domain=domain)
    return part.as_bytes(policy=email.policy.SMTP)


def _mail_xml(raw: bytes) -> Optional[bytes]:
    """The XML document a return mail carries (its XML part, or its body)."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    fallback = None
    for part in message.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        if part.get_content_subtype() == "xml":
            return payload
        if fallback is None and payload.lstrip()[:1] == b"<":
            fallback = payload
    return fallback


class SmtpSettings(NamedTuple):
    """Where the SMTP transport sends (host, port, envelope) and where returns arrive."""

    host: str
    port: int
    sender: str
    recipient: str
    maildir: str


class SmtpTransport(_Transport):
    name = "smtp"

    def __init__(self, host: str, port: int, sender: str, recipient: str, maildir: str,
                 timeout: float = 30.0) -> None:
        super().__init__()
        self.settings = SmtpSettings(host, port, sender, recipient, maildir)
        self.host, self.port, self.sender, self.recipient, self.maildir = self.settings
        self.timeout = timeout
        self._examined: Set[str] = set()  # Maildir keys already read (and not ours)

    def send(self, message_id: str, cms: bytes) -> Optional[str]:
        payload = smime_entity(cms, self.sender, self.recipient, "SNEPROBE " + message_id)
        where = "SMTP %s:%s" % (self.host, self.port)
        try:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise TransportError("%s: cannot connect: %s" % (where, exc))
        try:
            client.ehlo_or_helo_if_needed()
            code, reply = client.mail(self.sender)
            if code != 250:
                raise TransportError("%s refused the sender %s: %s %s"
                                     % (where, self.sender, code, reply.decode("utf-8", "replace")))
            code, reply = client.rcpt(self.recipient)
            if code not in (250, 251):
                raise TransportError("%s refused the recipient %s: %s %s"
                                     % (where, self.recipient, code, reply.decode("utf-8", "replace")))
            code, reply = client.data(payload)
            text = reply.decode("utf-8", "replace")
            if code != 250:
                raise TransportError("%s refused the message: %s %s" % (where, code, text))
        except (OSError, smtplib.SMTPException) as exc:
            raise TransportError("%s: %s" % (where, exc))
        finally:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()
        words = text.split()
        return words[-1] if words else None

    def poll(self, message_id: str) -> List[bytes]:
        if not os.path.isdir(self.maildir):
            self.last_error = "the Maildir %s does not exist (yet)" % self.maildir
            return []
        try:
            box = mailbox.Maildir(self.maildir, factory=None, create=False)
            keys = [key for key in box.keys() if key not in self._examined]
        except (OSError, mailbox.Error) as exc:
            self.last_error = "cannot read the Maildir %s: %s" % (self.maildir, exc)
            return []
        found = []
        for key in keys:
            try:
                raw = box.get_bytes(key)
            except (OSError, KeyError) as exc:  # moved or deleted meanwhile
                self.last_error = "cannot read the mail %s: %s" % (key, exc)
                continue
            self._examined.add(key)
            if len(raw) > MAX_RETURN_BYTES:
                continue
            xml = _mail_xml(raw)
            if xml is not None:
                found.append(xml)
        return found

    def describe(self) -> Dict[str, Any]:
        return dict(self.settings._asdict(), name=self.name)


class FolderTransport(_Transport):
    name = "folder"

    def __init__(self, outbox: str, inbox: str) -> None:
        super().__init__()
        self.outbox = outbox
        self.inbox = inbox

    def send(self, message_id: str, cms: bytes) -> Optional[str]:
        name = message_id + ".p7m"
        final = os.path.join(self.outbox, name)
        temp = os.path.join(self.outbox, ".%s.%d.tmp" % (name, os.getpid()))
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(cms)
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(temp, final)
        except OSError as exc:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise TransportError("cannot write %s: %s" % (final, exc.strerror or exc))
        return final

    def poll(self, message_id: str) -> List[bytes]:
        path = os.path.join(self.inbox, message_id + ".xml")
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_RETURN_BYTES + 1)
        except FileNotFoundError:
            if not os.path.isdir(self.inbox):
                self.last_error = "the inbox %s does not exist" % self.inbox
            return []
        except OSError as exc:
            return self._failed("cannot read %s: %s" % (path, exc.strerror or exc))
        return self._bounded(data, path)

    def describe(self) -> Dict[str, Any]:
        return {"name": self.name, "outbox": self.outbox, "inbox": self.inbox}


def make_transport(name: str, options: Dict[str, Any], connect_timeout: float) -> Any:
    """The transport ``name`` configured with its sub-options (the module's dict option)."""
    if name == "http":
        return HttpTransport(options["url"], validate_certs=options.get("validate_certs", True),
                             ca_path=options.get("ca_path"), use_proxy=options.get("use_proxy", True),
                             timeout=connect_timeout)
    if name == "smtp":
        return SmtpTransport(options.get("host") or "localhost", int(options.get("port") or 25),
                             options["sender"], options["recipient"], options["maildir"],
                             timeout=connect_timeout)
    if name == "folder":
        return FolderTransport(options["outbox"], options["inbox"])
    raise ValueError("unknown transport %r" % name)
