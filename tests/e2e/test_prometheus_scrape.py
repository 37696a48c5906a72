# SPDX-License-Identifier: Apache-2.0
"""A real Prometheus server scrapes the running agent, and promtool lints its exposition."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import __version__
from tests.e2e.daemon import Daemon
from tests.support import TEST_IMAGE, TEST_LABEL, wait_for

CONFIG = """
outputs: {metrics: {enabled: true, port: 0}}
"""


def tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is missing (scripts/setup-host.sh installs Debian's prometheus)")
        pytest.skip(f"{name} is not installed (scripts/setup-host.sh installs Debian's prometheus)")
    return exe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api(base: str, path: str, **params: str) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())["data"]


@pytest.fixture
def watched(docker_client: Any) -> Iterator[Any]:
    """A container of the test's own for the agent to watch, so the per-container and finding
    series exist on a host with no other container (CI)."""
    c = docker_client.containers.run(
        TEST_IMAGE,
        ["sleep", "600"],
        name=f"rgtest-prom-{uuid.uuid4().hex[:8]}",
        labels={TEST_LABEL: "1"},
        network_mode="none",
        detach=True,
    )
    try:
        yield c
    finally:
        c.remove(force=True)


def test_prometheus_scrapes_the_agent_and_promtool_accepts_the_exposition(
    daemon: Any, watched: Any, tmp_path: Path
) -> None:
    prometheus, promtool = tool("prometheus"), tool("promtool")
    d: Daemon = daemon(CONFIG)
    # The container is watched and has its posture finding (RG-0105, Docker's default CAP_NET_RAW).
    wait_for(lambda: d.ctl_json("findings", "--container", watched.id), timeout=60, interval=1.0, what="a finding")
    target = urllib.parse.urlsplit(d.ctl_json("status")["components"]["outputs"]["metrics"])
    with urllib.request.urlopen(target.geturl(), timeout=10) as r:
        exposition = r.read()
    lint = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=60)
    assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), lint
    # One metric per concept: no family is exposed twice (stages share one /metrics).
    types = [line.split()[2] for line in exposition.decode().splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types)), sorted(t for t in types if types.count(t) > 1)

    port = free_port()
    conf = tmp_path / "prometheus.yml"
    conf.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: riskguard\n    static_configs: [{{targets: ['{target.netloc}']}}]\n"
    )
    check = subprocess.run([promtool, "check", "config", str(conf)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={conf}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        target_state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                active = api(base, "/api/v1/targets")["activeTargets"]
            except OSError:
                active = []
            if active and active[0]["health"] == "up":
                target_state = active[0]
                break
            time.sleep(0.5)
        log = (tmp_path / "prometheus.log").read_text()[-2000:]
        assert target_state.get("health") == "up", (target_state, log)
        assert target_state["lastError"] == ""
        info = api(base, "/api/v1/query", query='riskguard_build_info{job="riskguard"}')["result"]
        assert [r["metric"]["version"] for r in info] == [__version__]
        up = api(base, "/api/v1/query", query='up{job="riskguard"}')["result"]
        assert [r["value"][1] for r in up] == ["1"]
        names = set(api(base, "/api/v1/label/__name__/values"))
        assert {"riskguard_findings_total", "riskguard_containers_watched", "riskguard_queue_depth"} <= names
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
