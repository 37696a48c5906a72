# SPDX-License-Identifier: Apache-2.0
"""The live sequence part: transition windows learned per image, fitted with the feature model
(also in the child process), scored per window, and every behaviour finding explained by its
surprising transitions and by the nearest normal mode with the features that differ."""

from __future__ import annotations

import random
from dataclasses import replace

from behavior_synth import IMAGE, container, normal_window

from agent.behavior import baseline_ops
from agent.behavior.engine import DETECTOR_SEQUENCE, BehaviorEngine
from agent.behavior.seqlive import decode_transitions, encode_transitions
from agent.events import BehaviorWindow
from agent.findings import Severity, Source
from agent.settings.behavior import BehaviorSettings
from agent.store import Store
from agent.syscall_table import syscall_number

SETTINGS = BehaviorSettings(
    window_seconds=2.0, learning_seconds=60.0, min_windows=30, refit_seconds=0, fit_in_subprocess=False
)


def nr(name: str) -> int:
    return syscall_number(name)


def with_discovery_and_connect(w: BehaviorWindow) -> BehaviorWindow:
    """A shell listing /proc and connecting out, inside the window of an ordinary container."""
    trans = dict(w.transitions)
    for pair, count in {
        ("openat", "getdents64"): 40,
        ("getdents64", "getdents64"): 40,
        ("getdents64", "close"): 40,
        ("socket", "connect"): 1,
        ("connect", "poll"): 1,
        ("poll", "read"): 6,
        ("dup2", "execve"): 1,
    }.items():
        trans[(nr(pair[0]), nr(pair[1]))] = count
    return replace(w, transitions=trans)


def learned(store: Store, settings: BehaviorSettings = SETTINGS) -> BehaviorEngine:
    engine = BehaviorEngine(settings, store)
    rng = random.Random(1)
    for i in range(60):  # three containers of the image take turns while it learns
        w = normal_window(rng, 1000 + 2 * i, container(1 + i % 3))
        engine.process([w], now=w.end)
    return engine


def test_transitions_round_trip_through_the_store_encoding() -> None:
    t = {(1, 2): 5, (3, 4): 1, (5, 6): 0, (0xFFFF, 273): 2}  # 0xffff: a thread's first call
    assert decode_transitions(encode_transitions(t)) == {(1, 2): 5, (3, 4): 1, (0xFFFF, 273): 2}
    assert decode_transitions(b"") == {} and decode_transitions(b"\x00" * 13) == {}  # malformed: nothing


def test_an_unusual_sequence_window_is_a_finding_explained_both_ways(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = learned(Store(tmp_path / "a.db"))
    b = engine.baselines[IMAGE]
    assert b.model is not None and b.seq is not None, "the sequence model is fitted with the baseline"
    assert b.seq.meta["windows"] >= 30  # fitted after the 60 s learning period
    described = baseline_ops.describe(engine)[0]
    assert described["sequence"]["target_fpr"] == 0.01
    assert {m["kind"] for m in engine.db.model_versions(IMAGE)} == {"deviation", "chain", "sequence"}

    rng = random.Random(9)
    fresh = container(7)  # a container the baseline never saw
    benign = [normal_window(rng, 3000 + 2 * i, fresh) for i in range(30)]
    out = [s for w in benign for s in engine.process([w], now=w.end)]
    assert all(s.sequence is not None for s in out)
    assert not [f for s in out for f in s.findings if f.severity >= Severity.MEDIUM]

    attacked = with_discovery_and_connect(normal_window(rng, 3100, container(8)))
    (s,) = engine.process([attacked], now=attacked.end)
    assert s.sequence is not None and s.sequence.anomalous and s.sequence.unseen >= 3
    (f,) = [f for f in s.findings if f.detector_id == DETECTOR_SEQUENCE]
    assert f.source == Source.BEHAVIOR and f.severity == Severity.MEDIUM
    seq, window = f.evidence["sequence"], f.evidence["window"]
    chains = {t["chain"] for t in seq["surprising_transitions"]}
    assert {"openat->getdents64", "getdents64->getdents64"} & chains, chains
    assert all(not t["seen"] for t in seq["surprising_transitions"][:2])
    assert window["mode"] >= 0 and window["distance"] > 0
    assert window["differing_features"], window  # tr_distinct, sc_stat ... farther than the mode's
    assert "getdents64" in f.summary and "mode" in f.summary
    assert not s.learned  # an unusual window never extends the training set


def test_the_child_process_fits_and_returns_both_models(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = learned(Store(tmp_path / "b.db"), SETTINGS.model_copy(update={"fit_in_subprocess": True}))
    b = engine.baselines[IMAGE]
    assert b.model is not None and b.seq is not None
    # reloaded from the store (as after a restart): the same sequence threshold
    again = BehaviorEngine(SETTINGS, engine.db.store)
    w = normal_window(random.Random(3), 5000, container(1))
    (s,) = again.process([w], now=w.end)
    assert again.baselines[IMAGE].seq is not None
    assert again.baselines[IMAGE].seq.threshold == b.seq.threshold  # type: ignore[union-attr]
    assert s.sequence is not None


def test_sequence_part_can_be_switched_off(tmp_path) -> None:  # type: ignore[no-untyped-def]
    off = SETTINGS.model_copy(update={"sequence": SETTINGS.sequence.model_copy(update={"enabled": False})})
    engine = learned(Store(tmp_path / "c.db"), off)
    assert engine.baselines[IMAGE].model is not None and engine.baselines[IMAGE].seq is None
    assert {m["kind"] for m in engine.db.model_versions(IMAGE)} == {"deviation", "chain"}


def test_a_window_the_kernel_counts_missed_is_a_gap_not_a_deviation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = learned(Store(tmp_path / "d.db"))
    w = normal_window(random.Random(5), 4000, container(9))
    empty = replace(w, syscalls={}, transitions={})  # /proc and exec events arrived, no syscall window
    (s,) = engine.process([empty], now=empty.end)
    assert s.result is None and not s.findings and not s.learned
    assert engine.counters["syscall_gap"] == 1
