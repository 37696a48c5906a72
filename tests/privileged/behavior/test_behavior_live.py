# SPDX-License-Identifier: Apache-2.0
"""Behaviour analysis on real windows of real containers (eBPF + /proc + window aggregator).

Two replicas of one service (busybox ``httpd`` answering a ``wget`` loop inside the container)
share one baseline. After the learning period the subject does something new (reads
/etc/shadow, serves a shell with ``nc -e``, burns CPU) and must produce a deviation finding whose
top features explain it; the replica keeps its loop and must stay clean for every window.

Every part is built as the daemon builds it (``build(ctx)`` of the eBPF source, the /proc source,
the window aggregator and the behaviour component), each with its own ``WINDOW``-second timer.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from agent.behavior.component import BehaviorComponent
from agent.behavior.component import build as build_behavior
from agent.behavior.engine import DETECTOR_DEVIATION
from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import BehaviorWindow
from agent.findings import Finding, Source
from agent.runtime.enrich import Enricher
from agent.sources.ebpf import EbpfSource
from agent.sources.ebpf import build as build_ebpf
from agent.sources.procfs import ProcfsSource
from agent.sources.procfs import build as build_procfs
from agent.sources.window import WindowAggregator
from agent.sources.window import build as build_window
from agent.wiring import attach
from tests.privileged.harness import agent_context, run_container
from tests.support import need, need_root, wait_for

WINDOW = 1.5
LEARN = 24.0
LOOP = "httpd -f -p 8080 -h /var/www & while true; do wget -q -O- http://127.0.0.1:8080/ >/dev/null; sleep 0.25; done"
ATTACK = (
    "cat /etc/shadow >/dev/null; "
    "nc -l -p 9999 -e /bin/sh & sleep 0.3; echo 'id; cat /etc/shadow' | nc -w 1 127.0.0.1 9999 >/dev/null; "
    "timeout 3 sh -c 'while :; do :; done'; true"
)
# Features the attack changes (any of them may explain a deviating window).
ATTACK_FEATURES = {
    "sensitive_open_rate",
    "cpu_cores",
    "new_binaries",
    "binaries",
    "exec_rate",
    "processes",
    "threads",
    "listen_rate",
    "accept_rate",
    "tr_exec_after_fd",
    "tr_into_sensitive",
    "sc_exec",
    "sc_fd",
    "sc_net_setup",
    "sc_fork",
}


@dataclass
class Live:
    ctx: AgentContext
    behavior: BehaviorComponent
    subject: Any
    replica: Any
    findings: list[Finding] = field(default_factory=list)
    windows: list[BehaviorWindow] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def windows_of(self, container: Any, after: float) -> int:
        with self.lock:
            return sum(1 for w in self.windows if w.container and w.container.id == container.id and w.end > after)

    def of(self, container: Any, pred: Callable[[Finding], bool] = lambda f: True) -> list[Finding]:
        with self.lock:
            return [f for f in self.findings if f.container_id == container.id and pred(f)]


@pytest.fixture(scope="module")
def live(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    need_root()
    from agent.hostfs import HostPaths
    from agent.runtime.docker import container_from_inspect

    state = tmp_path_factory.mktemp("behavior-live")
    group = f"rgtest-{uuid.uuid4().hex[:8]}"
    config = AgentConfig.model_validate(
        {
            "behavior": {
                "window_seconds": WINDOW,
                "learning_seconds": LEARN,
                "min_windows": 24,
                "batch_seconds": 0.1,
                "finding_cooldown_seconds": 0,
                "refit_seconds": 0,
            }
        }
    )
    ctx = agent_context(state, config)
    ctx.events.add_prepare(Enricher(ctx.paths, ctx.registry))
    started: list[Any] = []
    ebpf: EbpfSource | None = None
    procfs: ProcfsSource | None = None
    agg: WindowAggregator | None = None
    behavior: BehaviorComponent | None = None
    try:
        for role in ("subject", "replica"):
            c = run_container(
                docker_client, f"rgtest-beh-{role}", ["sh", "-c", LOOP], labels={"riskguard.baseline": group}
            )
            started.append(c)
            c.reload()
        recs = [container_from_inspect(HostPaths(), c.attrs) for c in started]
        assert all(r is not None and r.cgroup_id for r in recs), "test containers have no cgroup id"
        for r in recs:
            assert r is not None
            ctx.registry.upsert(r)

        behavior = build_behavior(ctx)
        assert behavior is not None
        live = Live(ctx=ctx, behavior=behavior, subject=started[0], replica=started[1])

        def collect(f: Finding) -> None:
            with live.lock:
                live.findings.append(f)

        def windows(w: BehaviorWindow) -> None:
            with live.lock:
                live.windows.append(w)

        ctx.findings.subscribe(collect)
        ctx.events.subscribe(windows, kind=BehaviorWindow)
        ctx.findings.start()
        attach(ctx, behavior)
        agg = build_window(ctx)
        assert agg is not None
        procfs = build_procfs(ctx)
        ebpf = build_ebpf(ctx)
        assert procfs is not None and ebpf is not None
        ctx.events.start()
        # In one generation, as the daemon wires them: the window drains the kernel's known counts.
        attach(ctx, ebpf, agg)
        need("syscalls" in ebpf.active, f"This test needs the eBPF syscall probe (bcc, tracefs): {ebpf.status()}")

        procfs.start(ctx)
        yield live
    finally:
        for part in (agg, procfs):
            if part is not None:
                part.stop()
        if behavior is not None:
            behavior.stop()
        if ebpf is not None:
            ebpf.stop()
        ctx.events.stop(1)
        ctx.findings.stop(1)
        ctx.store.close()
        for c in started:
            try:
                c.remove(force=True)
            except Exception:
                pass


def _baseline(live: Live) -> dict[str, Any]:
    baselines = live.behavior.control_baseline({"action": "list"})["baselines"]
    assert len(baselines) <= 1, baselines  # both replicas share one baseline
    return baselines[0] if baselines else {"state": "none"}  # type: ignore[no-any-return]


def test_learns_from_real_windows_then_explains_a_deviation_and_the_replica_stays_clean(live: Live) -> None:
    b = wait_for(
        lambda: _baseline(live)["state"] == "scoring" and _baseline(live),
        timeout=LEARN + 40,
        what="the baseline to leave learning",
    )
    assert isinstance(b, dict)
    assert b["training_windows"] >= 24 and b["version"] == 1
    assert b["image"].startswith("group:rgtest-")
    fitted_at = float(b["fitted"])
    counters = live.behavior.engine.counters
    scored_at_fit = counters["scored"]
    # Normal behaviour after learning: a few windows of both replicas, no deviation.
    wait_for(lambda: counters["scored"] >= scored_at_fit + 8, timeout=30, what="8 scored windows")
    before = live.of(live.subject, lambda f: f.source is Source.BEHAVIOR)
    assert before == [], [f.summary for f in before]

    subprocess.run(["docker", "exec", live.subject.id, "sh", "-c", ATTACK], capture_output=True, timeout=30)
    found = wait_for(
        lambda: live.of(live.subject, lambda f: f.detector_id == DETECTOR_DEVIATION),
        timeout=20,
        what="a behaviour deviation finding for the subject",
    )
    assert isinstance(found, list)
    named = {t["feature"] for f in found for t in f.evidence["top_features"][:5]}
    assert named & ATTACK_FEATURES, f"deviation explained by {named}, expected some of {ATTACK_FEATURES}"
    f = found[0]
    assert f.source is Source.BEHAVIOR and f.evidence["score"] is not None and "normal" in f.summary
    for t in f.evidence["top_features"]:
        assert len(t["normal_range"]) == 2 and t["normal_range"][0] <= t["normal_range"][1]

    # Keep watching the replica for a while: its normal loop never becomes a finding.
    time.sleep(10 * WINDOW)
    replica_findings = live.of(live.replica)
    assert replica_findings == [], [x.summary for x in replica_findings]
    assert live.windows_of(live.replica, after=fitted_at) >= 15
    # nc -e dup2()s the accepted socket onto stdio and execs the shell: an illegal chain, and
    # only the subject has one.
    chains = [x for x in live.findings if x.source is Source.SYSCALL_CHAIN]
    assert all(x.container_id == live.subject.id for x in chains), [x.summary for x in chains]
    assert any(x.evidence["reverse_shell_shape"] for x in chains), [x.summary for x in chains]
