# SPDX-License-Identifier: Apache-2.0
"""A web shell that ends within milliseconds, through busybox httpd's real CGI entry point, is
RG-0001 HIGH and isolated in enforce mode; a normal CGI request through the same path is silent.

busybox httpd forks a child per request, which forks again to exec the CGI, without an exec of
its own. Here httpd starts before the agent (lineage never saw its exec, so no earlier exec
names "httpd"), and the events bus is held until the request has ended: when the detectors see
the CGI's exec, the per-request fork is certainly gone from /proc. Its parent is known only by
the executable the exec probe read in the kernel (``parent_known_by == "kernel"``): the
container's ``/bin/httpd``, busybox's applet link, has that inode. Before, the parent was known
only by its comm and the web shell was LOW (no action) unless the CGI shell lived a second.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from agent.events import Event, ProcessExec
from agent.findings import Action, Finding, Severity
from agent.policy import PolicyState, Target, decide
from agent.settings.detectors import DetectorsSettings
from agent.settings.response import ResponseSettings
from tests.privileged.harness import DetectorChain, detector_chain, docker_exec, register, run_container
from tests.support import need_root, wait_for

SETUP = (
    "mkdir -p /var/www/cgi-bin && ln -sf /bin/busybox /var/www/cgi-bin/sh"
    # A normal CGI program (busybox's env applet prints the CGI environment).
    " && ln -sf /bin/busybox /var/www/cgi-bin/env && exec httpd -f -p 127.0.0.1:8080 -h /var/www"
)


@dataclass
class Lab:
    chain: DetectorChain
    c: Any
    execs: list[ProcessExec] = field(default_factory=list)

    def seen(self, ev: Event) -> None:
        if isinstance(ev, ProcessExec):
            with self.chain.lock:
                self.execs.append(ev)

    def request(self, url: str, post: str | None = None) -> str:
        """One CGI request, the events bus held until it (and httpd's fork) ended."""
        data = f"--post-data '{post}' " if post is not None else ""
        self.chain.ctx.events.pause()
        try:
            out = docker_exec(self.c, "sh", "-c", f"wget -q -O- {data}http://127.0.0.1:8080{url}")
            time.sleep(0.5)  # httpd's per-request fork relays the output, then exits
        finally:
            self.chain.ctx.events.resume()
        return out

    def rg0001(self) -> list[Finding]:
        return [f for f in self.chain.of("RG-0001", self.c.id) if f.evidence.get("parent") == "httpd"]


@pytest.fixture(scope="module")
def lab(docker_client: Any) -> Iterator[Lab]:
    need_root()
    c = run_container(docker_client, "rgtest-h4-webshell", ["sh", "-c", SETUP])
    try:
        wait_for(lambda: "8080" in docker_exec(c, "netstat", "-ltn"), timeout=10, interval=0.2, what="httpd")
        # Learned allowances off: a fresh store means every image is learning (findings capped
        # at MEDIUM); this test is about lineage.
        settings = DetectorsSettings(repeat_suppress_seconds=0, learned_allowances=False)
        labs: list[Lab] = []

        def before(ch: DetectorChain) -> None:
            register(ch.ctx, c)
            labs.append(Lab(ch, c))
            ch.ctx.events.subscribe(labs[0].seen, kind=ProcessExec, name="test:execs")

        with detector_chain("rg-h4-webshell-", settings, before=before):
            yield labs[0]
    finally:
        c.remove(force=True)


def test_a_normal_cgi_request_is_silent(lab: Lab) -> None:
    out = lab.request("/cgi-bin/env")
    # env prints the CGI environment without a header line: wget shows its first line.
    assert "=" in out and "Connection refused" not in out, out
    # The request's exec reached the detectors (the twin is not vacuous): httpd's fork exec'd
    # env, and the kernel read its parent's executable (busybox).
    env = wait_for(
        lambda: next((e for e in lab.execs if e.argv[:1] == ("env",) and e.parent_comm == "httpd"), None),
        timeout=10,
        what="the env CGI's exec",
    )
    assert isinstance(env, ProcessExec) and env.parent_exe == "busybox" and env.parent_exe_ino, env
    time.sleep(1)
    assert lab.rg0001() == [], [f.summary for f in lab.rg0001()]
    assert not [f for f in lab.chain.findings if f.severity >= Severity.MEDIUM], lab.chain.summaries()


def test_a_web_shell_that_ends_within_milliseconds_is_high_and_isolated(lab: Lab) -> None:
    out = lab.request("/cgi-bin/sh", "echo Content-Type: text/plain; echo; id")
    assert "uid=0" in out, out
    f = wait_for(lambda: next(iter(lab.rg0001()), None), timeout=15, what=f"RG-0001 httpd>sh; {lab.chain.summaries()}")
    assert isinstance(f, Finding)
    assert f.severity is Severity.HIGH and f.evidence["parent_known_by"] == "kernel", f.evidence
    assert f.evidence["parent_process"]["exe"] in ("/bin/httpd", "/usr/sbin/httpd", "/sbin/httpd"), f.evidence
    # Enforce mode isolates the container for it (the policy the response applies).
    v = decide(f, ResponseSettings(mode="enforce"), PolicyState(), time.time(), Target(known=True))
    assert v.enforce and v.action in (Action.FREEZE, Action.QUARANTINE), v
