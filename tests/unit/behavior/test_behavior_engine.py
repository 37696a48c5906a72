# SPDX-License-Identifier: Apache-2.0
"""Learning, scoring, guards, persistence and peers of ``BehaviorEngine`` and the component."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from behavior_synth import IMAGE, container, normal_window, with_cpu_burner, with_reverse_shell, with_shadow_read

from agent.behavior.component import BehaviorComponent, build
from agent.behavior.engine import DETECTOR_CHAIN, DETECTOR_DEVIATION, DETECTOR_PEER, BehaviorEngine
from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import BehaviorWindow, ContainerRef
from agent.findings import Finding, Severity, Source
from agent.settings.behavior import BehaviorSettings
from agent.store import Store
from agent.wiring import attach
from tests.support import REPO

# In-process fits keep these tests fast; test_fit_in_a_child_process covers the default path.
SETTINGS = BehaviorSettings(
    window_seconds=2.0, learning_seconds=60.0, min_windows=30, refit_seconds=0, fit_in_subprocess=False
)


def feed(engine: BehaviorEngine, windows: list[BehaviorWindow]) -> list:  # type: ignore[type-arg]
    out = []
    for w in windows:
        out += engine.process([w], now=w.end)
    return out


def learned_engine(store: Store, settings: BehaviorSettings = SETTINGS, seed: int = 1) -> BehaviorEngine:
    engine = BehaviorEngine(settings, store)
    rng = random.Random(seed)
    c = container(1)
    feed(engine, [normal_window(rng, 1000 + 2 * i, c) for i in range(60)])
    return engine


def test_learns_then_scores(store: Store) -> None:
    engine = BehaviorEngine(SETTINGS, store)
    rng = random.Random(1)
    c = container(1)
    early = feed(engine, [normal_window(rng, 1000 + 2 * i, c) for i in range(29)])
    assert all(s.learning and s.learned and s.result is None for s in early)
    assert engine.db.get(IMAGE).state == "learning"  # type: ignore[union-attr]
    # 30 windows but only 60 s of learning: still learning until the period is over.
    feed(engine, [normal_window(rng, 1058 + 2 * i, c) for i in range(2)])
    assert engine.db.get(IMAGE).state == "scoring"  # type: ignore[union-attr]
    row = engine.db.get(IMAGE)
    assert row is not None and row.version == 1
    (s,) = engine.process([normal_window(rng, 2000, c)], now=2002)
    assert not s.learning and s.result is not None and not s.result.deviating and not s.findings
    assert not s.learned  # refit_seconds = 0: continued learning would feed nothing

    refitting = BehaviorEngine(SETTINGS.model_copy(update={"refit_seconds": 3600.0}), store)
    (s,) = refitting.process([normal_window(rng, 2002, c)], now=2004)
    assert s.learned  # continued learning from a clean window


def test_deviation_becomes_an_explained_finding(store: Store) -> None:
    engine = learned_engine(store)
    rng = random.Random(9)
    c = container(1)
    (s,) = engine.process([with_shadow_read(with_cpu_burner(normal_window(rng, 3000, c)))], now=3002)
    assert s.result is not None and s.result.deviating and not s.learned
    (f,) = [f for f in s.findings if f.detector_id == DETECTOR_DEVIATION]
    assert f.source is Source.BEHAVIOR and f.container == c
    names = [t["feature"] for t in f.evidence["top_features"]]
    assert {"cpu_cores", "sensitive_open_rate"} <= set(names[:4]), names
    assert "cpu_cores=" in f.summary and "normal" in f.summary
    assert f.evidence["baseline"] == IMAGE and f.evidence["model_version"] == 1
    json.loads(json.dumps(f.to_dict()))  # evidence is plain JSON (the store and outputs need it)
    # Cooldown: the next deviating window of the same container reports nothing new.
    (s2,) = engine.process([with_cpu_burner(normal_window(rng, 3002, c))], now=3004)
    assert s2.result is not None and s2.result.deviating and not s2.findings


def test_unseen_sensitive_chain_is_a_syscall_chain_finding(store: Store) -> None:
    engine = learned_engine(store)
    (s,) = engine.process([with_reverse_shell(normal_window(random.Random(3), 3000, container(1)))], now=3002)
    (f,) = [f for f in s.findings if f.detector_id == DETECTOR_CHAIN]
    assert f.source is Source.SYSCALL_CHAIN and f.mitre == "T1059"
    # Unseen is not proof: an explained alert, never an action on its own in enforce mode.
    assert f.severity is Severity.MEDIUM and f.summary.startswith("unseen syscall chain")
    assert f.evidence["reverse_shell_shape"] is True
    assert f.evidence["chains"][0]["chain"] == "dup2->execve"
    json.loads(json.dumps(f.to_dict()))
    (s,) = engine.process([normal_window(random.Random(4), 3010, container(2))], now=3012)
    assert not s.chain_hits


def test_never_learns_from_a_container_with_an_open_finding(store: Store) -> None:
    engine = BehaviorEngine(SETTINGS, store)
    bad, good = container(1), container(2)
    store.execute(
        "INSERT INTO findings(id, ts, container_id, container_name, image, source, detector_id, severity, "
        "summary, evidence, status) VALUES ('f1', 1005, ?, 'web-1', ?, 'rule', 'RG-0001', 3, 's', '{}', 'open')",
        (bad.id, IMAGE),
    )
    rng = random.Random(1)
    out = feed(engine, [normal_window(rng, 1000 + 2 * i, bad) for i in range(5)])
    assert not any(s.learned for s in out) and engine.db.training_count(IMAGE) == 0
    out = feed(engine, [normal_window(rng, 1010 + 2 * i, good) for i in range(5)])
    assert all(s.learned for s in out) and engine.db.training_count(IMAGE) == 5
    store.execute("UPDATE findings SET status = 'closed' WHERE id = 'f1'")
    (s,) = engine.process([normal_window(rng, 1030, bad)], now=1032)
    assert s.learned


def test_own_findings_block_learning_until_stored(store: Store) -> None:
    engine = learned_engine(store)
    c = container(1)
    rng = random.Random(5)
    (s,) = engine.process([with_cpu_burner(normal_window(rng, 3000, c))], now=3002)
    assert s.findings
    # Not yet in the findings table (the response stores it asynchronously): still tainted.
    assert engine.window_tainted(normal_window(random.Random(6), 3002, c))
    (s,) = engine.process([normal_window(rng, 3002, c)], now=3004)
    assert not s.learned


def test_frozen_baseline_stops_learning_and_refits(store: Store) -> None:
    settings = SETTINGS.model_copy(update={"refit_seconds": 10.0})
    engine = learned_engine(store, settings)
    before = engine.db.training_count(IMAGE)
    version = engine.db.get(IMAGE).version  # type: ignore[union-attr]
    assert version > 1  # continued learning refitted every 10 s
    assert engine.freeze(IMAGE)
    rng = random.Random(6)
    out = feed(engine, [normal_window(rng, 4000 + 2 * i, container(1)) for i in range(10)])
    assert not any(s.learned for s in out)
    assert engine.db.training_count(IMAGE) == before and engine.db.get(IMAGE).version == version  # type: ignore[union-attr]
    engine.freeze(IMAGE, False)
    feed(engine, [normal_window(rng, 5000 + 2 * i, container(1)) for i in range(10)])
    assert engine.db.get(IMAGE).version > version  # type: ignore[union-attr]
    assert len(engine.db.model_versions(IMAGE)) == 9  # the newest 3 versions x (deviation, chain, sequence)
    engine.relearn(IMAGE, now=6000)
    assert engine.db.get(IMAGE).state == "learning" and engine.db.training_count(IMAGE) == 0  # type: ignore[union-attr]


def test_models_survive_a_restart_with_the_same_scores(tmp_path: Path) -> None:
    path = tmp_path / "state" / "agent.db"
    s1 = Store(path)
    engine = learned_engine(s1)
    rng = random.Random(8)
    probe = [normal_window(rng, 7000 + 2 * i, container(3)) for i in range(5)] + [
        with_cpu_burner(normal_window(rng, 7100, container(3)))
    ]
    first = [s.result for s in engine.process(probe, now=7200)]
    s1.close()
    s2 = Store(path)  # a new handle, a new engine: as after a daemon restart
    engine2 = BehaviorEngine(SETTINGS, s2)
    second = [s.result for s in engine2.process(probe, now=7200)]
    assert [r.score for r in first] == pytest.approx([r.score for r in second], abs=1e-6)  # type: ignore[union-attr]
    assert [r.deviating for r in first] == [r.deviating for r in second]  # type: ignore[union-attr]
    assert engine2.db.get(IMAGE).version == 1  # type: ignore[union-attr]
    s2.close()


def test_restart_mid_learning_keeps_rows_and_chain_counts(tmp_path: Path) -> None:
    from agent.syscall_table import syscall_number as nr

    path = tmp_path / "state" / "agent.db"
    s1 = Store(path)
    engine = BehaviorEngine(SETTINGS, s1)
    rng = random.Random(2)
    feed(engine, [normal_window(rng, 1000 + 2 * i, container(1)) for i in range(10)])
    engine.save_progress()  # what the component does at stop
    s1.close()
    s2 = Store(path)
    engine2 = BehaviorEngine(SETTINGS, s2)
    b = engine2.baseline(IMAGE, 1020)
    assert b.row.state == "learning" and engine2.db.training_count(IMAGE) == 10
    assert b.chain.counts[(nr("clone"), nr("execve"))] == 20  # 10 windows x 2
    feed(engine2, [normal_window(rng, 1020 + 2 * i, container(1)) for i in range(25)])
    assert engine2.db.get(IMAGE).state == "scoring"  # type: ignore[union-attr]
    assert engine2.db.store.kv_get("behavior.chain_progress", IMAGE) is None  # folded into the model
    s2.close()


def test_replicas_share_a_baseline_and_a_group_label_overrides_it(store: Store) -> None:
    engine = BehaviorEngine(SETTINGS, store)
    a = container(1)
    b = ContainerRef(id="b" * 64, name="b", image="other/image:2", labels={"riskguard.baseline": "web"})
    assert engine.baseline_key(a) == engine.baseline_key(container(2)) == IMAGE
    assert engine.baseline_key(b) == "group:web"


def test_peer_outlier_when_mode_mix_differs(store: Store) -> None:
    settings = SETTINGS.model_copy(
        update={
            "modes": SETTINGS.modes.model_copy(
                update={"k": 2, "peer_min_windows": 5, "peer_windows": 10, "peer_tvd": 0.4}
            )
        }
    )
    engine = BehaviorEngine(settings, store)
    rng = random.Random(1)
    c1, c2, c3 = container(1), container(2), container(3)

    def quiet(w: BehaviorWindow) -> BehaviorWindow:
        from dataclasses import replace

        return replace(w, syscalls={k: max(1, v // 8) for k, v in w.syscalls.items()}, bytes_out=100, bytes_in=20)

    train = []
    for i in range(40):
        w = normal_window(rng, 1000 + 2 * i, c1)
        train.append(w if i % 2 else quiet(w))
    feed(engine, train)
    assert engine.db.get(IMAGE).state == "scoring"  # type: ignore[union-attr]
    findings: list[Finding] = []
    for i in range(10):
        t = 2000 + 2 * i
        ws = [normal_window(rng, t, c1) if i % 2 else quiet(normal_window(rng, t, c1)),
              normal_window(rng, t, c2) if i % 2 else quiet(normal_window(rng, t, c2)),
              quiet(normal_window(rng, t, c3))]  # fmt: skip
        for s in engine.process(ws, now=t + 2):
            findings += s.findings
    peers = [f for f in findings if f.detector_id == DETECTOR_PEER]
    assert [f.container for f in peers] == [c3]
    assert peers[0].evidence["tvd"] > 0.4
    # A removed container leaves no per-container state behind.
    engine.forget_container(c3.id)
    assert all(c3.id not in b.peers.modes for b in engine.baselines.values())


def test_malformed_windows_are_counted_not_raised(store: Store) -> None:
    engine = BehaviorEngine(SETTINGS, store)
    w = BehaviorWindow(ts=1, container=container(1), start=0, end=1, syscalls={"x": "y"})  # type: ignore[dict-item]
    no_container = BehaviorWindow(ts=1, start=0, end=1)
    assert engine.process([w, no_container], now=2) == []
    assert engine.counters["malformed"] == 1 and engine.counters["no_container"] == 1


# --- the component ---------------------------------------------------------------------------
def test_component_on_real_buses(make_ctx: Callable[..., AgentContext]) -> None:
    cfg = AgentConfig(behavior=SETTINGS.model_copy(update={"batch_seconds": 0.05}))
    ctx = make_ctx(cfg)
    comp = build(ctx)
    assert isinstance(comp, BehaviorComponent)
    reported: list[Finding] = []
    ctx.findings.subscribe(reported.append)
    attach(ctx, comp)
    try:
        rng = random.Random(1)
        c = container(1)
        for i in range(60):
            ctx.events.process(normal_window(rng, 1000 + 2 * i, c))
        assert comp.drain(60)
        # The window timestamps are in the past: learning_seconds counts from the first window.
        listing = ctx.control_methods["baseline"]({"action": "list"})
        (b,) = listing["baselines"]
        assert b["image"] == IMAGE and b["state"] == "scoring" and b["training_windows"] >= 30
        ctx.events.process(with_reverse_shell(with_cpu_burner(normal_window(rng, 5000, c))))
        assert comp.drain(30)
        ctx.findings.drain(5)
        reported.extend(ctx.findings.queue._q.queue)  # the findings bus has no dispatcher here
        sources = {f.source for f in reported}
        assert sources == {Source.BEHAVIOR, Source.SYSCALL_CHAIN}
        assert ctx.control_methods["baseline"]({"action": "freeze", "image": IMAGE}) == {"image": IMAGE, "frozen": True}
        with pytest.raises(ValueError, match="no baseline"):
            ctx.control_methods["baseline"]({"action": "freeze", "image": "nope"})
        with pytest.raises(ValueError, match="unknown action"):
            ctx.control_methods["baseline"]({"action": "explode", "image": IMAGE})
        st = comp.status()
        assert st["counters"]["scored"] >= 1 and st["baselines"] == 1 and st["dropped"] == 0
    finally:
        comp.stop()
    assert build(make_ctx(AgentConfig(behavior=BehaviorSettings(enabled=False)))) is None


def test_daemon_imports_no_ml_library_until_it_fits() -> None:
    code = (
        "import sys, agent.behavior.component, agent.behavior.cli, agent.behavior.engine; "
        "print(sorted(m for m in ('sklearn', 'pyod', 'numba', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


def test_fit_in_a_child_process_keeps_ml_libraries_out_and_scores_the_same(tmp_path: Path) -> None:
    code = f"""
import random, sys
sys.path.insert(0, {str(REPO / "tests" / "unit" / "behavior")!r})
from behavior_synth import container, normal_window
from agent.behavior.engine import BehaviorEngine
from agent.settings.behavior import BehaviorSettings
from agent.store import Store
s = BehaviorSettings(window_seconds=2.0, learning_seconds=60.0, min_windows=30, refit_seconds=0)
e = BehaviorEngine(s, Store(__import__("pathlib").Path({str(tmp_path / "a.db")!r})))
rng = random.Random(1)
for i in range(40):
    w = normal_window(rng, 1000 + 2 * i, container(1))
    e.process([w], now=w.end)
assert e.counters["fits"] == 1, e.counters
print(sorted(m for m in ("sklearn", "pyod", "numba") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
    # The child's model equals an in-process fit of the same rows.
    store = Store(tmp_path / "a.db")
    engine = BehaviorEngine(SETTINGS, store)
    rows = engine.db.training(IMAGE, 1000)
    child = engine.baseline(IMAGE, 0).model
    assert child is not None
    from agent.behavior.model import DeviationModel

    local = DeviationModel.fit(rows[: child.windows], SETTINGS)  # the rows it was fitted on
    assert child.threshold == pytest.approx(local.threshold)
    assert list(child.scores_only(rows)) == pytest.approx(list(local.scores_only(rows)), abs=1e-6)
    store.close()


def test_failed_fit_is_logged_and_retried_later(store: Store) -> None:
    settings = SETTINGS.model_copy(update={"fit_in_subprocess": True, "fit_timeout_seconds": 0.001})
    engine = BehaviorEngine(settings, store)
    rng = random.Random(1)
    feed(engine, [normal_window(rng, 1000 + 2 * i, container(1)) for i in range(40)])
    assert engine.counters["fit_failures"] == 1  # one try, then wait FIT_RETRY_SECONDS
    assert engine.db.get(IMAGE).state == "learning"  # type: ignore[union-attr]


def test_riskguardctl_baseline_over_the_control_socket(
    make_ctx: Callable[..., AgentContext], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse
    import json

    from agent.behavior import ctl
    from agent.control import ControlServer

    ctx = make_ctx(AgentConfig(behavior=SETTINGS))
    comp = build(ctx)
    assert comp is not None
    comp.start(ctx)
    server = ControlServer(tmp_path / "run" / "agent.sock", ctx.control_methods)
    server.start()
    try:
        rng = random.Random(1)
        comp.process_batch([normal_window(rng, 1000 + 2 * i, container(1)) for i in range(40)])
        parser = argparse.ArgumentParser()
        parser.add_argument("--socket", type=Path, default=server.path)
        ctl.register(parser.add_subparsers())
        args = parser.parse_args(["baseline", "list", "--json"])
        capsys.readouterr()  # the component's log lines
        assert args.func(args) == 0
        (b,) = json.loads(capsys.readouterr().out)["baselines"]
        assert b["image"] == IMAGE and b["state"] == "scoring"
        args = parser.parse_args(["baseline", "freeze", IMAGE])
        assert args.func(args) == 0 and "frozen=True" in capsys.readouterr().out
        args = parser.parse_args(["baseline", "list"])
        assert args.func(args) == 0 and "scoring (frozen)" in capsys.readouterr().out
        args = parser.parse_args(["baseline", "relearn"])
        assert args.func(args) == 2
    finally:
        server.stop()
        comp.stop()
