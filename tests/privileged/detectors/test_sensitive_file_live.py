# SPDX-License-Identifier: Apache-2.0
"""RG-0002 live: an entrypoint hook writing its configuration below /etc at start stays silent;
an identity file written from an interactive shell is reported.

Benign: a busybox container whose nginx-style entrypoint runs a ``/docker-entrypoint.d`` hook
that writes ``/etc/app.conf`` (a redirect in the hook's shell) and edits it with ``sed -i``
(a temporary file below /etc, renamed), then execs its server; an operator's ``docker exec``
maintenance (``cat /etc/passwd``, ``ls /etc``). Attack twin: ``echo … >> /etc/passwd`` typed
into a ``docker exec -i <c> sh`` session opened earlier (HIGH, never lowered by learning).

Seen through the real chain: eBPF source → enrichment → detectors (lineage from /proc and the
exec events; the image is learning, so allowances are consulted as in the agent).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.detectors.component import DetectorsComponent
from agent.detectors.registry import DETECTORS
from agent.events import Event, FileOpen, ProcessExec
from agent.findings import Finding, Severity
from agent.hostfs import HostPaths
from agent.pipeline import Bus
from agent.runtime.docker import container_from_inspect
from agent.runtime.enrich import Enricher
from agent.runtime.model import ContainerRegistry
from agent.settings.detectors import DetectorsSettings
from agent.store import Store
from agent.wiring import attach
from tests.support import TEST_IMAGE, TEST_LABEL, need, need_root, wait_for

PREFIX = "rgtest-h15-etc"
QUIET = 2.0

SCRIPTS = {
    "docker-entrypoint.sh": """#!/bin/sh
set -e
# The test registers the container with the agent, then lets the entrypoint go on.
while [ ! -e /tmp/go ]; do sleep 0.1; done
for f in /docker-entrypoint.d/*.sh; do
    "$f"
done
exec sleep 900
""",
    "docker-entrypoint.d/10-config.sh": """#!/bin/sh
echo "listen ${PORT:-8080};" > /etc/app.conf
sed -i 's/8080/8081/' /etc/app.conf
echo configured >> /tmp/hooks.log
""",
}


@dataclass
class Lab:
    ctx: AgentContext
    docker: Any
    files: Path
    findings: list[Finding]
    events: list[Event]
    lock: threading.Lock
    containers: list[Any] = field(default_factory=list)
    sessions: list[subprocess.Popen[str]] = field(default_factory=list)

    def start(self) -> Any:
        c = self.docker.containers.create(
            TEST_IMAGE,
            ["/docker-entrypoint.sh"],
            name=f"{PREFIX}-{uuid.uuid4().hex[:8]}",
            labels={TEST_LABEL: "1"},
            network_mode="none",
            volumes={
                str(self.files / "docker-entrypoint.d"): {"bind": "/docker-entrypoint.d", "mode": "ro"},
                str(self.files / "docker-entrypoint.sh"): {"bind": "/docker-entrypoint.sh", "mode": "ro"},
            },
        )
        self.containers.append(c)
        c.start()
        c.reload()
        rec = container_from_inspect(HostPaths(), c.attrs)
        assert rec is not None and rec.cgroup_id, "the test container has no cgroup id"
        self.ctx.registry.upsert(rec)
        time.sleep(0.5)  # the container's cgroup reaches the eBPF filter
        return c

    def exec(self, c: Any, *cmd: str) -> str:
        proc = subprocess.run(["docker", "exec", c.id, *cmd], capture_output=True, text=True, timeout=20)
        return proc.stdout + proc.stderr

    def session(self, c: Any) -> subprocess.Popen[str]:
        """``docker exec -i <c> sh`` with a stdin pipe the test keeps: an attacker's shell."""
        proc = subprocess.Popen(
            ["docker", "exec", "-i", c.id, "sh"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.sessions.append(proc)
        time.sleep(0.5)
        return proc

    def rule(self, c: Any) -> list[Finding]:
        with self.lock:
            return [f for f in self.findings if f.detector_id == "RG-0002" and f.container_id == c.id]

    def seen(self, c: Any, kind: type[Event]) -> list[Any]:
        with self.lock:
            return [e for e in self.events if isinstance(e, kind) and e.container and e.container.id == c.id]


@pytest.fixture(scope="module")
def lab(docker_client: Any) -> Iterator[Lab]:
    need_root()
    try:
        from agent.sources import ebpf
    except ImportError as exc:
        need(False, f"This test needs the eBPF source (agent/sources/ebpf): {exc}")
        raise
    state = Path(tempfile.mkdtemp(prefix="rg-h15-etc-"))
    files = state / "files"
    for rel, text in SCRIPTS.items():
        p = files / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        p.chmod(0o755)
    ctx = AgentContext(
        config=AgentConfig(),
        paths=HostPaths().with_state(state, run=state / "run"),
        store=Store(state / "agent.db"),
        registry=ContainerRegistry(),
        events=Bus[Event]("events"),
        findings=Bus[Finding]("findings"),
    )
    lock = threading.Lock()
    lab = Lab(ctx, docker_client, files, [], [], lock)
    components: list[Any] = []
    try:
        ctx.events.add_prepare(Enricher(ctx.paths, ctx.registry))
        source = ebpf.build(ctx)
        need(source is not None, "The eBPF source is disabled or unavailable on this machine.")
        assert source is not None
        detectors = DetectorsComponent(DetectorsSettings(repeat_suppress_seconds=0), DETECTORS)

        def collect(f: Finding) -> None:
            with lock:
                lab.findings.append(f)

        def seen(e: Event) -> None:
            if isinstance(e, (ProcessExec, FileOpen)):
                with lock:
                    lab.events.append(e)

        ctx.findings.subscribe(collect)
        ctx.events.subscribe(seen, name="test:events")
        for comp in (source, detectors):
            attach(ctx, comp)
            components.append(comp)
        ctx.events.start()
        ctx.findings.start()
        need(not source.status().get("error"), f"The eBPF source did not start: {source.status()}")
        yield lab
    finally:
        for s in lab.sessions:
            if s.stdin is not None:
                s.stdin.close()
            try:
                s.wait(5)
            except subprocess.TimeoutExpired:
                s.kill()
        for comp in reversed(components):
            try:
                comp.stop()
            except Exception:
                pass
        ctx.events.stop(1)
        ctx.findings.stop(1)
        ctx.store.close()
        for c in lab.containers:
            c.remove(force=True)
        shutil.rmtree(state, ignore_errors=True)


def test_hook_config_is_silent_and_an_interactive_passwd_write_is_reported(lab: Lab) -> None:
    c = lab.start()
    # The probes compile in the background: the chain is ready once an exec comes through.
    wait_for(lambda: lab.exec(c, "true") is not None and lab.seen(c, ProcessExec), timeout=60, what="an exec")
    shell = lab.session(c)  # opened before start-up goes on: an attacker's shell, typed into later
    lab.exec(c, "touch", "/tmp/go")
    wait_for(lambda: "configured" in lab.exec(c, "cat", "/tmp/hooks.log"), timeout=20, what="the hook")
    assert "listen 8081;" in lab.exec(c, "cat", "/etc/app.conf")
    # docker exec maintenance
    assert "root:" in lab.exec(c, "cat", "/etc/passwd")
    assert "app.conf" in lab.exec(c, "ls", "/etc")
    time.sleep(QUIET)
    # Not vacuous: the agent saw the hook run and its writes below /etc.
    assert any("/docker-entrypoint.d/10-config.sh" in (e.filename, *e.argv) for e in lab.seen(c, ProcessExec))
    writes = [e.path for e in lab.seen(c, FileOpen) if e.write]
    assert "/etc/app.conf" in writes, writes
    assert lab.rule(c) == [], [(f.summary, f.evidence.get("lineage")) for f in lab.rule(c)]
    # The attack twin: an account appended to /etc/passwd from the interactive shell.
    assert shell.stdin is not None and shell.poll() is None
    shell.stdin.write("echo 'rg:x:0:0::/root:/bin/sh' >> /etc/passwd\n")
    shell.stdin.flush()
    f = wait_for(
        lambda: next((x for x in lab.rule(c) if x.evidence["path"] == "/etc/passwd"), None),
        timeout=15,
        what="RG-0002 about /etc/passwd",
    )
    assert isinstance(f, Finding)
    assert f.severity is Severity.HIGH and f.mitre == "T1136.001", f
    assert f.evidence["class"] == "identity" and f.evidence["context"] == "interactive" and f.evidence["always"]
    assert "allowance" not in f.evidence  # the image is learning: the cap does not apply
    assert "rg:x:0:0" in lab.exec(c, "cat", "/etc/passwd")
