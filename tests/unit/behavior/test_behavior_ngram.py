# SPDX-License-Identifier: Apache-2.0
"""The syscall n-gram model and the ``riskguard-agent syscalls fit|score`` commands."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from behavior_synth import attack_trace, normal_trace

from agent.behavior.ngram import NgramError, NgramModel, _frame_rate, parse_trace
from agent.cli import main
from agent.syscall_table import X86_64, syscall_name, syscall_number


def test_x86_64_numbering() -> None:
    assert syscall_name(59) == "execve"
    assert syscall_name(43) == "accept"
    assert syscall_name(101) == "ptrace"
    assert syscall_name(308) == "setns"
    assert syscall_number("dup2") == 33
    assert syscall_name(9999) == "sys_9999"
    assert len(X86_64) > 330


def test_frame_rate_is_the_worst_locality_frame() -> None:
    assert _frame_rate([], 4) == 0.0
    assert _frame_rate([False] * 10, 4) == 0.0
    assert _frame_rate([False] * 10 + [True, True] + [False] * 10, 4) == 0.5
    assert _frame_rate([True, False], 20) == 0.5  # short traces use their own length


def test_fit_threshold_is_leave_one_out_quantile() -> None:
    rng = random.Random(1)
    traces = [normal_trace(rng) for _ in range(12)]
    m = NgramModel(n=3).fit_sequences(traces)
    assert m.traces == 12 and m.total == sum(len(t) - 2 for t in traces)
    # A trace made only of never-seen 3-grams has LOO score 1 and moves the threshold.
    odd = NgramModel(n=3, quantile=1.0).fit_sequences([*traces, [500, 501, 502, 503]])
    assert odd.threshold == 1.0
    assert m.threshold < 0.5


def test_scores_separate_attack_from_normal_traces() -> None:
    rng = random.Random(2)
    m = NgramModel(n=3).fit_sequences([normal_trace(rng) for _ in range(10)])
    normal = [m.score_sequence(normal_trace(rng)) for _ in range(10)]
    attack = [m.score_sequence(attack_trace(rng)) for _ in range(3)]
    assert max(normal) <= m.threshold < min(attack)
    assert all(m.is_anomalous(s) for s in attack) and not any(m.is_anomalous(s) for s in normal)


def test_kernel_transitions_and_chain_hits() -> None:
    m = NgramModel()  # bigrams
    nr = syscall_number
    m.add_transitions({(nr("clone"), nr("execve")): 40, (nr("read"), nr("write")): 1000})
    window = {
        (nr("clone"), nr("execve")): 2,  # learned: fine
        (nr("read"), nr("close")): 5,  # unseen but not sensitive: counted, no hit
        (nr("dup2"), nr("execve")): 1,  # reverse-shell shape
        (nr("openat"), nr("setns")): 1,
        (nr("wait4"), nr("ptrace")): 3,
    }
    hits = m.chain_hits(window)
    assert [h.chain for h in hits] == ["dup2->execve", "wait4->ptrace", "openat->setns"]
    assert hits[0].reverse_shell_shape and hits[0].mitre == "T1059"
    assert hits[2].mitre == "T1611"
    assert m.unseen_transitions(window) == 10
    # Rare (not only unseen) sensitive chains when asked for.
    assert [h.chain for h in m.chain_hits({(nr("clone"), nr("execve")): 1}, rare_fraction=0.05)] == ["clone->execve"]
    with pytest.raises(NgramError):
        NgramModel(n=3).add_transitions({(1, 2): 1})


def test_runtime_entry_is_not_a_chain_but_an_escalation_is() -> None:
    """runc init entering the container (docker exec, HEALTHCHECK) drops identity and capabilities
    with setgid->setuid and prctl->capset: never a hit, even unseen; the same targets reached from
    the image's own code (after a read or an mmap) still are."""
    m = NgramModel()
    nr = syscall_number
    m.add_transitions({(nr("read"), nr("write")): 1000})
    runtime = {
        (nr("setgid"), nr("setuid")): 1,
        (nr("prctl"), nr("capset")): 2,
        (nr("setgroups"), nr("setresuid")): 1,
        (nr("rt_sigreturn"), nr("setuid")): 1,
    }
    assert m.chain_hits(runtime) == []
    escalation = {(nr("read"), nr("setuid")): 1, (nr("mmap"), nr("capset")): 1}
    assert sorted(h.chain for h in m.chain_hits(escalation)) == ["mmap->capset", "read->setuid"]


def test_json_round_trip_and_bad_models() -> None:
    rng = random.Random(3)
    m = NgramModel(n=4, frame=10).fit_sequences([normal_trace(rng) for _ in range(5)])
    again = NgramModel.from_json(m.to_json())
    assert again.counts == m.counts and again.threshold == m.threshold and again.n == 4 and again.frame == 10
    t = attack_trace(rng)
    assert again.score_sequence(t) == m.score_sequence(t)
    for bad in ("{", "[]", '{"kind": "other"}', m.to_json().replace('"n":4', '"n":3')):
        with pytest.raises(NgramError):
            NgramModel.from_json(bad)
    with pytest.raises(NgramError):
        NgramModel(n=1)
    with pytest.raises(NgramError):
        NgramModel(arch="sparc")


def test_parse_trace_errors_name_the_token() -> None:
    assert parse_trace(" 0 1\n2\t59 \n") == [0, 1, 2, 59]
    with pytest.raises(NgramError, match="token 2 'x'"):
        parse_trace("0 x 1")
    with pytest.raises(NgramError, match="out of the syscall number range"):
        parse_trace("0 -1")


# --- the CLI --------------------------------------------------------------------------------
def _write(folder: Path, name: str, seq: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(" ".join(map(str, seq)) + "\n")


def test_cli_fit_and_score(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(4)
    for i in range(10):
        _write(tmp_path / "train", f"n{i}.txt", normal_trace(rng))
    for i in range(4):
        _write(tmp_path / "test" / "normal", f"n{i}.txt", normal_trace(rng))
    for i in range(2):
        _write(tmp_path / "test" / "attack", f"a{i}.txt", attack_trace(rng))
    (tmp_path / "test" / "broken.txt").write_text("1 2 three\n")
    (tmp_path / "test" / "binary.bin").write_bytes(b"\xff\xfe\x00")
    model = tmp_path / "out" / "model.json"

    fit = ["syscalls", "fit", "--traces", str(tmp_path / "train"), "--model", str(model), "--kind", "ngram"]
    assert main(fit) == 0
    assert json.loads(model.read_text())["kind"] == "syscall-ngram"
    capsys.readouterr()
    assert main(["syscalls", "score", "--traces", str(tmp_path / "test"), "--model", str(model)]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert all(set(r) == {"file", "score", "anomalous"} for r in rows)
    by_file = {r["file"]: r for r in rows}
    assert sorted(by_file) == [f"attack/a{i}.txt" for i in range(2)] + [f"normal/n{i}.txt" for i in range(4)]
    assert all(by_file[f"attack/a{i}.txt"]["anomalous"] for i in range(2))
    assert not any(by_file[f"normal/n{i}.txt"]["anomalous"] for i in range(4))
    assert min(by_file[f"attack/a{i}.txt"]["score"] for i in range(2)) > max(
        by_file[f"normal/n{i}.txt"]["score"] for i in range(4)
    )
    assert "broken.txt: skipped" in err and "binary.bin: skipped" in err and "2 trace(s) skipped" in err


def test_cli_errors_are_messages_not_tracebacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["syscalls", "fit", "--traces", str(tmp_path / "nope"), "--model", str(tmp_path / "m")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["syscalls", "fit", "--traces", str(tmp_path / "empty"), "--model", str(tmp_path / "m")]) == 2
    (tmp_path / "m.json").write_text("garbage")
    assert main(["syscalls", "score", "--traces", str(tmp_path / "empty"), "--model", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err
    assert "not a folder" in err and "no usable trace" in err and "unreadable syscall n-gram model" in err
    assert "Traceback" not in err
