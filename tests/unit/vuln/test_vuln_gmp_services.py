# SPDX-License-Identifier: Apache-2.0
"""The GMP backend against a local GMP server (real python-gvm client over a Unix socket), and
listening-service parsing of captured ``/proc/<pid>/net`` tables."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.hostfs import HostPaths
from agent.settings.vuln import GmpSettings
from agent.vuln.gmp import GmpScanError, GmpScanner
from agent.vuln.services import listening_services, parse_net_table
from tests.fixtures.vuln.gmp_server import GmpState, gmp_server


def _settings(sock: Path, pwfile: Path) -> GmpSettings:
    return GmpSettings(enabled=True, socket_path=sock, password_file=pwfile, poll_seconds=0.01, timeout_seconds=5)


@pytest.fixture
def sock() -> Iterator[Path]:
    # AF_UNIX paths are limited to 108 bytes: pytest's tmp dirs can be longer.
    d = Path(tempfile.mkdtemp(prefix="gmp-"))
    yield d / "gvmd.sock"
    shutil.rmtree(d, ignore_errors=True)


def test_gmp_scan_creates_target_task_and_imports_results(tmp_path: Path, sock: Path) -> None:
    pw = tmp_path / "gmp.password"
    pw.write_text("secret\n")
    state = GmpState(
        results={
            "10.99.0.2": [
                (
                    "OpenSSH Multiple Vulnerabilities",
                    "22/tcp",
                    "1.3.6.1.4.1.25623.1.0.1",
                    7.5,
                    "High",
                    ["CVE-2023-38408"],
                ),
                ("TCP timestamps", "general/tcp", "1.3.6.1.4.1.25623.1.0.2", 2.6, "Low", []),
            ],
            "10.99.0.3": [("other host", "80/tcp", "1.3", 9.0, "High", [])],
        }
    )
    s = _settings(sock, pw)
    with gmp_server(sock, state):
        results = GmpScanner(s).scan("web", "10.99.0.2")
    assert [(r.name, r.port, r.score, r.cves) for r in results] == [
        ("OpenSSH Multiple Vulnerabilities", "22/tcp", 7.5, ["CVE-2023-38408"]),
        ("TCP timestamps", "general/tcp", 2.6, []),
    ]
    assert state.names()[:4] == ["get_version", "authenticate", "create_target", "create_task"]
    assert state.names().count("get_tasks") == 3  # Running, Running, Done
    assert state.names()[-2:] == ["delete_task", "delete_target"]
    create_target = next(c for c in state.commands if c.tag == "create_target")
    assert create_target.findtext("hosts") == "10.99.0.2"
    assert create_target.find("port_list").get("id") == s.port_list_id  # type: ignore[union-attr]
    create_task = next(c for c in state.commands if c.tag == "create_task")
    assert create_task.find("config").get("id") == s.scan_config_id  # type: ignore[union-attr]
    assert create_task.find("scanner").get("id") == s.scanner_id  # type: ignore[union-attr]
    assert state.tasks == {} and state.targets == {}  # cleaned up


def test_gmp_errors_are_scan_errors(tmp_path: Path, sock: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("wrong")
    with gmp_server(sock, GmpState()), pytest.raises(GmpScanError, match="Authentication failed"):
        GmpScanner(_settings(sock, pw)).scan("c", "10.0.0.1")
    pw.write_text("secret")
    with gmp_server(sock.with_name("b.sock"), GmpState(final_status="Interrupted")) as st:
        with pytest.raises(GmpScanError, match="Interrupted"):
            GmpScanner(_settings(sock.with_name("b.sock"), pw)).scan("c", "10.0.0.1")
        assert st.tasks == {}  # the failed task was still deleted
    with pytest.raises(GmpScanError, match="does not exist"):
        GmpScanner(_settings(tmp_path / "absent.sock", pw)).scan("c", "10.0.0.1")
    with pytest.raises(GmpScanError, match="password file"):
        GmpScanner(_settings(sock, tmp_path / "nopw")).scan("c", "10.0.0.1")


TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 100 0 0 10 0
   2: 0200000A:0050 0300000A:C350 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0 100 0 0 10 0
   garbage line
"""
TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0 100 0 0 10 0
   1: 0000000000000000FFFF00000200000A:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2002 1 0 100 0 0 10 0
"""  # noqa: E501
UDP = """   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  5: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3001 2 0 0
"""  # noqa: E501


def test_listening_services_from_captured_netns(tmp_path: Path) -> None:
    paths = HostPaths.under(tmp_path / "host")
    net = paths.pid_dir(4242) / "net"
    net.mkdir(parents=True)
    (net / "tcp").write_text(TCP)
    (net / "tcp6").write_text(TCP6)
    (net / "udp").write_text(UDP)
    got = [(s.proto, s.address, s.port, s.loopback_only) for s in listening_services(paths, 4242)]
    assert got == [
        ("tcp", "0.0.0.0", 80, False),
        ("tcp", "127.0.0.1", 8080, True),
        ("tcp6", "::1", 22, True),
        ("tcp6", "10.0.0.2", 443, False),
        ("udp", "0.0.0.0", 53, False),
    ]
    assert listening_services(paths, 999) == []
    assert parse_net_table("header only\n", "tcp") == []
