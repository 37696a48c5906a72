# SPDX-License-Identifier: Apache-2.0
"""RG-0001 on real process lineage: ordinary shell-script containers stay silent, a service
that starts a shell does not.

Benign: a busybox container whose nginx-style entrypoint (``/docker-entrypoint.sh``) runs
``/docker-entrypoint.d/*.sh`` hooks that call ``sh -c``, starts busybox ``crond`` with a job
every minute and then loops ``sh /app/job.sh`` (which starts ``sh -c``) and a hook script; a
second container of the same setup is started later. Attack twin: a non-shell service — a
busybox ``nc -ll -e /bin/sh`` listener and busybox ``httpd`` running a shell CGI script —
starting a shell when a client connects.

Seen through the real chain: eBPF source → enrichment → detectors (lineage reads each script's
``#!`` line through ``/proc/<pid>/root``). Learned allowances are off here: this is about
lineage alone (``tests/unit/detectors/test_allowances.py`` covers allowances).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from agent.events import Event, ProcessExec
from agent.findings import Finding, Severity
from agent.settings.detectors import DetectorsSettings
from tests.privileged.harness import ContainerLab, DetectorChain, detector_chain, docker_exec, write_files
from tests.support import wait_for

PREFIX = "rgtest-h5-lineage"

SCRIPTS = {
    "docker-entrypoint.sh": """#!/bin/sh
set -e
# The test registers the container with the agent, then lets the entrypoint go on.
while [ ! -e /tmp/go ]; do sleep 0.1; done
for f in /docker-entrypoint.d/*.sh; do
    "$f"
done
crond -f -l 8 -c /app/crontabs &
exec /app/loop.sh
""",
    "docker-entrypoint.d/10-env.sh": """#!/bin/sh
sh -c 'echo "APP_MODE=${APP_MODE:-prod}" > /tmp/env.conf'
""",
    "docker-entrypoint.d/20-check.sh": """#!/bin/sh
sh -c 'test -r /tmp/env.conf' && echo checked >> /tmp/hooks.log
""",
    "app/loop.sh": """#!/bin/sh
while true; do
    sh /app/job.sh
    /app/hook.sh
    sleep 1
done
""",
    "app/job.sh": """#!/bin/sh
sh -c 'echo job >> /tmp/job.log'
""",
    "app/hook.sh": """#!/bin/sh
sh -c 'date +%s > /tmp/last-hook'
""",
    "app/crontabs/root": "* * * * * sh -c 'date >> /tmp/cron.log'\n",
    # busybox httpd execs a CGI by its relative name after chdir, from a per-request fork
    # that never execs: this script ends within milliseconds, and so does the fork. Lineage
    # knows the script's interpreter from the argv the kernel rewrote (read by the exec
    # probe) and the fork by the executable the kernel read (/bin/httpd -> busybox).
    "www/cgi-bin/status.cgi": """#!/bin/sh
echo "Content-Type: text/plain"
echo
uptime
""",
}


@dataclass
class Lab(ContainerLab):
    execs: list[ProcessExec] = field(default_factory=list)

    def start(self, name: str, command: list[str]) -> Any:
        mounts = {d: f"/{d}" for d in ("app", "docker-entrypoint.d", "docker-entrypoint.sh", "www")}
        c = self.launch(f"{PREFIX}-{name}", command, mounts)
        self.exec(c, "touch", "/tmp/go")
        return c

    def exec(self, c: Any, *cmd: str, timeout: float = 20) -> str:
        return docker_exec(c, *cmd, timeout=timeout)

    def read(self, c: Any, path: str) -> str:
        """The file's text in the container, "" when it does not exist."""
        proc = subprocess.run(["docker", "exec", c.id, "cat", path], capture_output=True, text=True, timeout=20)
        return proc.stdout if proc.returncode == 0 else ""

    def rule(self, c: Any, detector: str = "RG-0001") -> list[Finding]:
        return self.chain.of(detector, c.id)

    def execs_of(self, c: Any) -> list[ProcessExec]:
        with self.chain.lock:
            return [e for e in self.execs if e.container is not None and e.container.id == c.id]


@pytest.fixture(scope="module")
def lab(docker_client: Any) -> Iterator[Lab]:
    labs: list[Lab] = []

    def setup(chain: DetectorChain) -> None:
        lab = Lab(chain, docker_client, write_files(chain.state / "files", SCRIPTS, plain="app/crontabs"))
        labs.append(lab)

        def seen(e: Event) -> None:
            if isinstance(e, ProcessExec):
                with chain.lock:
                    lab.execs.append(e)

        chain.ctx.events.subscribe(seen, kind=ProcessExec, name="test:execs")

    settings = DetectorsSettings(repeat_suppress_seconds=0, learned_allowances=False)
    with detector_chain("rg-h5-lineage-", settings, before=setup):
        lab = labs[0]
        try:
            yield lab
        finally:
            lab.remove()


def _has(execs: list[ProcessExec], *words: str) -> bool:
    return any(all(w in " ".join(e.argv) or w in e.filename for w in words) for e in execs)


def test_scripts_hooks_and_crond_start_shells_without_rg0001(lab: Lab) -> None:
    first = lab.start("app", ["/docker-entrypoint.sh"])
    # The cron job runs at the start of the next minute: up to 60 s.
    deadline = time.time() + 75
    wait_for(
        lambda: lab.read(first, "/tmp/job.log").count("job") >= 2 and lab.read(first, "/tmp/cron.log"),
        timeout=max(1.0, deadline - time.time()),
        interval=1.0,
        what="the job loop and one crond job",
    )
    second = lab.start("app2", ["/docker-entrypoint.sh"])  # a replica started later
    wait_for(lambda: lab.read(second, "/tmp/hooks.log"), timeout=20, interval=0.5, what="hooks")
    time.sleep(3)  # a few more loop rounds through the pipeline
    for c in (first, second):
        execs = lab.execs_of(c)
        # The benign shapes really happened and the agent saw them (the test is not vacuous).
        assert _has(execs, "/docker-entrypoint.d/20-check.sh"), [e.argv for e in execs][:20]
        assert _has(execs, "sh", "-c", "test -r /tmp/env.conf")
        assert _has(execs, "sh", "/app/job.sh") and _has(execs, "echo job >> /tmp/job.log")
        assert _has(execs, "/app/hook.sh")
    assert _has(lab.execs_of(first), "date >> /tmp/cron.log"), "crond's job exec was not seen"
    for c in (first, second):
        assert lab.rule(c) == [], [f.summary for f in lab.rule(c)]


def test_service_starting_a_shell_is_rg0001(lab: Lab) -> None:
    svc = lab.start("svc", ["nc", "-ll", "-p", "9000", "-e", "/bin/sh"])
    wait_for(lambda: "9000" in lab.exec(svc, "netstat", "-ltn"), timeout=10, interval=0.3, what="the nc listener")
    # A client of the service: the listener starts /bin/sh for the connection.
    out = lab.exec(svc, "sh", "-c", "echo 'echo marker-$((6*7))' | nc -w 2 127.0.0.1 9000")
    assert "marker-42" in out, out
    f = wait_for(lambda: next(iter(lab.rule(svc)), None), timeout=15, what="RG-0001 about the nc service")
    assert isinstance(f, Finding)
    assert f.evidence["parent"] == "nc" and f.severity is Severity.HIGH and f.evidence["parent_role"] == "other"
    # A web server running a shell CGI script (its comm is status.cgi; its interpreter is sh).
    lab.exec(svc, "httpd", "-p", "127.0.0.1:8080", "-h", "/www")
    out = lab.exec(svc, "sh", "-c", "sleep 0.3; wget -q -O- http://127.0.0.1:8080/cgi-bin/status.cgi")
    assert "load average" in out, out
    cgi = wait_for(
        lambda: next((x for x in lab.rule(svc) if x.evidence["parent"] == "httpd"), None),
        timeout=15,
        what="RG-0001 about httpd's CGI shell script",
    )
    assert isinstance(cgi, Finding) and cgi.severity is Severity.HIGH
    assert cgi.evidence["process"]["interpreter"] == "/bin/sh"
    # The operator's own `docker exec` shells (parent: the runtime) were never reported.
    assert all(x.evidence["parent"] in ("nc", "httpd") for x in lab.rule(svc)), [x.summary for x in lab.rule(svc)]
