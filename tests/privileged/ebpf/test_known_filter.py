# SPDX-License-Identifier: Apache-2.0
"""Known execs and connects are counted in the kernel, not sent (probes/known.h, known.py).

A busybox container loops from the start: ``/bin/true tick``, an exec from /tmp (``/tmp/x``, a
copy of busybox), a wget to its own httpd on 127.0.0.1:8080, ``sleep 0.2``. The agent learns the
image for ``LEARN`` seconds (behaviour's learning period), then the kernel knows the loop's
execs (path, parent comm, argv) and its connect (address, port). From then on:

- ``/bin/true tick`` and the connect to :8080 no longer reach Python as events, but are counted
  (``KnownActivity``, folded into the behaviour windows);
- ``/tmp/x`` always does (an exec below a writable directory is never known, learned or not);
- a novel exec (``/bin/true novel``) and a novel destination (:8081), started by the same loop
  once /tmp/novel exists, do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.events import Event, KnownActivity, NetConnect, ProcessExec
from agent.settings.behavior import BehaviorSettings
from agent.settings.detectors import DetectorsSettings
from tests.privileged.harness import DetectorChain, detector_chain, docker_exec, register, run_container
from tests.support import need_root, wait_for

LEARN = 5.0
LOOP = (
    "cp /bin/busybox /tmp/x; httpd -p 127.0.0.1:8080 -h /; httpd -p 127.0.0.1:8081 -h /; "
    "while true; do /bin/true tick; /tmp/x 2>/dev/null; wget -q -O /dev/null http://127.0.0.1:8080/ 2>/dev/null; "
    "if [ -e /tmp/novel ]; then /bin/true novel; wget -q -O /dev/null http://127.0.0.1:8081/ 2>/dev/null; fi; "
    "sleep 0.2; done"
)


@dataclass
class Lab:
    chain: DetectorChain
    c: Any
    events: list[Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self, ev: Event) -> None:
        with self.lock:
            self.events.append(ev)

    def since(self, ts: float, kind: type) -> list[Any]:
        with self.lock:
            return [e for e in self.events if isinstance(e, kind) and e.ts >= ts]


@pytest.fixture(scope="module")
def lab(docker_client: Any) -> Iterator[Lab]:
    need_root()
    c = run_container(docker_client, "rgtest-h4-known", ["sh", "-c", LOOP])
    labs: list[Lab] = []

    def before(ch: DetectorChain) -> None:
        register(ch.ctx, c)
        labs.append(Lab(ch, c))
        ch.ctx.events.subscribe(labs[0].seen, name="test:events")

    config = AgentConfig(behavior=BehaviorSettings(learning_seconds=LEARN))
    try:
        with detector_chain("rg-h4-known-", DetectorsSettings(), config, before=before):
            yield labs[0]
    finally:
        c.remove(force=True)


def _true(e: ProcessExec, arg: str) -> bool:
    return e.argv[-1:] == (arg,) and e.filename.endswith("true")


def test_known_execs_and_connects_are_counted_novel_and_rule_relevant_ones_are_sent(lab: Lab) -> None:
    # While the image learns, every exec and connect is sent (and learned).
    wait_for(lambda: [e for e in lab.since(0, ProcessExec) if _true(e, "tick")], timeout=10, what="the loop's execs")
    learned = lab.since(0, ProcessExec)
    assert any(e.parent_exe == "busybox" and e.exe_name == "busybox" for e in learned), learned[:3]
    # Once learned, the kernel counts the known forms (KnownActivity) instead of sending them.
    wait_for(
        lambda: [a for a in lab.since(0, KnownActivity) if a.execs and a.connects],
        timeout=LEARN + 20,
        what="kernel-counted known execs and connects",
    )
    mark = time.time() + 0.5  # records already in the ring buffer or the queue are not judged
    time.sleep(4)
    rec = lab.chain.ctx.registry.get(lab.c.id)
    assert rec is not None
    known = [a for a in lab.since(mark, KnownActivity) if a.cgroup_id == rec.cgroup_id]
    execs = lab.since(mark, ProcessExec)
    connects = [e for e in lab.since(mark, NetConnect) if e.op == "connect"]
    assert sum(a.execs for a in known) >= 8 and "/bin/true" in set().union(*(a.binaries for a in known)), known
    assert sum(a.connects for a in known) >= 4 and any(8080 in a.dst_ports for a in known), known
    assert not [e for e in execs if _true(e, "tick")], "a known exec reached Python"
    assert not [e for e in connects if e.dport == 8080], "a known connect reached Python"
    # The exec from /tmp was learned too, and still reaches Python every round.
    assert len([e for e in execs if e.filename == "/tmp/x"]) >= 4, [e.filename for e in execs]
    # Novel forms reach Python.
    docker_exec(lab.c, "touch", "/tmp/novel")
    wait_for(lambda: [e for e in lab.since(mark, ProcessExec) if _true(e, "novel")], timeout=10, what="novel exec")
    wait_for(
        lambda: [e for e in lab.since(mark, NetConnect) if e.op == "connect" and e.dport == 8081],
        timeout=10,
        what="novel connect",
    )
    status = lab.chain.ctx.control_methods["ebpf.status"]({})
    assert status["known"]["counted"]["execs"] > 0 and status["known"]["images_installed"] == 1, status["known"]
