# SPDX-License-Identifier: Apache-2.0
"""The control socket: ``/run/riskguard/agent.sock``, mode 0600, root only.

Protocol: one JSON object per line. Request ``{"method": "status", "params": {...}}``; reply
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``. Peers are checked with
SO_PEERCRED: only uid 0 (or the agent's own uid) may talk to it.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("agent.control")

MAX_REQUEST = 1 << 20


class ControlError(Exception):
    """The agent answered with an error, or could not be reached."""


class ControlServer:
    """A threaded Unix-socket server dispatching to registered methods."""

    def __init__(self, path: Path, methods: Mapping[str, Callable[[Mapping[str, Any]], Any]]) -> None:
        self.path = Path(path)
        self.methods = methods
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is created 0600: no window with wider permissions
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        self.path.chmod(0o600)
        sock.listen(16)
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), name="control-conn", daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            try:
                creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                _pid, uid, _gid = struct.unpack("3i", creds)
                if uid not in (0, os.geteuid()):
                    self._reply(conn, {"ok": False, "error": "permission denied: root only"})
                    log.warning("control_refused", peer_uid=uid)
                    return
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    if len(data) > MAX_REQUEST:
                        self._reply(conn, {"ok": False, "error": "request too large"})
                        return
                try:
                    req = json.loads(data or b"{}")
                    method = str(req.get("method", ""))
                    params = req.get("params") or {}
                    if not isinstance(params, dict):
                        raise ValueError("params must be an object")
                except (ValueError, AttributeError) as exc:
                    self._reply(conn, {"ok": False, "error": f"bad request: {exc}"})
                    return
                handler = self.methods.get(method)
                if handler is None:
                    self._reply(conn, {"ok": False, "error": f"unknown method {method!r}"})
                    return
                try:
                    result = handler(params)
                except (KeyError, ValueError, LookupError) as exc:
                    self._reply(conn, {"ok": False, "error": str(exc.args[0] if exc.args else exc)})
                    return
                except Exception as exc:
                    log.error("control_method_failed", method=method, error=repr(exc))
                    self._reply(conn, {"ok": False, "error": f"internal error: {exc}"})
                    return
                self._reply(conn, {"ok": True, "result": result})
            except OSError as exc:
                log.debug("control_connection_failed", error=repr(exc))

    @staticmethod
    def _reply(conn: socket.socket, obj: Any) -> None:
        conn.sendall(json.dumps(obj, default=str).encode() + b"\n")

    def stop(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def call(path: Path, method: str, params: Mapping[str, Any] | None = None, timeout: float = 60.0) -> Any:
    """Call ``method`` on the agent listening at ``path``; raise ``ControlError`` on failure."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall(json.dumps({"method": method, "params": dict(params or {})}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
    except FileNotFoundError:
        raise ControlError(f"the agent is not running (no socket at {path})") from None
    except PermissionError:
        raise ControlError(f"permission denied on {path}: riskguardctl must run as root") from None
    except OSError as exc:
        raise ControlError(f"cannot reach the agent at {path}: {exc}") from None
    try:
        reply = json.loads(data)
    except ValueError:
        raise ControlError("the agent sent an unreadable reply") from None
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error", "unknown error")))
    return reply.get("result")
