# SPDX-License-Identifier: Apache-2.0
"""The exec record carries the new program's stdio (probes/exec.h stdio_kind/stdio_ino): the
agent names a socket, a pipe, a terminal or /dev/null from the kernel's record alone.

The agent here has no /proc at all (``HostPaths.proc`` is an empty directory), so every stdio
name an event carries came from the kernel; the test itself reads the real /proc of the live
processes and expects the same names. A file is named by its path, which the kernel record does
not carry: left to /proc (so empty here). Then the detection that needs it, RG-0005's shell
with its stdio on a socket, fires from the kernel's stdio alone, and its benign twins (a shell
on pipes, a shell on a terminal, a non-shell on a socket) give no such finding. A process forked
before the probes loaded (the container's init) gets its parent and parent comm from the
kernel too.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.context import AgentContext
from agent.detectors.component import DetectorsComponent
from agent.detectors.registry import DETECTORS
from agent.events import Event, ProcessExec
from agent.findings import Finding, Severity
from agent.hostfs import HostPaths
from agent.runtime.enrich import Enricher
from agent.settings.detectors import DetectorsSettings
from agent.sources.ebpf import build
from agent.wiring import attach
from tests.privileged.harness import docker_exec, register, run_container
from tests.support import need_root, wait_for


@dataclass
class Chain:
    ctx: AgentContext
    c: Any  # the docker container
    events: list[Event] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_event(self, ev: Event) -> None:
        with self.lock:
            self.events.append(ev)

    def on_finding(self, f: Finding) -> None:
        with self.lock:
            self.findings.append(f)

    def exec_of(self, *argv: str, timeout: float = 10) -> ProcessExec:
        def hit() -> ProcessExec | None:
            with self.lock:
                return next((e for e in self.events if isinstance(e, ProcessExec) and e.argv == argv), None)

        found = wait_for(hit, timeout=timeout, what=f"the exec of {argv}")
        assert isinstance(found, ProcessExec)
        return found

    def rg0005(self) -> list[Finding]:
        with self.lock:
            return [f for f in self.findings if f.detector_id == "RG-0005"]


_INIT = "while [ ! -e /tmp/go ]; do sleep 0.2; done; exec sleep 900"


@pytest.fixture(scope="module")
def chain(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    need_root()
    state = tmp_path_factory.mktemp("rg-stdio")
    no_proc = tmp_path_factory.mktemp("no-proc")  # the agent reads no /proc: stdio from the kernel only
    ctx = AgentContext.in_state(state, paths=HostPaths(proc=no_proc))
    # The container's init is forked before the probes load; it execs ``sleep 900`` once /tmp/go
    # exists (test_a_fork_before_the_probes_loaded_...).
    c = run_container(docker_client, "rgtest-stdio", ["sh", "-c", _INIT])
    comps: list[Any] = []
    try:
        register(ctx, c)
        ctx.events.add_prepare(Enricher(ctx.paths, ctx.registry))
        source = build(ctx)
        assert source is not None
        ch = Chain(ctx, c)
        ctx.events.subscribe(ch.on_event)
        ctx.findings.subscribe(ch.on_finding)
        settings = DetectorsSettings(repeat_suppress_seconds=0, learned_allowances=False)
        for comp in (source, DetectorsComponent(settings, DETECTORS)):
            attach(ctx, comp)
            comps.append(comp)
        ctx.events.start()
        ctx.findings.start()
        assert "exec" in source.active and source.support.offsets.get("RG_OFF_TASK_FILES"), source.status()
        time.sleep(0.5)  # the container's cgroup is in the kernel filter
        yield ch
    finally:
        for comp in reversed(comps):
            comp.stop()
        ctx.events.stop(1)
        ctx.findings.stop(1)
        ctx.store.close()
        c.remove(force=True)


def _docker_exec_tty(c: Any, *cmd: str, detach: bool = False) -> None:
    """``docker exec -t``: the command gets a terminal of the container (the harness's
    ``docker_exec`` has no ``-t``)."""
    args = ["docker", "exec", "-t", *(["-d"] if detach else []), c.id, *cmd]
    subprocess.run(args, capture_output=True, timeout=20, check=True)


def _proc_stdio(pid: int) -> tuple[str, ...]:
    """What the real /proc says (the test reads it; the agent cannot)."""
    return tuple(str(Path(f"/proc/{pid}/fd/{i}").readlink()) for i in range(3))


def test_socket_pipe_terminal_and_null_stdio_are_named_by_the_kernel_as_proc_names_them(chain: Chain) -> None:
    c = chain.c
    docker_exec(c, "sh", "-c", "sleep 31 | sleep 32", detach=True)  # one pipe between the two
    docker_exec(c, "sh", "-c", "sleep 33 </dev/null >/dev/null 2>&1", detach=True)
    _docker_exec_tty(c, "sleep", "34", detach=True)  # a terminal: /dev/pts/N x 3
    docker_exec(c, "nc", "-l", "-p", "9100", "-e", "sleep", "35", detach=True)
    time.sleep(0.3)
    docker_exec(c, "sh", "-c", "nc -w 1 127.0.0.1 9100 </dev/null; true", detach=True)
    docker_exec(c, "sh", "-c", "sleep 36 > /tmp/out", detach=True)
    writer, reader = chain.exec_of("sleep", "31"), chain.exec_of("sleep", "32")
    null, tty = chain.exec_of("sleep", "33"), chain.exec_of("sleep", "34")
    on_socket, to_file = chain.exec_of("sleep", "35"), chain.exec_of("sleep", "36")
    for ev in (writer, reader, null, tty, on_socket):
        assert ev.stdio == _proc_stdio(ev.pid), ev
    assert writer.stdio[1] == reader.stdio[0] and reader.stdio[0].startswith("pipe:[")
    assert null.stdio == ("/dev/null",) * 3
    assert tty.stdio[0].startswith("/dev/pts/") and tty.stdio[0] == tty.stdio[1] == tty.stdio[2]
    assert on_socket.stdio[0].startswith("socket:[") and on_socket.stdio[1] == on_socket.stdio[0]
    # A file is named by its path: not in the kernel record, and this agent has no /proc.
    assert _proc_stdio(to_file.pid)[1] == "/tmp/out" and to_file.stdio[:2] == ("/dev/null", "")


def test_a_shell_on_a_socket_is_rg0005_from_the_kernel_stdio_and_its_twins_are_not(chain: Chain) -> None:
    c = chain.c
    # Benign twins first: their findings (if any) would be published before the attack's.
    docker_exec(c, "sh", "-c", "echo 'echo piped' | sh -s piped")  # a shell on pipes
    _docker_exec_tty(c, "sh", "-c", "true")  # a shell on a terminal
    docker_exec(c, "nc", "-l", "-p", "9101", "-e", "cat", detach=True)  # a non-shell on a socket
    time.sleep(0.3)
    docker_exec(c, "sh", "-c", "echo hi | nc -w 1 127.0.0.1 9101; true")
    piped, cat = chain.exec_of("sh", "-s", "piped"), chain.exec_of("cat")
    assert piped.stdio[0].startswith("pipe:[") and cat.stdio[0].startswith("socket:[")
    # The attack: nc hands the accepted connection to a shell as its stdin and stdout.
    docker_exec(c, "nc", "-l", "-p", "9102", "-e", "sh", detach=True)
    time.sleep(0.3)
    docker_exec(c, "sh", "-c", "echo exit | nc -w 1 127.0.0.1 9102; true")

    def on_socket() -> Finding | None:
        return next((f for f in chain.rg0005() if "stdio" in f.evidence), None)

    f = wait_for(on_socket, timeout=15, what=f"RG-0005 on the shell's socket stdio; got {chain.rg0005()}")
    assert isinstance(f, Finding) and f.severity is Severity.CRITICAL
    assert f.evidence["stdio"][0].startswith("socket:[") and f.evidence["stdio"][1] == f.evidence["stdio"][0]
    shells = [x for x in chain.rg0005() if "stdio" in x.evidence]
    assert len(shells) == 1, [x.summary for x in shells]  # not the piped shell, the terminal's, or cat
    assert Path(chain.ctx.paths.proc).is_dir() and not any(Path(chain.ctx.paths.proc).iterdir())


def test_a_fork_before_the_probes_loaded_has_its_parent_from_the_kernel(chain: Chain) -> None:
    # The container's init was forked (by the runtime) before the probes loaded: its exec has no
    # fork record, so the probe reads the real parent (containerd-shim) and its comm itself.
    docker_exec(chain.c, "touch", "/tmp/go")
    ev = chain.exec_of("sleep", "900")
    status = Path(f"/proc/{ev.pid}/status").read_text()
    ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
    assert ev.ppid == ppid and ev.parent_comm == Path(f"/proc/{ppid}/comm").read_text().strip()
    assert ev.parent_comm.startswith("containerd-shim"), ev
