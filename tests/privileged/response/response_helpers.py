# SPDX-License-Identifier: Apache-2.0
"""Helpers of the response's privileged tests (reading container files, connection probes)."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def read_in(container: Any, path: str) -> str:
    """A file inside a running container, read through /proc/<pid>/root (no docker exec)."""
    container.reload()
    try:
        return (Path("/proc") / str(container.attrs["State"]["Pid"]) / "root" / path.lstrip("/")).read_text()
    except OSError:
        return ""


@dataclass
class Probe:
    """A target container whose own init shell keeps connecting to a listener container and
    writes ``<n> ok|fail`` to /tmp/r (so no probe process enters it from outside), plus a
    listener in the target reachable from the listener container."""

    server: Any
    target: Any
    server_ip: str
    network: str = "bridge"

    def attempt(self) -> tuple[int, str]:
        text = read_in(self.target, "/tmp/r").split()
        return (int(text[0]), text[1]) if len(text) == 2 else (0, "")

    def outbound(self, timeout: float = 8.0) -> bool:
        """The result of the next two fresh attempts from inside the target (both must agree)."""
        start, _ = self.attempt()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n, result = self.attempt()
            if n >= start + 2:
                return result == "ok"
            time.sleep(0.05)
        raise AssertionError("the probe loop inside the target stopped")

    def inbound(self) -> bool:
        ip = container_ip(self.target, self.network)
        if not ip:
            return False
        r = self.server.exec_run(["sh", "-c", f"echo x | nc -w 1 {ip} 9090"])
        return r.exit_code == 0 and b"yo" in r.output


def container_ip(container: Any, network: str = "bridge") -> str:
    """The container's address on the Docker ``network`` ("" when it is not attached)."""
    container.reload()
    nets = container.attrs["NetworkSettings"].get("Networks") or {}
    return str((nets.get(network) or {}).get("IPAddress") or "")


def host_can_connect(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(3) == b"hi\n"
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
