# SPDX-License-Identifier: Apache-2.0
"""The shortcuts of the structuring path give the answers of the long way round.

Line-shape caches (parse outcome, auth outcome, header split), the clean-line fast path of
``sanitize`` and ``Split.add_fields`` are checked against the slow path they replace.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest

from agent.logs.header import split_header
from agent.logs.split import Split
from agent.logs.structure import MAX_VALUE, Structurer, auth_outcome, sanitize
from agent.textsafe import no_surrogates

LINES = [
    "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 euid=0 rhost=10.0.0.1",
    "Jun 14 15:16:02 combo sshd(pam_unix)[19940]: authentication failure; logname= uid=0 euid=0 rhost=10.0.0.2",
    "2026-11-05T08:08:15.762Z ERROR [worker-2] app.6.Service: session opened for user git by (uid=7517)",
    "2026-11-05T08:08:16.001Z INFO [main] app.1.Service: session opened for user bob by (uid=1)",
    '10.1.2.3 - - [05/Nov/2026:08:08:15 +0000] "GET /login HTTP/1.1" 401 12 "-" "curl/8.0"',
    '10.1.2.4 - - [05/Nov/2026:08:08:16 +0000] "GET /login HTTP/1.1" 200 12 "-" "curl/8.0"',
    '{"level":"info","msg":"Failed password for root from 10.0.0.9 port 22","ts":1}',
    "level=info request_id=abc method=GET path=/api?q=1 status=200 duration_ms=3",
    "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865 terminating",
    "Failed password for invalid user admin from 10.9.9.9 port 50522 ssh2",
    "plain text without any header at all",
]


def test_structure_answers_the_same_from_its_caches() -> None:
    """A second pass over the same lines (every shape cached) gives the first pass's fields."""
    st = Structurer()
    first = [st.structure(line) for line in LINES * 2]
    again = [st.structure(line) for line in LINES]
    for a, b in zip(first, again, strict=False):
        assert (a.line, a.pattern, a.fields) == (b.line, b.pattern, b.fields)
        assert st.templates.resolve(a.template_id) == st.templates.resolve(b.template_id)
    fresh = Structurer()
    for line, b in zip(LINES, again, strict=True):
        c = fresh.structure(line)
        assert (c.pattern, c.fields) == (b.pattern, b.fields)
    outcomes = [s.fields.get("auth_outcome") for s in again]
    assert outcomes[0] == outcomes[1] == outcomes[6] == outcomes[9] == "failure"
    assert outcomes[2] == outcomes[3] == "success"
    assert outcomes[10] is None


def test_auth_outcome_depends_on_letters_only() -> None:
    """The per-shape memo is sound: digits never change the outcome of an authentication line."""
    for line in LINES:
        assert auth_outcome(line) == auth_outcome(re.sub(r"[1-9]", "0", line))


def _sanitize_slow(text: str, max_len: int) -> str:
    text = no_surrogates(text).rstrip("\r\n")
    text = re.sub(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])", "", text)
    return re.sub(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]", "", text)[:max_len]


def test_sanitize_fast_path_matches_the_slow_path() -> None:
    samples = [
        "clean line 123",
        "tab\tinside",
        "esc \x1b[31mred\x1b[0m",
        "nbsp\u00a0and zero\u200bwidth",
        "lone \udcff surrogate",
        "c1 \x85 control",
        "crlf\r\n",
        "x" * 50,
        "",
    ]
    for s in samples:
        assert sanitize(s, 20) == _sanitize_slow(s, 20), s


def test_add_fields_equals_fields_then_setdefault() -> None:
    lines = [*LINES, "Nov  5 08:08:15 host kernel: eth0 up", "2024-02-02 11:11:11,123 WARN [pool-1 thread-2] a.B: x"]
    for line in lines:
        split = split_header(line)
        for preset in ({}, {"timestamp": "parser"}, {"level": 1, "thread": "t"}):
            want = dict(preset)
            for name, value in split.fields(line).items():
                want.setdefault(name, value[:MAX_VALUE])
            got = dict(preset)
            split.add_fields(line, got, MAX_VALUE)
            assert got == want, line
    long = "2024-02-02 " + "1" * 40 + " INFO [" + "t" * 30 + "] msg"
    split = Split(0, (("timestamp", 0, 10), ("timestamp", 11, 51), ("thread", 58, 88)))
    got: dict[str, object] = {}
    split.add_fields(long, got, 16)
    assert got == {"timestamp": "2024-02-02 11111", "thread": "t" * 16}


DEV = Path(__file__).resolve().parents[3].parent / "shared" / "datasets" / "loghub-dev"


def _loghub_lines() -> list[str]:
    """The eight loghub-dev systems' raw lines, interleaved (every header format at once)."""
    if not DEV.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"loghub-dev data set missing at {DEV}")
        pytest.skip(f"the loghub-dev data set is not beside the checkout ({DEV})")
    files = sorted(DEV.glob("*/*_2k.log"))
    assert len(files) == 8, files
    per = [f.read_bytes().decode("utf-8", "replace").split("\n")[:2000] for f in files]
    return [line for group in zip(*per, strict=True) for line in group]


def test_joined_spans_give_the_joined_fields() -> None:
    """``Split.joined`` (slices of the line) fills what joining the spans one by one fills, on
    every loghub-dev header format, with and without a parser's fields present."""
    joined = 0
    for line in _loghub_lines():
        split = split_header(line)
        joined += split.joined is not None and len(split.joined) < len(split.spans)
        plain = Split(split.start, split.spans)
        for preset in ({}, {"timestamp": "parser"}):
            want: dict[str, object] = dict(preset)
            plain.add_fields(line, want, MAX_VALUE)
            got: dict[str, object] = dict(preset)
            split.add_fields(line, got, MAX_VALUE)
            assert got == want, line
            assert list(got) == list(want), line  # the same key order too (rows are written in it)
    assert joined > 1000  # multi-token timestamps (HDFS, BGL, Thunderbird ...) took the slices


def test_repeated_shapes_take_the_quick_path_with_the_same_answer() -> None:
    """The second line of a shape no parser matched is answered from the memo (parse outcome,
    auth outcome, the miner's shape cache) with what the full path gives: a second pass over
    loghub-dev (digits changed, shapes kept) equals a fresh structurer's answer line by line."""
    lines = _loghub_lines()
    warm = Structurer()
    for line in lines:
        warm.structure(line)
    rnd = random.Random(5)
    again = [re.sub(r"\d", lambda _m: str(rnd.randrange(10)), line) for line in lines]
    hits = warm.templates.hits
    second = [warm.structure(line) for line in again]
    assert warm.templates.hits - hits > 0.9 * len(lines)
    cold = Structurer()
    for line in lines:
        cold.structure(line)
    cold._unparsed.clear()  # the same state without the memo: each shape's next line goes the long way
    for line, got in zip(again, second, strict=True):
        want = cold.structure(line)
        assert (got.line, got.pattern, got.fields) == (want.line, want.pattern, want.fields), line
        assert got.template == want.template, line
    assert len(cold._unparsed) > 1000  # the shapes that went the long way (and were memoised again)
