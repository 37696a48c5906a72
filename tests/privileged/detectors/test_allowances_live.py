# SPDX-License-Identifier: Apache-2.0
"""Learned per-image allowances on real containers, through the eBPF source and detectors.

An image whose web server runs a shell CGI script learns ``httpd>sh`` during a short learning
period (8 s): RG-0001 is an alert (MEDIUM) meanwhile, LOW afterwards and for a replica started
later; a shell started by a service the image never showed (``nc -e``) stays HIGH, and an
operator's ``deny`` brings ``httpd>sh`` back to HIGH.
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

from agent.behavior.allowances import Allowances
from agent.config import AgentConfig
from agent.context import AgentContext
from agent.detectors.component import DetectorsComponent
from agent.detectors.registry import DETECTORS
from agent.events import Event
from agent.findings import Finding, Severity
from agent.hostfs import HostPaths
from agent.pipeline import Bus
from agent.runtime.docker import container_from_inspect
from agent.runtime.enrich import Enricher
from agent.runtime.model import ContainerRegistry
from agent.settings.behavior import BehaviorSettings
from agent.settings.detectors import DetectorsSettings
from agent.store import Store
from agent.wiring import attach
from tests.support import TEST_IMAGE, TEST_LABEL, need, need_root, wait_for

LEARN = 8.0
CGI = """#!/bin/sh
echo "Content-Type: text/plain"
echo
uptime
sleep 1
"""


@dataclass
class Lab:
    ctx: AgentContext
    docker: Any
    www: Path
    findings: list[Finding]
    lock: threading.Lock
    containers: list[Any] = field(default_factory=list)

    def start(self, name: str) -> Any:
        c = self.docker.containers.create(
            TEST_IMAGE,
            ["httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www"],
            name=f"rgtest-h5-allow-{name}-{uuid.uuid4().hex[:6]}",
            labels={TEST_LABEL: "1"},
            network_mode="none",
            volumes={str(self.www): {"bind": "/www", "mode": "ro"}},
        )
        self.containers.append(c)
        c.start()
        c.reload()
        rec = container_from_inspect(HostPaths(), c.attrs)
        assert rec is not None and rec.cgroup_id
        self.ctx.registry.upsert(rec)
        time.sleep(0.5)
        return c

    def exec(self, c: Any, *cmd: str) -> str:
        proc = subprocess.run(["docker", "exec", c.id, *cmd], capture_output=True, text=True, timeout=30)
        return proc.stdout + proc.stderr

    def cgi(self, c: Any) -> None:
        out = self.exec(c, "wget", "-q", "-O-", "http://127.0.0.1:8080/cgi-bin/status.cgi")
        assert "load average" in out, out

    def shell_finding(self, c: Any, parent: str, after: float) -> Finding:
        def hit() -> Finding | None:
            with self.lock:
                return next(
                    (
                        f
                        for f in self.findings
                        if f.detector_id == "RG-0001"
                        and f.container_id == c.id
                        and f.evidence["parent"] == parent
                        and f.ts >= after
                    ),
                    None,
                )

        f = wait_for(hit, timeout=15, what=f"RG-0001 {parent}>sh")
        assert isinstance(f, Finding)
        return f


@pytest.fixture(scope="module")
def lab(docker_client: Any) -> Iterator[Lab]:
    need_root()
    try:
        from agent.sources import ebpf
    except ImportError as exc:
        need(False, f"This test needs the eBPF source (agent/sources/ebpf.py): {exc}")
        raise
    state = Path(tempfile.mkdtemp(prefix="rg-h5-allow-"))
    www = state / "www"
    (www / "cgi-bin").mkdir(parents=True)
    (www / "cgi-bin" / "status.cgi").write_text(CGI)
    (www / "cgi-bin" / "status.cgi").chmod(0o755)
    ctx = AgentContext(
        config=AgentConfig(behavior=BehaviorSettings(learning_seconds=LEARN)),
        paths=HostPaths().with_state(state, run=state / "run"),
        store=Store(state / "agent.db"),
        registry=ContainerRegistry(),
        events=Bus[Event]("events"),
        findings=Bus[Finding]("findings"),
    )
    lock = threading.Lock()
    lab = Lab(ctx, docker_client, www, [], lock)
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

        ctx.findings.subscribe(collect)
        for comp in (source, detectors):
            attach(ctx, comp)
            components.append(comp)
        ctx.events.start()
        ctx.findings.start()
        need(not source.status().get("error"), f"The eBPF source did not start: {source.status()}")
        yield lab
    finally:
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


def test_learned_pair_is_lowered_unseen_and_denied_are_not(lab: Lab) -> None:
    first = lab.start("a")
    t0 = time.time()
    lab.cgi(first)
    during = lab.shell_finding(first, "httpd", t0)
    assert during.severity is Severity.MEDIUM and during.evidence["allowance"]["state"] == "learning"
    time.sleep(max(0.0, t0 + LEARN + 1 - time.time()))  # the image's learning period is over
    t1 = time.time()
    lab.cgi(first)
    after = lab.shell_finding(first, "httpd", t1)
    assert after.severity is Severity.LOW and after.evidence["allowance"]["state"] == "learned"
    assert after.evidence["allowance"]["severity_before"] == "high"
    # A replica started after learning: the image's allowances apply to it.
    second = lab.start("b")
    t2 = time.time()
    lab.cgi(second)
    replica = lab.shell_finding(second, "httpd", t2)
    assert replica.severity is Severity.LOW
    # A service the image never showed starting a shell: as the rule says.
    lab.exec(second, "sh", "-c", "nc -ll -p 9000 -e /bin/sh >/dev/null 2>&1 &")
    time.sleep(0.5)
    t3 = time.time()
    out = lab.exec(second, "sh", "-c", "echo 'echo ok-$((40+2))' | nc -w 2 127.0.0.1 9000")
    assert "ok-42" in out, out
    unseen = lab.shell_finding(second, "nc", t3)
    assert unseen.severity is Severity.HIGH and "allowance" not in unseen.evidence
    # The operator denies the learned pair: HIGH again (the detectors re-read within 5 s).
    Allowances(lab.ctx.store, lab.ctx.config.behavior).set(TEST_IMAGE, "exec", "httpd>sh", "deny")
    time.sleep(5.5)
    t4 = time.time()
    lab.cgi(second)
    denied = lab.shell_finding(second, "httpd", t4)
    assert denied.severity is Severity.HIGH
