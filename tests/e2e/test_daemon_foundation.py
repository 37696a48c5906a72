# SPDX-License-Identifier: Apache-2.0
"""The daemon as a process: notify, discovery within 1 s, control socket, signals, reload."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from agent.control import ControlError, call
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
    assert oct(d.socket.stat().st_mode & 0o777) == "0o600"

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


# The whole product with the defaults (eBPF, audit, procfs, behaviour, logs, network, detectors,
# response) plus the scanner and packet capture: what a SIGHUP must restart.
FULL = """
vuln: {enabled: true, on_start: false}
capture: {enabled: true}
outputs: {metrics: {enabled: true, port: 0}}
"""
METHODS = {
    "findings": {},
    "actions": {},
    "plans": {},
    "detectors.list": {},
    "baseline": {"action": "list"},
    "logs.status": {},
    "window.status": {},
    "procfs.status": {},
    "audit.status": {},
    "ebpf.status": {},
    "capture.status": {},
    "netpolicy": {"id": "none"},
    "scan": {"id": "none"},
}


def answering(d: Daemon) -> set[str]:
    """The control methods that exist on the running agent (an unknown method is an error)."""
    out = set()
    for method, params in METHODS.items():
        try:
            call(d.socket, method, params)
            out.add(method)
        except ControlError as exc:
            if "unknown method" not in str(exc):
                out.add(method)  # it exists; the parameters named no container
    return out


def metric_names(d: Daemon) -> list[str]:
    """Every metric family on /metrics (without the ``_created`` families a first sample adds)."""
    url = d.ctl_json("status")["components"]["outputs"]["metrics"]
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    return [f.name for f in text_string_to_metric_families(text) if not f.name.endswith("_created")]


def test_sighup_restarts_every_component_and_keeps_every_method(daemon: Any) -> None:
    d: Daemon = daemon(FULL)
    before = {n: c["state"] for n, c in d.ctl_json("status")["components"].items()}
    assert {"outputs", "response", "detectors", "behavior", "logs", "window", "vuln"} <= {
        n for n, s in before.items() if s == "running"
    }
    methods = answering(d)
    names = metric_names(d)
    assert "riskguard_detector_findings" in names and "riskguard_lost_events" in names
    d.write_config(FULL + "detectors: {repeat_suppress_seconds: 30}\n")
    d.send(signal.SIGHUP)
    reloaded = d.wait_event("config_reloaded", timeout=120)
    assert reloaded["failed"] == sorted(n for n, s in before.items() if s != "running")
    st = d.ctl_json("status")
    assert st["reloads"] == 1
    assert {n: c["state"] for n, c in st["components"].items()} == before
    assert answering(d) == methods
    after = metric_names(d)
    assert sorted(after) == sorted(set(after)) == sorted(set(names))
    assert not [e for e in d.events() if e.get("level") == "error" and e["event"] != "component_failed"]
    assert not [line for line in d.lines + d.stderr_lines if "Duplicated timeseries" in line]
    assert d.stop() == 0


def test_sighup_whose_build_raises_keeps_the_running_components(daemon: Any, tmp_path: Path) -> None:
    d: Daemon = daemon(LIGHT.replace("logs: {enabled: false}", "") + "detectors: {repeat_suppress_seconds: 5}\n")
    before = d.ctl_json("status")["components"]
    assert before["logs"]["state"] == "running"
    grok = tmp_path / "grok"
    grok.mkdir()
    (grok / "patterns").write_bytes(b"\xff\xfe not utf-8\n")
    d.write_config(LIGHT.replace("logs: {enabled: false}", f"logs: {{grok_dirs: [{grok}]}}"))
    d.send(signal.SIGHUP)
    failed = d.wait_event("config_reload_failed", timeout=60)
    assert failed["level"] == "error" and failed["error"].startswith("logs: UnicodeDecodeError")
    st = d.ctl_json("status")
    assert st["reloads"] == 0
    assert {n: c["state"] for n, c in st["components"].items()} == {n: c["state"] for n, c in before.items()}
    assert call(d.socket, "logs.status", {})["tail"] is not None
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
        cfg.chmod(mode)
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
