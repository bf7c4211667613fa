# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The SMTP transport: S/MIME mail in on 127.0.0.1 (aiosmtpd), returns out into a Maildir.

Only ``sne@<domain>`` is a recipient; the return goes to the envelope sender's Maildir
``STATE_DIR/maildir/<sender>/new/``, ``In-Reply-To`` the incoming Message-ID.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import email.utils
import os
import re
import shutil
import tempfile
import threading
import time
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, List, Optional

from .config import HOST, MAX_INPUT_BYTES

if TYPE_CHECKING:
    from .server import Simulator

_ADDRESS_RE = re.compile(r"^[a-z0-9._%+-]{1,64}@[a-z0-9.-]{1,190}$")


class Maildir:
    """Returns as mails in ``root/<envelope sender>/new/``: one Maildir per sender, made on demand."""

    def __init__(self, root: str, domain: str) -> None:
        self.root, self.domain = root, domain
        self._lock = threading.Lock()
        self._counter = 0

    def deliver(self, address: str, key: str, xml: bytes, in_reply_to: Optional[str]) -> str:
        if not _ADDRESS_RE.match(address) or ".." in address:
            raise ValueError("no usable envelope sender (%r) to send the return to" % address)
        box = os.path.join(self.root, address)
        if not os.path.isdir(box):
            # Build the Maildir under a hidden name and rename it into place, so a reader
            # never sees a box with new/ but not yet cur/.
            os.makedirs(self.root, exist_ok=True)
            building = tempfile.mkdtemp(prefix=".building-", dir=self.root)
            for sub in ("tmp", "new", "cur"):
                os.mkdir(os.path.join(building, sub))
            try:
                os.rename(building, box)
            except OSError:  # another delivery made it first
                shutil.rmtree(building, ignore_errors=True)
        domain = self.domain
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
        with self._lock:
            self._counter += 1
            now_us = time.time_ns() // 1000
            name = "%d.M%dP%dQ%d.sne-simulator" % (now_us // 1000000, now_us % 1000000, os.getpid(),
                                                   self._counter)
        temp = os.path.join(box, "tmp", name)
        with open(temp, "wb") as handle:
            handle.write(mail.as_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        final = os.path.join(box, "new", name)
        os.rename(temp, final)
        return final


class SmtpHandler:
    """aiosmtpd handler: one recipient, ``sne@<domain>``; the mail body goes to the engine."""

    def __init__(self, simulator: Simulator, address: str, maildir: Maildir) -> None:
        self.simulator = simulator
        self.address = address
        self.maildir = maildir

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
            return self.maildir.deliver(sender, key, xml, mail_id)

        return sim.engine.submit(data, "smtp", deliver, mail_from=sender, mail_message_id=mail_id)


def smtp_controller(handler: SmtpHandler, port: int, domain: str) -> Any:
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
