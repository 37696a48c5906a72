# SPDX-License-Identifier: Apache-2.0
"""The known filter over containers' lives, with the real probes and containers
(agent/sources/ebpf/known.py, known_kernel.py, probes/known.h).

The eBPF source runs without its own known set; each test makes one (``Lab.known``: its own
store, learning while the test says so, ``max_entries`` and ``grace_seconds`` as the test
needs) and runs its sync rounds itself. A container runs busybox httpd on 127.0.0.1:8080; a
batch (``docker exec``) runs ``/bin/true tick`` and a wget to it ``n`` times: 2n execs and n
connects, all known once the image has learned one batch. The maps alone (hits of a gone
cgroup, a full hits map): test_known_maps.py."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import Event, KnownActivity, ProcessExec
from agent.findings import Finding, Severity, Source
from agent.sources.ebpf import EbpfSource, build
from agent.sources.ebpf.known import KnownSet
from agent.sources.ebpf.known_kernel import SETTLE_SECONDS
from agent.store import Store
from tests.privileged.harness import agent_context, docker_exec, register, run_container
from tests.support import need_root, wait_for

NEVER = ("sh", "ash", "bash", "busybox")
HTTPD = ["httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/"]
N = 20
KNOWN_MAPS = (b"rg_known_exec", b"rg_known_conn", b"rg_known_slot", b"rg_known_hits")


@dataclass
class Lab:
    ctx: AgentContext
    source: EbpfSource
    client: Any
    state: Path
    learning: set[str] = field(default_factory=set)
    events: list[Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    containers: list[Any] = field(default_factory=list)

    def seen(self, ev: Event) -> None:
        with self.lock:
            self.events.append(ev)

    @property
    def bpf(self) -> Any:
        return self.source.bpf

    def known(self, name: str, **kw: Any) -> KnownSet:
        """A fresh known set on empty maps, learning the keys in ``self.learning``."""
        for m in KNOWN_MAPS:
            self.bpf[m].clear()
        registry, paths = self.ctx.registry, self.ctx.paths

        def root_of(cg: int) -> Path | None:
            c = registry.by_cgroup_id(cg)
            return paths.pid_root(c.init_pid) if c is not None and c.init_pid else None

        store = Store(self.state / f"{name}.db")
        ks = KnownSet(store, lambda key, _now: key in self.learning, NEVER, ("/tmp/",), root_of=root_of, **kw)
        self.source.reader.known = ks
        return ks

    def start(self, ks: KnownSet, key: str) -> tuple[Any, int]:
        c = run_container(self.client, "rgtest-known-life", HTTPD)
        self.containers.append(c)
        rec = register(self.ctx, c)
        ks.track(rec.cgroup_id, key)
        wait_for(
            lambda: "HTTP/1." in docker_exec(c, "wget", "-S", "-O", "/dev/null", "http://127.0.0.1:8080/"), what="httpd"
        )
        return c, rec.cgroup_id

    def stop(self, ks: KnownSet, c: Any, cg: int) -> None:
        c.remove(force=True)
        self.ctx.registry.remove(c.id)
        ks.track(cg, None)

    def execs_sent(self, cg: int, since: float) -> list[ProcessExec]:
        with self.lock:
            return [
                e
                for e in self.events
                if isinstance(e, ProcessExec) and e.cgroup_id == cg and e.ts >= since and e.argv[-1:] == ("tick",)
            ]


def batch(c: Any, n: int) -> None:
    loop = (
        f"i=0; while [ $i -lt {n} ]; do /bin/true tick; wget -q -O /dev/null http://127.0.0.1:8080/; i=$((i+1)); done"
    )
    docker_exec(c, "sh", "-c", loop, timeout=60)


def learn(lab: Lab, ks: KnownSet, key: str, c: Any) -> None:
    """``key`` learns one batch of ``c``, then has learned (and is installed at the next sync)."""
    lab.learning.add(key)
    ks.sync(lab.bpf, time.time(), None)
    batch(c, 2)
    wait_for(lambda: len(ks.execs.get(key, {})) >= 2 and ks.conns.get(key), what=f"{key} learns its batch")
    time.sleep(0.5)  # the reader has learned the batch's last records
    lab.learning.discard(key)


def counted(acts: list[KnownActivity], cg: int) -> tuple[int, int]:
    return sum(a.execs for a in acts if a.cgroup_id == cg), sum(a.connects for a in acts if a.cgroup_id == cg)


def hit_cgroups(lab: Lab) -> set[int]:
    return {k.cgroup_id for k in lab.bpf[b"rg_known_hits"]}


def entry_slots(lab: Lab) -> set[int]:
    return {k.slot for k in lab.bpf[b"rg_known_exec"]} | {k.slot for k in lab.bpf[b"rg_known_conn"]}


@pytest.fixture(scope="module")
def lab(docker_client: Any) -> Iterator[Lab]:
    need_root()
    state = Path(tempfile.mkdtemp(prefix="rg-known-life-"))
    ctx = agent_context(state, AgentConfig.model_validate({"behavior": {"window_seconds": 3600}}))
    source = build(ctx)
    assert source is not None
    source.known_filter = False  # the tests run their own known sets
    lb = Lab(ctx, source, docker_client, state)
    ctx.events.subscribe(lb.seen, name="test:events")
    ctx.registry.add_listener(source.on_container)
    ctx.events.start()
    try:
        source.start(ctx)
        assert {"exec", "net"} <= set(source.status()["active"]), source.status()
        yield lb
    finally:
        source.stop()
        ctx.events.stop(1)
        ctx.store.close()
        for c in lb.containers:
            try:
                c.remove(force=True)
            except Exception:
                pass
        shutil.rmtree(state, ignore_errors=True)


def test_a_gone_images_entries_and_hits_leave_the_kernel_and_come_back_with_its_next_container(lab: Lab) -> None:
    grace = 30.0
    ks = lab.known("life", grace_seconds=grace)
    c1, cg1 = lab.start(ks, "img")
    learn(lab, ks, "img", c1)
    ks.sync(lab.bpf, time.time(), None)
    slot = ks.kernel.slots["img"]
    assert entry_slots(lab) == {slot} and ks.status()["entries_installed"] == 3, ks.status()
    mark = time.time()
    batch(c1, N)
    lab.stop(ks, c1, cg1)  # its last hits not read yet
    acts = ks.sync(lab.bpf, time.time(), None)  # the cgroup's slot goes; its hits are read
    time.sleep(SETTLE_SECONDS + 0.2)
    acts += ks.sync(lab.bpf, time.time(), None)  # final read, then deleted
    assert counted(acts, cg1) == (2 * N, N), "a known exec or connect was lost on the way out"
    assert not lab.execs_sent(cg1, mark), "a known exec reached Python"
    assert cg1 not in hit_cgroups(lab)
    # In its grace period the image keeps its entries; after it, none is left.
    ks.sync(lab.bpf, time.time() + grace / 2, None)
    assert entry_slots(lab) == {slot}
    ks.sync(lab.bpf, time.time() + grace + 1, None)
    assert entry_slots(lab) == set() and ks.status()["images_installed"] == 0, ks.status()
    assert not list(lab.bpf[b"rg_known_slot"].items())
    # A new container of the image: the stored set is installed again, in the freed slot.
    c2, cg2 = lab.start(ks, "img")
    ks.sync(lab.bpf, time.time(), None)
    assert ks.kernel.slots["img"] == slot and ks.status()["entries_installed"] == 3
    mark = time.time()
    batch(c2, N)
    acts = ks.sync(lab.bpf, time.time(), None)
    assert counted(acts, cg2) == (2 * N, N), acts
    assert not lab.execs_sent(cg2, mark)
    lab.stop(ks, c2, cg2)


def test_a_set_without_room_is_refused_loudly_its_events_reach_python_and_it_takes_a_freed_slot(lab: Lab) -> None:
    ks = lab.known("room", max_entries=4)  # room for one image's three entries
    ca, cga = lab.start(ks, "a")
    cb, cgb = lab.start(ks, "b")
    learn(lab, ks, "a", ca)
    learn(lab, ks, "b", cb)
    with structlog.testing.capture_logs() as logs:
        ks.sync(lab.bpf, time.time(), None)
        ks.sync(lab.bpf, time.time(), None)
    assert [e["image"] for e in logs if e["event"] == "ebpf_known_not_installed"] == ["b"], logs
    st = ks.status()
    assert (st["images_installed"], st["images_refused"], st["entries_refused"]) == (1, 1, 3), st
    assert st["install_refusals"] == 1, st
    slot_a = ks.kernel.slots["a"]
    mark = time.time()
    batch(ca, N)
    batch(cb, N)
    assert counted(ks.sync(lab.bpf, time.time(), None), cga) == (2 * N, N)
    wait_for(lambda: len(lab.execs_sent(cgb, mark)) >= N, what="the refused image's execs in Python")
    assert len(lab.execs_sent(cgb, mark)) == N and not lab.execs_sent(cga, mark)
    # a's container goes: b needs its room, so a is pruned at once and b takes its slot.
    lab.stop(ks, ca, cga)
    ks.sync(lab.bpf, time.time(), None)
    assert ks.kernel.slots == {"b": slot_a} and entry_slots(lab) == {slot_a}, ks.kernel.slots
    assert ks.status()["images_refused"] == 0
    mark = time.time()
    batch(cb, N)
    assert counted(ks.sync(lab.bpf, time.time(), None), cgb) == (2 * N, N)
    assert not lab.execs_sent(cgb, mark)
    lab.stop(ks, cb, cgb)


def test_a_finding_while_the_image_learns_keeps_what_the_container_did_visible(lab: Lab) -> None:
    """A container that had a finding while its image learned taught the kernel nothing: once
    the image has learned, the same execs and connects still reach Python (none is counted),
    where the same batch of a clean container is counted in the kernel (the test above)."""
    ks = lab.known("taint")
    lab.source.known = ks  # the component's findings handler acts on the known set it runs
    try:
        c, cg = lab.start(ks, "timg")
        lab.learning.add("timg")
        ks.sync(lab.bpf, time.time(), None)
        batch(c, 2)
        wait_for(lambda: len(ks.execs.get("timg", {})) >= 2 and ks.conns.get("timg"), what="timg learns its batch")
        time.sleep(0.5)
        rec = lab.ctx.registry.get(c.id)
        assert rec is not None
        secret_read = Finding(
            container=rec.ref(),
            source=Source.RULE,
            detector_id="RG-0002",
            severity=Severity.HIGH,
            summary="read /etc/shadow",
        )
        lab.source.on_finding(secret_read)
        assert ks.execs["timg"] == {} and ks.conns["timg"] == {}, ks.status()
        lab.learning.discard("timg")
        ks.sync(lab.bpf, time.time(), None)
        assert ks.status()["entries_installed"] == 0, ks.status()
        mark = time.time()
        batch(c, N)
        wait_for(lambda: len(lab.execs_sent(cg, mark)) >= N, what="the tainted container's execs reach Python")
        acts = ks.sync(lab.bpf, time.time(), None)
        assert counted(acts, cg) == (0, 0), acts
        lab.stop(ks, c, cg)
    finally:
        lab.source.known = None
