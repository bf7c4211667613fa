# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The simulator process: one engine and its transports, and the state file that says it runs.

``Simulator.start`` starts HTTP always, SMTP and the drop folder when configured, and returns
what goes into ``STATE_DIR/simulator.json`` (pid, where each transport listens).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Dict, Optional

from .config import DEFAULT_LIFETIME, HOST, LOG_FILE, STATE_FILE, Config
from .engine import Engine, EventLog, utc_now
from .folder import FolderWatcher
from .http import HttpServer
from .smtp import Maildir, SmtpHandler, smtp_controller


class Simulator:
    """One simulator: the engine, its log, and the transports the configuration turns on."""

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
        self._http: Optional[HttpServer] = None
        self._http_thread: Optional[threading.Thread] = None
        self._smtp: Any = None
        self._folder: Optional[FolderWatcher] = None
        self.info: Dict[str, Any] = {}

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> Dict[str, Any]:
        config = self.config
        self.engine.start()
        self._http = HttpServer((HOST, config.http_port), self)
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
            handler = SmtpHandler(self, address, Maildir(self.maildir, config.smtp_domain))
            self._smtp = smtp_controller(handler, config.smtp_port, config.smtp_domain)
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


def state_path(state_dir: str) -> str:
    """``STATE_DIR/simulator.json``: written by ``run`` once every transport listens."""
    return os.path.join(os.path.abspath(state_dir), STATE_FILE)


def read_state(state_dir: str) -> Optional[Dict[str, Any]]:
    """The state file's object, or None (no file, not JSON, not an object)."""
    try:
        with open(state_path(state_dir), encoding="utf-8") as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
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
