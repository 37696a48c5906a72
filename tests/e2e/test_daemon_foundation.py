# SPDX-License-Identifier: Apache-2.0
"""The daemon as a process: notify, discovery within 1 s, control socket, signals, reload."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.e2e.daemon import Daemon
from tests.support import VENV_BIN, wait_for

# The foundation's own behaviour, with the analysis subsystems off so the test is quick; the
# whole product runs in test_protection.py.
LIGHT = """
ebpf: {enabled: false}
audit: {enabled: false}
behavior: {enabled: false}
logs: {enabled: false}
vuln: {enabled: false}
network: {enabled: false}
"""


def test_ready_discovery_ctl_and_clean_ctrl_c(daemon: Any, run_container: Any, tmp_path: Path) -> None:
    d: Daemon = daemon(LIGHT)
    assert any(n.startswith("READY=1") for n in d.notifications)
    assert any("STATUS=watching" in n for n in d.notifications)
    started = d.wait_event("agent_started")
    assert started["control_socket"] == str(d.socket)
    assert oct(os.stat(d.socket).st_mode & 0o777) == "0o600"

    st = d.ctl_json("status")
    assert st["pid"] == d.proc.pid and st["runtime"]["docker"]["connected"] is True  # type: ignore[union-attr]

    c = run_container("sleep", "600", labels={"tier": "web"})
    t0 = time.monotonic()
    wait_for(lambda: any(x["id"] == c.id for x in d.ctl_json("containers")), 3, what="container listed")
    assert time.monotonic() - t0 < 1.5  # discovery < 1 s, plus one riskguardctl round trip
    listed = next(x for x in d.ctl_json("containers") if x["id"] == c.id)
    assert listed["name"] == c.name and listed["labels"]["tier"] == "web" and listed["cgroup_id"] > 0
    d.wait_event("container_discovered", container_id=c.id[:12])
    table = d.ctl("containers")
    assert table.returncode == 0 and c.name in table.stdout and table.stdout.startswith("ID")

    c.stop(timeout=1)
    t0 = time.monotonic()
    wait_for(lambda: all(x["id"] != c.id for x in d.ctl_json("containers")), 3, what="container gone")
    assert time.monotonic() - t0 < 1.5
    d.wait_event("container_removed", container_id=c.id[:12])

    assert d.stop(signal.SIGINT) == 0  # Ctrl-C
    d.wait_event("agent_stopped")
    assert any(n.startswith("STOPPING=1") for n in d.notifications)
    assert not d.socket.exists()
    # stdout is JSON lines only: every line parsed
    assert all(isinstance(e, dict) and "event" in e for e in d.events())
    assert not [line for line in d.stderr_lines if "Traceback" in line]


def test_sighup_reload_keeps_running_on_a_bad_config(daemon: Any) -> None:
    d: Daemon = daemon(LIGHT)
    d.write_config(LIGHT + "behavior: {window_seconds: soon}\n")
    d.send(signal.SIGHUP)
    rejected = d.wait_event("config_reload_rejected")
    assert any(p.startswith("behavior") for p in rejected["problems"])
    assert d.ctl_json("status")["reloads"] == 0
    d.write_config(LIGHT.replace("vuln: {enabled: false}", "vuln: {enabled: false}\nruntime: {include_host: true}"))
    d.send(signal.SIGHUP)
    d.wait_event("config_reloaded")
    assert d.ctl_json("status")["reloads"] == 1
    assert d.stop() == 0


def test_watchdog_pings_when_asked(daemon: Any) -> None:
    d: Daemon = daemon(LIGHT, env={"WATCHDOG_USEC": "400000"})
    wait_for(lambda: d.notifications.count("WATCHDOG=1") >= 2, 5, what="two watchdog pings")
    assert d.stop() == 0


def test_socket_is_root_only(daemon: Any) -> None:
    d: Daemon = daemon(LIGHT)
    r = d.ctl("status", user="65534")
    assert r.returncode == 1 and "permission denied" in r.stderr
    assert d.ctl("status").returncode == 0


def test_bad_config_refuses_to_start_with_the_dotted_path(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.yaml"
    for text, mode, expected in (
        ("runtime:\n  dockr: true\n", 0o600, "runtime.dockr: unknown key"),
        ("behavior:\n  window_seconds: [1]\n", 0o600, "behavior.window_seconds: "),
        ("{}\n", 0o666, "group- or world-writable"),
    ):
        cfg.write_text(text)
        os.chmod(cfg, mode)
        r = subprocess.run(
            [str(VENV_BIN / "riskguard-agent"), "run", "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2, (text, r.stdout, r.stderr)
        assert expected in r.stderr and "Traceback" not in r.stderr + r.stdout
        chk = subprocess.run(
            [str(VENV_BIN / "riskguard-agent"), "check-config", "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert chk.returncode == 2 and expected in chk.stderr


def test_ctl_without_agent_says_so(tmp_path: Path) -> None:
    r = subprocess.run(
        [str(VENV_BIN / "riskguardctl"), "--socket", str(tmp_path / "x.sock"), "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "not running" in r.stderr and r.stdout == ""
