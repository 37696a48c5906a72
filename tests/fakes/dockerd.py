# SPDX-License-Identifier: Apache-2.0
"""A small dockerd on a unix socket of the test's own, speaking the Engine API the agent's Docker
clients use: ``/_ping``, ``/version`` (the SDK's version negotiation), ``/containers/json``,
``/containers/<id>/json`` from inspect data the test gives, and ``/images/<ref>/json`` and
``/images/<ref>/get`` (a ``docker save`` tarball) for images it gives. Every request path is recorded, so a
test can tell which daemon a client actually asked."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

API_VERSION = "1.45"


@dataclass
class FakeDockerd:
    socket: Path
    containers: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # id → inspect data
    images: dict[str, tuple[Mapping[str, Any], bytes]] = field(default_factory=dict)  # ref → (inspect, save)
    requests: list[str] = field(default_factory=list)  # paths without the /v1.xx prefix
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def address_string(self) -> str:  # a unix socket has no peer address
        return "unix"

    def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        fake = self.server.fake
        path = unquote(urlsplit(self.path).path)
        parts = path.split("/")
        if len(parts) > 1 and parts[1].startswith("v1."):
            path = "/" + "/".join(parts[2:])
        with fake.lock:
            fake.requests.append(path)
        if path == "/_ping":
            self._send(200, b"OK", "text/plain")
        elif path == "/version":
            self._send(200, {"ApiVersion": API_VERSION, "MinAPIVersion": "1.24", "Version": "fake-0"})
        elif path == "/containers/json":
            self._send(200, [{"Id": cid, "Names": [a.get("Name", "")]} for cid, a in fake.containers.items()])
        elif path.startswith("/containers/") and path.endswith("/json"):
            ref = path.removeprefix("/containers/").removesuffix("/json")
            found = [a for cid, a in fake.containers.items() if cid.startswith(ref) or a.get("Name") == "/" + ref]
            if found:
                self._send(200, found[0])
            else:
                self._send(404, {"message": f"No such container: {ref}"})
        elif path.startswith("/images/") and path.endswith(("/json", "/get")):
            ref, _, what = path.removeprefix("/images/").rpartition("/")
            if ref not in fake.images:
                self._send(404, {"message": f"No such image: {ref}"})
            elif what == "json":
                self._send(200, fake.images[ref][0])
            else:
                self._send(200, fake.images[ref][1], "application/x-tar")
        else:
            self._send(404, {"message": f"page not found: {path}"})


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    fake: FakeDockerd


@contextmanager
def fake_dockerd(
    socket_path: Path,
    containers: Mapping[str, Mapping[str, Any]] | None = None,
    images: Mapping[str, tuple[Mapping[str, Any], bytes]] | None = None,
) -> Iterator[FakeDockerd]:
    """Serve a ``FakeDockerd`` at ``socket_path`` until the block ends."""
    fake = FakeDockerd(socket=socket_path, containers=dict(containers or {}), images=dict(images or {}))
    server = _Server(str(socket_path), _Handler)
    server.fake = fake
    t = threading.Thread(target=server.serve_forever, name="fake-dockerd", daemon=True)
    t.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        socket_path.unlink(missing_ok=True)
