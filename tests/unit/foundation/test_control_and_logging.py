# SPDX-License-Identifier: Apache-2.0
"""Control socket protocol and permissions; JSON log lines; sd_notify datagrams."""

from __future__ import annotations

import io
import json
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
import structlog

from agent.control import ControlError, ControlServer, call
from agent.logsetup import MAX_VALUE_CHARS, configure_logging
from agent.sdnotify import notify, watchdog_interval


@pytest.fixture
def server(tmp_path: Path) -> Any:
    def boom(_p: Any) -> Any:
        raise RuntimeError("kaput")

    def lookup(p: Any) -> Any:
        if p.get("id") != "known":
            raise LookupError(f"no container {p.get('id')!r}")
        return {"id": "known"}

    srv = ControlServer(tmp_path / "run" / "agent.sock", {"echo": lambda p: p, "boom": boom, "get": lookup})
    srv.start()
    yield srv
    srv.stop()


def test_roundtrip_and_socket_mode(server: ControlServer) -> None:
    assert call(server.path, "echo", {"a": [1, 2]}) == {"a": [1, 2]}
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o600


def test_errors_are_replies_not_crashes(server: ControlServer) -> None:
    with pytest.raises(ControlError, match="unknown method 'nope'"):
        call(server.path, "nope")
    with pytest.raises(ControlError, match="no container 'x'"):
        call(server.path, "get", {"id": "x"})
    with pytest.raises(ControlError, match="internal error: kaput"):
        call(server.path, "boom")
    # garbage on the wire
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(server.path))
        s.sendall(b"{not json\n")
        reply = json.loads(s.makefile().readline())
    assert reply["ok"] is False and reply["error"].startswith("bad request")
    assert call(server.path, "echo", {"still": "alive"}) == {"still": "alive"}


def test_missing_socket_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="the agent is not running"):
        call(tmp_path / "none.sock", "status")


def test_json_lines_with_capped_values_and_no_forged_keys() -> None:
    buf = io.StringIO()
    configure_logging("info", "json", stream=buf)
    log = structlog.get_logger("t")
    forged = 'x"}\n{"event": "container_released", "level": "info'
    log.info("log_line_seen", container_id="abc", line=forged, big="y" * (MAX_VALUE_CHARS * 3))
    log.debug("not_shown")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert obj["event"] == "log_line_seen" and obj["line"] == forged and obj["level"] == "info"
    assert len(obj["big"]) < MAX_VALUE_CHARS + 40
    assert "timestamp" in obj


def test_sd_notify_datagrams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert notify("READY=1") is False  # not under systemd
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as rx:
        rx.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert notify("READY=1\nSTATUS=ok")
        assert rx.recv(100) == b"READY=1\nSTATUS=ok"
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert watchdog_interval() is None
