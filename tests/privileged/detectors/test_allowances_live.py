# SPDX-License-Identifier: Apache-2.0
"""Learned per-image allowances on real containers, through the eBPF source and detectors.

An image whose web server runs a shell CGI script learns ``httpd>sh`` during a short learning
period (8 s): RG-0001 is an alert (MEDIUM) meanwhile, LOW afterwards and for a replica started
later; a shell started by a service the image never showed (``nc -e``) stays HIGH, and an
operator's ``deny`` brings ``httpd>sh`` back to HIGH.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from agent.behavior.allowances import Allowances
from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import ProcessExec
from agent.findings import Finding, Severity
from agent.settings.behavior import BehaviorSettings
from agent.settings.detectors import DetectorsSettings
from tests.privileged.harness import ContainerLab, DetectorChain, detector_chain, docker_exec, write_files
from tests.support import TEST_IMAGE

LEARN = 8.0
CGI = """#!/bin/sh
echo "Content-Type: text/plain"
echo
uptime
"""


@dataclass
class Lab(ContainerLab):
    execs: list[ProcessExec] = field(default_factory=list)  # every exec the chain saw (diagnostics)

    @property
    def ctx(self) -> AgentContext:
        return self.chain.ctx

    def start(self, name: str) -> Any:
        command = ["httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www"]
        return self.launch(f"rgtest-h5-allow-{name}", command, {"www": "/www"})

    def exec(self, c: Any, *cmd: str) -> str:
        return docker_exec(c, *cmd, timeout=30)

    def cgi(self, c: Any) -> None:
        out = self.exec(c, "wget", "-q", "-O-", "http://127.0.0.1:8080/cgi-bin/status.cgi")
        assert "load average" in out, out

    def shell_finding(self, c: Any, parent: str, after: float) -> Finding:
        def hit() -> Finding | None:
            found = self.chain.of("RG-0001", c.id)
            return next((f for f in found if f.evidence["parent"] == parent and f.ts >= after), None)

        deadline = time.monotonic() + 15
        while (f := hit()) is None:
            if time.monotonic() > deadline:  # say what did come, to tell a lost exec from a rule
                seen = [(e.ts, e.comm, e.filename, e.parent_comm) for e in self.execs if e.ts >= after]
                pytest.fail(f"no RG-0001 {parent}>sh in 15 s; execs since: {seen}; findings: {self.chain.summaries()}")
            time.sleep(0.05)
        return f


@pytest.fixture(scope="module")
def lab(docker_client: Any) -> Iterator[Lab]:
    labs: list[Lab] = []

    def setup(chain: DetectorChain) -> None:
        lab = Lab(chain, docker_client, write_files(chain.state, {"www/cgi-bin/status.cgi": CGI}))
        chain.ctx.events.subscribe(lambda ev: lab.execs.append(ev) if isinstance(ev, ProcessExec) else None)
        labs.append(lab)

    config = AgentConfig(behavior=BehaviorSettings(learning_seconds=LEARN))
    with detector_chain("rg-h5-allow-", DetectorsSettings(repeat_suppress_seconds=0), config, before=setup):
        lab = labs[0]
        try:
            yield lab
        finally:
            lab.remove()


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
