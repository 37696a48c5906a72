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

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from agent.events import Event, FileOpen, ProcessExec
from agent.findings import Finding, Severity
from agent.settings.detectors import DetectorsSettings
from tests.privileged.harness import (
    ContainerLab,
    DetectorChain,
    Session,
    detector_chain,
    docker_exec,
    open_session,
    write_files,
)
from tests.support import wait_for

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
class Lab(ContainerLab):
    events: list[Event] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)

    def start(self) -> Any:
        mounts = {d: f"/{d}" for d in ("docker-entrypoint.d", "docker-entrypoint.sh")}
        return self.launch(PREFIX, ["/docker-entrypoint.sh"], mounts)

    def exec(self, c: Any, *cmd: str) -> str:
        return docker_exec(c, *cmd)

    def session(self, c: Any) -> Session:
        """``docker exec -i <c> sh`` with a stdin pipe the test keeps: an attacker's shell."""
        s = open_session(c)
        self.sessions.append(s)
        return s

    def rule(self, c: Any) -> list[Finding]:
        return self.chain.of("RG-0002", c.id)

    def seen(self, c: Any, kind: type[Event]) -> list[Any]:
        with self.chain.lock:
            return [e for e in self.events if isinstance(e, kind) and e.container and e.container.id == c.id]


@pytest.fixture(scope="module")
def lab(docker_client: Any) -> Iterator[Lab]:
    labs: list[Lab] = []

    def setup(chain: DetectorChain) -> None:
        lab = Lab(chain, docker_client, write_files(chain.state / "files", SCRIPTS))
        labs.append(lab)

        def seen(e: Event) -> None:
            if isinstance(e, (ProcessExec, FileOpen)):
                with chain.lock:
                    lab.events.append(e)

        chain.ctx.events.subscribe(seen, name="test:events")

    with detector_chain("rg-h15-etc-", DetectorsSettings(repeat_suppress_seconds=0), before=setup):
        lab = labs[0]
        try:
            yield lab
        finally:
            for s in lab.sessions:
                s.close()
            lab.remove()


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
    shell.type("echo 'rg:x:0:0::/root:/bin/sh' >> /etc/passwd")
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
