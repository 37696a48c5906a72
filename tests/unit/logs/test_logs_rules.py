# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

from pathlib import Path

from agent.logs.rules import SequenceEngine, load_rules
from agent.logs.structure import Structurer


def engine() -> SequenceEngine:
    rules, errors = load_rules()
    assert errors == {}
    assert {r.id for r in rules} >= {"RG-LOG-0001", "RG-LOG-0002", "RG-LOG-0003", "RG-LOG-0004"}
    assert all(r.mitre.startswith("T") for r in rules)
    return SequenceEngine(rules)


def feed(eng: SequenceEngine, lines: list[str], t0: float = 1000.0, step: float = 1.0) -> list[str]:
    s = Structurer()
    fired = []
    for i, line in enumerate(lines):
        e = s.structure(line, key="c")
        fired += [m.rule.id for m in eng.feed("c1", t0 + i * step, e.line, e.template, e.fields)]
    return fired


FAIL = "Failed password for root from 10.0.0.7 port 4000 ssh2"
OK = "Accepted password for root from 10.0.0.7 port 4001 ssh2"


def test_brute_force_then_success() -> None:
    assert feed(engine(), [FAIL] * 6 + [OK]) == ["RG-LOG-0001"]


def test_too_few_failures_other_source_or_too_slow_do_not_fire() -> None:
    assert feed(engine(), [FAIL] * 3 + [OK]) == []
    other_ok = OK.replace("10.0.0.7", "10.0.0.8")
    assert feed(engine(), [FAIL] * 6 + [other_ok]) == []
    assert feed(engine(), [FAIL] * 6 + [OK], step=200.0) == []


def access(ip: str, method: str, path: str, status: int) -> str:
    return f'{ip} - - [27/Nov/2026:01:00:00 +0000] "{method} {path} HTTP/1.1" {status} 10 "-" "x"'


def test_traversal_answered_200_same_line_and_split_lines() -> None:
    assert feed(engine(), [access("1.2.3.4", "GET", "/../../etc/passwd", 200)]) == ["RG-LOG-0002"]
    assert feed(engine(), [access("1.2.3.4", "GET", "/../../etc/passwd", 400)]) == []
    assert feed(engine(), [access("1.2.3.4", "GET", "/q?id=1%20UNION%20SELECT%20pw", 200)]) == ["RG-LOG-0002"]
    busybox = ["[::ffff:10.0.0.3]:555: url:/../etc/passwd", "[::ffff:10.0.0.3]:555: response:200"]
    assert feed(engine(), busybox) == ["RG-LOG-0002"]


def test_upload_then_request_of_uploaded_path() -> None:
    lines = [access("5.5.5.5", "PUT", "/uploads/sh.php", 201), access("5.5.5.5", "GET", "/uploads/sh.php?c=id", 200)]
    assert feed(engine(), lines) == ["RG-LOG-0003"]
    lines[1] = access("5.5.5.5", "GET", "/uploads/other.php", 200)
    assert feed(engine(), lines) == []


def test_scanner_404_burst_needs_distinct_paths() -> None:
    scan = [access("9.9.9.9", "GET", f"/wp-{i}.php", 404) for i in range(25)]
    assert feed(engine(), scan) == ["RG-LOG-0004"]
    same = [access("9.9.9.9", "GET", "/favicon.ico", 404) for _ in range(25)]
    assert feed(engine(), same) == []


def test_bad_rule_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "id: X1\ntitle: t\nmitre: T1\nseverity: high\nsteps: [{where: {a: {nope: 1}}}]\n"
        "---\nid: X2\ntitle: t\nmitre: T1\nseverity: bogus\nsteps: [{where: {a: 1}}]\n"
        "---\nid: X3\ntitle: t\nmitre: T1\nseverity: low\nsteps: [{where: {path: {regex: '('}}}]\n"
        "---\nid: X4\ntitle: fine\nmitre: T1\nseverity: low\nsteps: [{where: {a: 1}}]\n"
    )
    (tmp_path / "broken.yaml").write_text("id: [unclosed\n")
    rules, errors = load_rules([tmp_path])
    assert [r.id for r in rules] == ["X4"]
    assert len(errors) == 4
