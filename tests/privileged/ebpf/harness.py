# SPDX-License-Identifier: Apache-2.0
"""The shared eBPF test agent: probes compiled once per module (bcc costs seconds of CPU) and two
containers, ``a`` that acts and ``b`` that only sleeps (``b`` must never receive an event caused
by ``a``). ``a`` runs with ``seccomp=unconfined`` because Docker's default profile rejects
unshare/mount before the syscall tracepoints run."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import Event
from agent.hostfs import HostPaths
from agent.runtime.docker import container_from_inspect
from agent.runtime.model import Container
from agent.sources.ebpf import EbpfSource, build
from tests.privileged.harness import agent_context, run_container
from tests.support import need_root, wait_for


@dataclass
class Agent:
    ctx: AgentContext
    source: EbpfSource
    a: Any  # docker container that acts
    b: Any  # docker container that only sleeps
    ra: Container
    rb: Container
    events: list[Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def collect(self, ev: Event) -> None:
        with self.lock:
            self.events.append(ev)

    def exec_a(self, *cmd: str, timeout: float = 30) -> str:
        p = subprocess.run(["docker", "exec", self.a.id, *cmd], capture_output=True, text=True, timeout=timeout)
        return p.stdout + p.stderr

    def of(self, kind: type, pred: Callable[[Any], bool] = lambda e: True) -> list[Any]:
        with self.lock:
            return [e for e in self.events if isinstance(e, kind) and pred(e)]

    def wait(self, kind: type, pred: Callable[[Any], bool], what: str, timeout: float = 10) -> list[Any]:
        found = wait_for(lambda: self.of(kind, pred), timeout=timeout, what=what)
        assert isinstance(found, list)
        return found


@pytest.fixture(scope="module")
def agent(docker_client: Any) -> Iterator[Agent]:
    need_root()
    state = Path(tempfile.mkdtemp(prefix="rg-ebpf-"))
    # Windows are flushed by the tests themselves (flush_window): no timer in the way.
    config = AgentConfig.model_validate({"behavior": {"window_seconds": 3600}})
    ctx = agent_context(state, config)
    started: list[Any] = []
    source: EbpfSource | None = None
    try:
        for role, security in (("a", ["seccomp=unconfined"]), ("b", None)):
            extra: dict[str, Any] = {"security_opt": security} if security else {}
            c = run_container(docker_client, f"rgtest-ebpf-{role}", ["sleep", "900"], **extra)
            started.append(c)
            c.reload()
        recs = [container_from_inspect(HostPaths(), c.attrs) for c in started]
        assert all(r is not None and r.cgroup_id for r in recs), "test containers have no cgroup id"
        ra, rb = recs[0], recs[1]
        assert ra is not None and rb is not None
        source = build(ctx)
        assert source is not None
        ag = Agent(ctx=ctx, source=source, a=started[0], b=started[1], ra=ra, rb=rb)
        ctx.events.subscribe(ag.collect)
        ctx.registry.add_listener(source.on_container)  # as agent.wiring subscribes it
        ctx.events.start()
        ctx.registry.upsert(ra)  # before start: picked up by registry.all()
        source.start(ctx)
        st = source.status()
        assert st["active"] == ["syscalls", "exec", "net", "files", "priv"], st
        ctx.registry.upsert(rb)  # after start: through the listener
        yield ag
    finally:
        if source is not None:
            source.stop()
        ctx.events.stop(1)
        ctx.store.close()
        for c in started:
            try:
                c.remove(force=True)
            except Exception:
                pass
        shutil.rmtree(state, ignore_errors=True)
