# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import pytest

from agent.logs import cli


def run(*argv: str) -> int:
    p = argparse.ArgumentParser()
    cli.register(p.add_subparsers())
    args = p.parse_args(list(argv))
    return int(args.func(args))


def test_parse_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "a.log"
    f.write_bytes(
        b'10.0.0.1 - - [27/Nov/2026:01:00:00 +0000] "GET /x HTTP/1.1" 200 5 "-" "c"\n'
        b"worker 7 done in 3 ms\nworker 8 done in 4 ms\n\xff\x1b[1mbold\n"
    )
    assert run("logs", "parse", str(f)) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [set(r) >= {"line", "template_id", "template", "fields"} for r in rows] == [True] * 4
    assert rows[0]["fields"]["status"] == 200
    assert rows[1]["template_id"] == rows[2]["template_id"]
    assert rows[1]["template"] == "worker <NUM> done in <NUM> ms"
    assert rows[3]["line"] == "\ufffdbold"
    assert run("logs", "parse", str(tmp_path / "missing.log")) == 2


def sessions(rnd: random.Random, n: int, attack: bool = False) -> list[str]:
    out = []
    for s in range(n):
        ip = f"10.0.{s // 250}.{s % 250}"
        reqs = (
            ["/login"] + [rnd.choice(["/items", "/items/3", "/cart"]) for _ in range(rnd.randrange(1, 4))] + ["/logout"]
        )
        if attack:
            reqs = ["/login"] * 3 + ["/admin/../../etc/passwd", "/wp-admin.php"]
        for path in reqs:
            status = 401 if attack and path == "/login" else (404 if attack else 200)
            out.append(f'{ip} - - [27/Nov/2026:01:00:00 +0000] "GET {path} HTTP/1.1" {status} 5 "-" "c"')
    return out


def test_fit_then_score(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rnd = random.Random(5)
    normal = tmp_path / "normal.log"
    normal.write_text("\n".join(sessions(rnd, 200)) + "\n")
    model = tmp_path / "m.json"
    key = r"^(\S+) "
    assert run("logs", "fit", str(normal), "--session-key", key, "--model", str(model)) == 0
    test = tmp_path / "test.log"
    test.write_text(
        "\n".join(sessions(rnd, 20) + [x.replace("10.0.", "10.9.") for x in sessions(rnd, 1, attack=True)]) + "\n"
    )
    capsys.readouterr()
    assert run("logs", "score", str(test), "--session-key", key, "--model", str(model)) == 0
    rows = {r["session"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["10.9.0.0"]["anomalous"] and rows["10.9.0.0"]["patterns"]
    normal_flagged = [k for k, r in rows.items() if r["anomalous"] and k != "10.9.0.0"]
    assert normal_flagged == []
    assert {"session", "score", "anomalous", "patterns"} <= set(rows["10.9.0.0"])
    assert run("logs", "score", str(test), "--session-key", "(", "--model", str(model)) == 2
    (tmp_path / "bad.json").write_text("{}")
    assert run("logs", "score", str(test), "--session-key", key, "--model", str(tmp_path / "bad.json")) == 2


def test_parse_holds_templates_not_rows(tmp_path: Path) -> None:
    """Issue 16: `logs parse` kept every row in memory; rows now go through a spool file."""
    import contextlib
    import tracemalloc

    def peak(lines: int) -> int:
        f = tmp_path / f"{lines}.log"
        with f.open("w") as fh:
            for i in range(lines):
                ts = f"2026-12-02 10:00:{i % 60:02d}"
                fh.write(f"{ts} INFO worker {i} moved block blk_{i * 7919} to 10.0.{i % 250}.7\n")
        with (tmp_path / "out.jsonl").open("w") as out, contextlib.redirect_stdout(out):
            tracemalloc.start()
            try:
                assert run("logs", "parse", str(f)) == 0
                return tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

    small, large = peak(2_000), peak(40_000)
    # Twenty times the rows: the peak grows by the output buffer and caches, not by the rows
    # (keeping them cost about 1 KiB each, 38 MiB more here).
    assert large - small < 8 * 2**20, (small, large)


def test_encode_fields_writes_what_the_json_encoder_writes() -> None:
    """The rows' direct field encoding is byte-for-byte the encoder's, for every value type a
    parser or the header can put in ``fields`` (others go to the encoder itself)."""
    encode = json.JSONEncoder(ensure_ascii=False).encode
    rnd = random.Random(11)
    values: list[object] = [
        "",
        "plain",
        'quote " and \\ back',
        "tab\tnew\nline",
        "\x00\x1f\x7f",
        "ünï 🐍 \u2028",
        "\udcff",
        0,
        -7,
        2**70,
        True,
        False,
        None,
        1.5,
        float("nan"),
        float("inf"),
        [1, "a"],
        {"k": {"n": 1}},
    ]
    keys: list[object] = ["timestamp", "level", "", 'k"ey', "ü", 3]
    for _ in range(3000):
        fields = {rnd.choice(keys): rnd.choice(values) for _ in range(rnd.randrange(0, 6))}
        assert cli.encode_fields(fields, encode) == encode(fields), fields
    assert cli.encode_fields({}, encode) == "{}"
