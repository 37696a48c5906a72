# SPDX-License-Identifier: Apache-2.0
"""Events and the runner for the post-exploitation rules' table tests (RG-0011, RG-0014 … RG-0018).

These rules reason about sequences (a pipeline's two processes, a file change and the shell
above it, a burst of /proc reads), so each case is a list of events pushed through the rules
the way the component does it: an exec is recorded in the lineage first, then every rule that
declares the event's type evaluates it. No kernel, no threads.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from agent.detectors.registry import BY_ID
from agent.detectors.spec import DetectorState
from agent.events import ContainerRef, Event, FileChange, FileOpen, NetConnect, ProcessExec
from agent.findings import Finding, Source
from agent.settings.detectors import DetectorsSettings

C = ContainerRef(id="feed" * 16, name="app", image="busybox:1")
RULES = ("RG-0011", "RG-0014", "RG-0015", "RG-0016", "RG-0017", "RG-0018")
# Rules whose positive and benign cases are sequences, tabled here rather than in test_rules.py.
SEQUENCE_RULES = frozenset(RULES) - {"RG-0011"}
SESSION = 100  # pid of an interactive `docker exec -i … sh` session
RUNC = 90


def exe(
    pid: int, ppid: int, *argv: str, ts: float = 1000.0, stdio: tuple[str, ...] = (), filename: str = ""
) -> ProcessExec:
    """An exec as busybox ash makes it: /proc/self/exe with the applet in argv[0]."""
    return ProcessExec(
        ts=ts,
        cgroup_id=7,
        pid=pid,
        container=C,
        ppid=ppid,
        uid=0,
        comm="exe" if not filename else filename.rsplit("/", 1)[-1][:15],
        filename=filename or "/proc/self/exe",
        argv=argv,
        parent_comm="exe",
        stdio=stdio,
    )


def session(ts: float = 900.0) -> list[Event]:
    """The runtime's exec helper and the interactive shell it starts."""
    return [
        exe(RUNC, 80, "runc", "init", ts=ts, filename="/usr/bin/runc"),
        exe(SESSION, RUNC, "sh", ts=ts, stdio=("pipe:[1]", "pipe:[2]", "pipe:[3]"), filename="/bin/sh"),
    ]


def conn(pid: int, ts: float = 1000.2, op: str = "connect", state: str = "ESTABLISHED") -> NetConnect:
    return NetConnect(
        ts=ts,
        cgroup_id=7,
        pid=pid,
        container=C,
        op=op,
        comm="nc",
        family=socket.AF_INET,
        protocol="tcp",
        saddr="127.0.0.1",
        sport=40000,
        daddr="127.0.0.1",
        dport=4444,
        state=state,
    )


def unix_connect(path: str, comm: str = "curl") -> NetConnect:
    return NetConnect(
        ts=1000.0,
        cgroup_id=7,
        pid=300,
        container=C,
        op="connect",
        comm=comm,
        family=socket.AF_UNIX,
        protocol="",
        saddr="",
        sport=0,
        daddr=path,
        dport=0,
    )


def change(
    pid: int,
    op: str,
    path: str,
    new: str = "",
    explicit: bool = False,
    ts: float = 1000.1,
    comm: str = "exe",
    ppid: int = 0,
) -> FileChange:
    return FileChange(
        ts=ts,
        cgroup_id=7,
        pid=pid,
        container=C,
        op=op,
        comm=comm,
        path=path,
        new_path=new,
        explicit_times=explicit,
        ppid=ppid,
    )


def fopen(pid: int, path: str, flags: int = os.O_RDONLY, ts: float = 1000.1, comm: str = "exe") -> FileOpen:
    write = bool(flags & (os.O_WRONLY | os.O_RDWR))
    return FileOpen(ts=ts, cgroup_id=7, pid=pid, container=C, comm=comm, path=path, flags=flags, write=write)


TRUNC = os.O_WRONLY | os.O_CREAT | os.O_TRUNC


@dataclass
class Case:
    id: str
    events: list[Event]
    expect: str | None  # detector id expected to fire (None: none of RULES fires)
    evidence: dict[str, Any] = field(default_factory=dict)  # plus "severity" / "mitre"


def pipeline(
    *stages: tuple[int, tuple[str, ...], tuple[str, ...]], ppid: int = SESSION, t0: float = 1000.0
) -> list[Event]:
    return [exe(pid, ppid, *argv, ts=t0 + i * 0.001, stdio=stdio) for i, (pid, argv, stdio) in enumerate(stages)]


FIFO = "/tmp/f"


def run(events: list[Event], state: DetectorState | None = None) -> list[Finding]:
    """Push ``events`` through the rules like the component: lineage first, then each rule."""
    st = state or DetectorState(settings=DetectorsSettings())
    out: list[Finding] = []
    for ev in events:
        if isinstance(ev, ProcessExec):
            st.remember_exec(ev)
        for rid in RULES:
            d = BY_ID[rid]
            if isinstance(ev, d.events):
                f = d.evaluate(ev, st)
                if f is not None:
                    out.append(f)
    return out


def check(case: Case) -> None:
    """Run ``case`` and assert what it expects."""
    findings = run(case.events)
    if case.expect is None:
        assert findings == [], [f.summary for f in findings]
        return
    assert [f.detector_id for f in findings] == [case.expect], [f"{f.detector_id}: {f.summary}" for f in findings]
    f = findings[0]
    assert f.source is Source.RULE and f.container == C and f.summary and f.evidence["subject"]
    expect = dict(case.evidence)
    assert f.severity == expect.pop("severity", f.severity)
    assert f.mitre == expect.pop("mitre", f.mitre)
    assert f.mitre.startswith("T")
    for key, value in expect.items():
        assert f.evidence[key] == value, key
