# SPDX-License-Identifier: Apache-2.0
"""A local HTTP receiver for webhook / Elasticsearch ``_bulk`` tests, plus a dead endpoint.

``Receiver`` answers each request with the next status of a script (then ``default``),
records method, path, headers and body, and can reply with a JSON body built from the request
(``reply``) so it can play an Elasticsearch ``_bulk`` endpoint. ``dead_endpoint`` is a socket
that listens but never accepts: connections complete in the kernel's backlog and every request
then hangs until the client's timeout, the worst case for a webhook.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    script: list[int] = field(default_factory=list)
    default: int = 200
    reply: Callable[[Received], Any] | None = None
    requests: list[Received] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.requests) >= count, timeout)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        rcv = self.server.receiver
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        with rcv.lock:
            code = rcv.script.pop(0) if rcv.script else rcv.default
        payload = json.dumps(rcv.reply(req) if rcv.reply else {"ok": code < 300}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        with rcv.arrived:
            rcv.requests.append(req)
            rcv.arrived.notify_all()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver


@contextmanager
def receiver(
    script: list[int] | None = None, default: int = 200, reply: Callable[[Received], Any] | None = None
) -> Iterator[Receiver]:
    """Run a ``Receiver`` on 127.0.0.1 (a free port) for the duration of the block."""
    srv = _Server(("127.0.0.1", 0), _Handler)
    rcv = Receiver(script=list(script or []), default=default, reply=reply)
    rcv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    srv.receiver = rcv
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield rcv
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(2)


@contextmanager
def dead_endpoint() -> Iterator[str]:
    """A URL whose server accepts TCP connections (backlog) but never reads or answers."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    try:
        yield f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    finally:
        s.close()
