# SPDX-License-Identifier: Apache-2.0
"""``riskguard-agent syscalls fit|score`` with the combined sequence model: round trip and bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from test_seq_models import attack_of, markov_trace

from agent.cli import main


def _write(folder: Path, name: str, seq: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(" ".join(map(str, seq)) + "\n")


def _rows(out: str) -> dict[str, dict[str, object]]:
    rows = [json.loads(line) for line in out.splitlines()]
    return {str(r["file"]): r for r in rows}


def test_fit_then_score_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(21)
    for i in range(60):
        _write(tmp_path / "train" / f"w{i % 3}", f"n{i}.txt", markov_trace(rng))
    for i in range(6):
        _write(tmp_path / "test" / "normal", f"n{i}.txt", markov_trace(rng))
        _write(tmp_path / "test" / "attack", f"a{i}.txt", attack_of(rng))
    model = tmp_path / "out" / "seq.npz"

    assert main(["syscalls", "fit", "--traces", str(tmp_path / "train"), "--model", str(model)]) == 0
    err = capsys.readouterr().err
    assert "fitted 60 traces (0 skipped, 60 distinct)" in err and "target FPR 0.01" in err
    assert model.read_bytes()[:2] == b"PK" and not model.with_name("seq.npz.tmp").exists()

    assert main(["syscalls", "score", "--traces", str(tmp_path / "test"), "--model", str(model)]) == 0
    out, err = capsys.readouterr()
    by_file = _rows(out)
    assert sorted(by_file) == sorted([f"attack/a{i}.txt" for i in range(6)] + [f"normal/n{i}.txt" for i in range(6)])
    assert all(set(r) == {"file", "score", "anomalous"} for r in by_file.values())
    attacks = [by_file[f"attack/a{i}.txt"] for i in range(6)]
    normals = [by_file[f"normal/n{i}.txt"] for i in range(6)]
    assert all(r["anomalous"] for r in attacks)
    assert sum(bool(r["anomalous"]) for r in normals) <= 1
    assert min(float(r["score"]) for r in attacks) > max(float(r["score"]) for r in normals)  # type: ignore[arg-type]
    assert err == ""

    assert main(["syscalls", "score", "--traces", str(tmp_path / "test"), "--model", str(model), "--details"]) == 0
    detailed = _rows(capsys.readouterr().out)["attack/a0.txt"]
    assert set(detailed) == {"file", "score", "anomalous", "threshold", "views", "surprising"}
    assert set(detailed["views"]) == {"kn", "bag"}  # type: ignore[arg-type]
    # The planted shell (accept, dup2 x3, execve, ..., ptrace) is what the model finds surprising.
    calls = {s["call"] for s in detailed["surprising"]}  # type: ignore[attr-defined]
    assert calls & {"accept", "dup2", "ptrace"}, detailed["surprising"]


def test_single_view_and_few_traces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(5)
    for i in range(3):
        _write(tmp_path / "train", f"n{i}", markov_trace(rng))
    model = tmp_path / "kn.npz"
    argv = ["syscalls", "fit", "--traces", str(tmp_path / "train"), "--model", str(model), "--views", "kn"]
    assert main([*argv, "--order", "6"]) == 0
    assert "3 folds instead of 5" in capsys.readouterr().err
    assert main(["syscalls", "score", "--traces", str(tmp_path / "train"), "--model", str(model)]) == 0
    assert len(_rows(capsys.readouterr().out)) == 3


def test_malformed_traces_are_counted_and_skipped_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(8)
    train = tmp_path / "train"
    for i in range(10):
        _write(train, f"n{i}.txt", markov_trace(rng))
    (train / "words.txt").write_text("59 execve 3\n")
    (train / "huge.txt").write_text("1 2 70000\n")
    (train / "binary.bin").write_bytes(b"\xff\xfe\x00\x01")
    (train / "empty.txt").write_text("\n \n")
    (train / ".hidden").write_text("not a trace")
    model = tmp_path / "m.npz"
    assert main(["syscalls", "fit", "--traces", str(train), "--model", str(model)]) == 0
    err = capsys.readouterr().err
    assert "words.txt: skipped: token 2 'execve' is not a syscall number" in err
    assert "huge.txt: skipped: token 3 70000 is out of the syscall number range" in err
    assert "binary.bin: skipped" in err and "empty.txt: skipped: no syscall numbers (empty trace)" in err
    assert "syscalls fit: 4 trace(s) skipped" in err and "fitted 10 traces (4 skipped" in err
    assert ".hidden" not in err and "Traceback" not in err

    assert main(["syscalls", "score", "--traces", str(train), "--model", str(model)]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 10 and "syscalls score: 4 trace(s) skipped" in err


def test_errors_are_messages_not_tracebacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "t").write_text("1 2 3")
    assert main(["syscalls", "fit", "--traces", str(tmp_path / "nope"), "--model", str(tmp_path / "m")]) == 2
    assert main(["syscalls", "fit", "--traces", str(tmp_path / "one"), "--model", str(tmp_path / "m")]) == 2
    assert main(["syscalls", "fit", "--traces", str(tmp_path / "one"), "--model", "m", "--target-fpr", "2"]) == 2
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04garbage")
    assert main(["syscalls", "score", "--traces", str(tmp_path / "one"), "--model", str(tmp_path / "bad.npz")]) == 2
    assert main(["syscalls", "score", "--traces", str(tmp_path / "one"), "--model", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "is not a folder of traces" in err and "need at least 2, got 1" in err and "target FPR" in err
    assert "unreadable syscall sequence model" in err and "No such file" in err
    assert "Traceback" not in err


def test_the_previous_ngram_kind_still_fits_and_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(3)
    for i in range(10):
        _write(tmp_path / "train", f"n{i}", markov_trace(rng))
    _write(tmp_path / "test", "a", attack_of(rng))
    model = tmp_path / "old.json"
    assert main(["syscalls", "fit", "--traces", str(tmp_path / "train"), "--model", str(model), "--kind", "ngram"]) == 0
    assert json.loads(model.read_text())["kind"] == "syscall-ngram"
    assert main(["syscalls", "score", "--traces", str(tmp_path / "test"), "--model", str(model)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["file"] == "a" and row["anomalous"] is True
