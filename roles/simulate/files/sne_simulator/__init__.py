# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SNE simulator: the asynchronous side of the national registration system, on loopback.

Guichets send CMS EnvelopedData messages encrypted with the ministry's encryption certificate.
The simulator decrypts them with the *current* generation's private key and sends back an XML
return; a message encrypted to a *revoked* generation is dropped without any return, as the
SNE did after V4 was revoked on 2016-01-07 (newsletter #37). Three transports share one engine:
HTTP (``POST /messages``, ``GET /returns/<id>``), SMTP (S/MIME mail in, returns into a Maildir)
and a drop folder (``outbox/*.p7m`` in, ``inbox/<id>.xml`` out). See ``simulator/README.md``;
the command line is in ``cli`` (``python simulator/sne_simulator start|stop|status|run``).

The simulator is the test oracle of the collection: it reads CMS and ASN.1 with its own small
reader (``cms``) ON PURPOSE and never imports ``plugins/module_utils``, the code it checks.

Modules: ``config`` (limits, the JSON configuration, generations), ``cms`` (BER/DER, CMS
EnvelopedData), ``engine`` (verdicts, returns, log, scheduling), ``http``, ``smtp``, ``folder``
(the transports), ``server`` (the process and its state file), ``cli``.

Test and demo tool only: it binds to 127.0.0.1, has no authentication, and holds private keys.
"""

from __future__ import annotations

from .cli import main
from .cms import Asn1Error, Envelope, Node, Recipient, extract_cms, parse_envelope, subject_key_identifier
from .config import (
    DEFAULT_DOMAIN,
    DEFAULT_LIFETIME,
    HOST,
    LOG_FILE,
    MAX_ADMIN_BYTES,
    MAX_CMS_BYTES,
    MAX_INPUT_BYTES,
    OUT_FILE,
    STATE_FILE,
    Config,
    ConfigError,
    Generation,
    load_config,
    load_generation,
)
from .engine import ID_RE, Engine, EventLog, Verdict, build_return, judge_message, utc_now
from .folder import FolderWatcher, atomic_write
from .http import HttpServer
from .server import Simulator, alive, read_state, state_path
from .smtp import Maildir, SmtpHandler

_alive = alive  # the name the tests have always called

__all__ = [
    "DEFAULT_DOMAIN", "DEFAULT_LIFETIME", "HOST", "ID_RE", "LOG_FILE", "MAX_ADMIN_BYTES", "MAX_CMS_BYTES",
    "MAX_INPUT_BYTES", "OUT_FILE", "STATE_FILE", "Asn1Error", "Config", "ConfigError", "Engine", "Envelope",
    "EventLog", "FolderWatcher", "Generation", "HttpServer", "Maildir", "Node", "Recipient", "Simulator",
    "SmtpHandler", "Verdict", "alive", "atomic_write", "build_return", "extract_cms", "judge_message",
    "load_config", "load_generation", "main", "parse_envelope", "read_state", "state_path",
    "subject_key_identifier", "utc_now",
]
