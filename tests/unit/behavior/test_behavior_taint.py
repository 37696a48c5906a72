# SPDX-License-Identifier: Apache-2.0
"""Which findings keep windows out of training: behaviour findings around their time only;
posture (RG-01xx) and vulnerability findings never."""

from __future__ import annotations

import random

from behavior_synth import IMAGE, container, normal_window

from agent.behavior import baseline_ops
from agent.behavior.engine import BehaviorEngine
from agent.events import ContainerRef
from agent.settings.behavior import BehaviorSettings
from agent.store import Store


def add_finding(
    store: Store,
    fid: str,
    c: ContainerRef,
    ts: float,
    source: str,
    detector: str,
    severity: int,
    status: str = "open",
    evidence: str = "{}",
) -> None:
    store.execute(
        "INSERT INTO findings(id, ts, container_id, container_name, image, source, detector_id, severity, "
        "summary, evidence, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 's', ?, ?)",
        (fid, ts, c.id, c.name, c.image, source, detector, severity, evidence, status),
    )


def test_default_docker_container_with_posture_findings_gets_a_fitted_baseline(store: Store) -> None:
    # Every container on a default Docker host keeps NET_RAW (RG-0105, low) and may carry
    # vulnerability findings: with the default learning settings its image still gets fitted
    # within the learning period.
    settings = BehaviorSettings(fit_in_subprocess=False)
    engine = BehaviorEngine(settings, store)
    c = container(1)
    add_finding(store, "posture", c, 1000.0, "netpolicy", "RG-0105", 1)
    add_finding(store, "published", c, 1000.0, "netpolicy", "RG-0106", 2)
    add_finding(store, "cve", c, 1001.0, "vuln", "CVE-2024-0001", 4)
    rng = random.Random(3)
    w = settings.window_seconds
    n = int(settings.learning_seconds / w) + 1
    states = []
    for i in range(n):
        win = normal_window(rng, 1000 + i * w, c, seconds=w)
        (s,) = engine.process([win], now=win.end)
        states.append(s)
    assert all(s.learned for s in states), "posture and vulnerability findings stopped learning"
    row = engine.db.get(IMAGE)
    assert row is not None and row.state == "scoring" and row.version == 1
    assert row.fitted <= 1000 + settings.learning_seconds + 2 * w
    assert baseline_ops.describe(engine)[0]["training_windows"] == n


def test_behaviour_findings_taint_only_windows_around_them(store: Store) -> None:
    settings = BehaviorSettings(fit_in_subprocess=False, taint_seconds=30.0, learning_seconds=10_000)
    engine = BehaviorEngine(settings, store)
    c = container(1)
    add_finding(store, "rce", c, 1100.0, "rule", "RG-0001", 3)
    add_finding(store, "low-note", c, 1500.0, "rule", "RG-0001", 1)
    add_finding(store, "old-closed", c, 1700.0, "behavior", "behavior.deviation", 3, status="closed")
    rng = random.Random(4)
    learned = {}
    for i in range(100):
        win = normal_window(rng, 1000 + i * 10, c, seconds=10)
        (s,) = engine.process([win], now=win.end)
        learned[win.start] = s.learned
    tainted = sorted(t for t, ok in learned.items() if not ok)
    # Windows overlapping [1100 - 30, 1100 + 30]: starts 1060 … 1130.
    assert tainted == [1060.0 + 10 * k for k in range(8)]
    assert engine.counters["not_learned_behaviour_finding"] == 8


def test_another_containers_finding_taints_nothing(store: Store) -> None:
    engine = BehaviorEngine(BehaviorSettings(fit_in_subprocess=False), store)
    add_finding(store, "other", container(2), 1005.0, "rule", "RG-0002", 3)
    (s,) = engine.process([normal_window(random.Random(5), 1000, container(1))], now=1002)
    assert s.learned


def test_findings_lowered_by_learned_allowances_do_not_taint(store: Store) -> None:
    # The app's own `subprocess(shell=True)` while its image learns: RG-0001 at MEDIUM with the
    # allowance that lowered it. It describes the image's normal behaviour: learning goes on.
    engine = BehaviorEngine(BehaviorSettings(fit_in_subprocess=False), store)
    c = container(1)
    lowered = '{"allowance": {"state": "learning", "pattern": "python3>sh"}, "parent": "python3"}'
    add_finding(store, "shell", c, 1001.0, "rule", "RG-0001", 2, evidence=lowered)
    (s,) = engine.process([normal_window(random.Random(6), 1000, c)], now=1002)
    assert s.learned
    add_finding(store, "unlowered", c, 1011.0, "rule", "RG-0001", 2, evidence='{"parent": "httpd"}')
    (s,) = engine.process([normal_window(random.Random(7), 1010, c)], now=1012)
    assert not s.learned
