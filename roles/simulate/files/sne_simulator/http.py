# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The HTTP transport: ``POST /messages``, ``GET /returns/<id>``, and the admin API.

``/admin/log``, ``/admin/status``, ``/admin/release``, ``/admin/config`` and ``/health`` drive
the engine; see ``simulator/README.md``. One bad request never kills the server.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

from .config import MAX_ADMIN_BYTES, MAX_INPUT_BYTES, MAX_KEPT_RETURNS, ConfigError

if TYPE_CHECKING:
    from .server import Simulator


class HttpServer(ThreadingHTTPServer):
    """The HTTP transport and admin API; it keeps the returns it has to give, by message id."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: Tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        self._returns: OrderedDict[str, bytes] = OrderedDict()
        self._returns_lock = threading.Lock()
        super().__init__(address, _HttpHandler)

    def deliver(self, key: str, xml: bytes) -> str:
        with self._returns_lock:
            self._returns[key] = xml
            self._returns.move_to_end(key)
            while len(self._returns) > MAX_KEPT_RETURNS:
                self._returns.popitem(last=False)
        return "GET /returns/" + key

    def stored_return(self, key: str) -> Optional[bytes]:
        with self._returns_lock:
            return self._returns.get(key)


class _HttpHandler(BaseHTTPRequestHandler):
    server_version = "SNE-simulator/1"
    timeout = 15  # seconds a client may stall

    @property
    def http(self) -> HttpServer:
        server = self.server
        assert isinstance(server, HttpServer)
        return server

    @property
    def sim(self) -> Simulator:
        return self.http.simulator

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
                xml = self.http.stored_return(unquote(path[len("/returns/"):]))
                if xml is None:
                    self._json(404, {"error": "no return"})
                else:
                    self._send(200, xml, "application/xml; charset=utf-8")
            elif method == "POST" and path == "/messages":
                body = self._body(MAX_INPUT_BYTES)
                if body is not None:
                    receipt = sim.engine.submit(body, "http", self.http.deliver,
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
