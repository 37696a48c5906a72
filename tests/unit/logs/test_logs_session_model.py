# SPDX-License-Identifier: Apache-2.0
"""Session anomaly model on generated block-storage sessions: calibrated verdicts, explanations."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from agent.logs import cli
from agent.logs.session_model import SessionModel, SessionParams, unseen_rate
from agent.logs.structure import Structurer

REPO = Path(__file__).resolve().parents[3]


def _data_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("logs_session_data", REPO / "scripts/bench/logs_session_data.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["logs_session_data"] = mod
    spec.loader.exec_module(mod)
    return mod


DATA = _data_module()


def sessions_of(lines: list[str], st: Structurer) -> dict[str, list[str]]:
    rx = re.compile(DATA.SESSION_KEY)
    raw: dict[str, list[int]] = {}
    for line in lines:
        s = st.structure(line)
        m = rx.search(s.line)
        if m:
            raw.setdefault(m.group(1), []).append(s.template_id)
    return {k: [f"T{st.templates.resolve(t)}" for t in v] for k, v in raw.items()}


@pytest.fixture(scope="module")
def fitted() -> tuple[SessionModel, dict[str, list[str]], dict[str, str]]:
    train_lines, _ = DATA.generate(2000, 0, seed=11)
    test_lines, labels = DATA.generate(3000, 200, seed=12)
    st = Structurer()
    train = sessions_of(train_lines, st)
    test = sessions_of(test_lines, st)
    model = SessionModel(SessionParams(target_fpr=0.01)).fit(list(train.values()))
    return model, test, labels


def test_false_positive_rate_on_held_back_normal_matches_target(
    fitted: tuple[SessionModel, dict[str, list[str]], dict[str, str]],
) -> None:
    model, test, labels = fitted
    normal = [k for k in test if labels[k] == "normal"]
    verdicts = model.score_many([test[k] for k in normal])
    fpr = sum(v[1] for v in verdicts) / len(normal)
    assert 0.005 <= fpr <= 0.02, fpr  # target 0.01 within a factor of two
    assert 0 < model.cv_fpr <= 0.02


def test_every_kind_of_injected_anomaly_is_found(
    fitted: tuple[SessionModel, dict[str, list[str]], dict[str, str]],
) -> None:
    model, test, labels = fitted
    for kind in DATA.KINDS:
        keys = [k for k in test if labels[k] == kind]
        found = sum(v[1] for v in model.score_many([test[k] for k in keys]))
        assert found / len(keys) >= 0.8, (kind, found, len(keys))


def test_explanations_name_the_detector_and_the_event(
    fitted: tuple[SessionModel, dict[str, list[str]], dict[str, str]],
) -> None:
    model, test, labels = fitted
    unseen = next(k for k in test if labels[k] == "unseen")
    score, anomalous, why = model.score(test[unseen])
    assert anomalous and score == 1.0
    assert why[0]["kind"] == "detectors" and "new_event" in why[0]["flagged"]
    assert any(w["kind"] == "unseen_event" for w in why)
    # Drop one step of a normal three-replica session: a count invariant breaks.
    normal = next(k for k in test if labels[k] == "normal" and len(test[k]) in (13, 14))
    seq = list(test[normal])
    victim = max(set(seq), key=seq.count)
    seq.remove(victim)
    _, anomalous, why = model.score(seq)
    assert anomalous
    assert any(w["kind"] in ("count_invariant_violated", "missing_event") for w in why)


def test_model_round_trips(fitted: tuple[SessionModel, dict[str, list[str]], dict[str, str]]) -> None:
    model, test, _ = fitted
    again = SessionModel.from_dict(json.loads(json.dumps(model.to_dict())))
    some = list(test.values())[:300]
    assert again.score_many(some) == model.score_many(some)
    with pytest.raises(ValueError):
        SessionModel.from_dict({"kind": "other"})
    with pytest.raises(ValueError):
        SessionModel().fit([])


def run(*argv: str) -> int:
    p = argparse.ArgumentParser()
    cli.register(p.add_subparsers())
    args = p.parse_args(list(argv))
    return int(args.func(args))


def test_cli_fit_score_counts_and_skips_malformed_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train_lines, _ = DATA.generate(300, 0, seed=21)
    test_lines, labels = DATA.generate(100, 12, seed=22)
    train = tmp_path / "train.log"
    garbage = [b"\x00\x01\x02binary\x00record", bytes(range(128, 256))]
    train.write_bytes(
        b"\n".join([*(x.encode() for x in train_lines[:50]), *garbage, *(x.encode() for x in train_lines[50:])]) + b"\n"
    )
    model = tmp_path / "m.json"
    assert (
        run("logs", "fit", str(train), "--session-key", DATA.SESSION_KEY, "--model", str(model), "--target-fpr", "0.01")
        == 0
    )
    err = capsys.readouterr().err
    assert "skipped 2 malformed" in err and "fitted 300 sessions" in err
    test = tmp_path / "test.log"
    test.write_text("\n".join(test_lines) + "\n")
    assert run("logs", "score", str(test), "--session-key", DATA.SESSION_KEY, "--model", str(model)) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(rows) == len(labels)
    assert all({"session", "score", "anomalous", "patterns"} <= set(r) for r in rows)
    flagged = {r["session"] for r in rows if r["anomalous"]}
    anomalous = {k for k, v in labels.items() if v != "normal"}
    assert len(flagged & anomalous) >= 0.7 * len(anomalous)
    assert len(flagged - anomalous) <= 5
    # The parse contract: one object per kept line, malformed ones counted on stderr.
    assert run("logs", "parse", str(train)) == 0
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == len(train_lines)
    assert "skipped 2 malformed" in out.err


def test_new_event_budget_is_the_good_turing_estimate() -> None:
    # "c" and "d" are each held by one session: about that share of new sessions hold a new event.
    sessions = [["a", "b"], ["a", "c"], ["a"], ["a", "b", "d"], ["a", "b"]]
    assert unseen_rate(sessions) == 2 / 5
    assert unseen_rate([["a"], ["a"]]) == 0.0


def test_alike_normal_sessions_do_not_set_thresholds_at_zero() -> None:
    normal = [["open", "read", "close"]] * 6 + [["open", "close"]] * 4
    model = SessionModel().fit(normal)
    assert not any(v[1] for v in model.score_many(normal))  # the training sessions themselves
    assert model.score(["close", "read", "open"])[1]  # wrong order
    assert model.score(["open", "read"])[1]  # stops early
    with pytest.raises(ValueError):
        SessionModel().fit([["open"]])
