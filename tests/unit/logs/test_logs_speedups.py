# SPDX-License-Identifier: Apache-2.0
"""The per-line shortcuts of the template path answer as the long way round does.

Parser prefilters are necessary conditions of their parsers; the merge-candidate index finds the
template a scan of every template of the length finds; the header rules memoised by kind sequence
split as the rules do; the cached field plans clean fields as the plain loop did.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from agent.logs import header
from agent.logs.header import split_header
from agent.logs.masking import Masker, mask_token
from agent.logs.miner import Cluster, TemplateMiner, collapse
from agent.logs.split import Split
from agent.logs.structure import _PREFILTERS, ALIASES, MAX_FIELDS, MAX_VALUE, Structurer, clean_fields, clean_key

DEV = Path(__file__).resolve().parents[3].parent / "shared" / "datasets" / "loghub-dev"

# One line of each header format the structuring path meets (and near misses of the prefilters).
FORMATS = [
    "2026-11-05T08:08:15.762Z INFO [main] app.cache.Service: cache loaded 12 entries",
    "Nov  5 08:08:15 web-1 sshd[1234]: Failed password for root from 10.0.0.1 port 22 ssh2",
    "nov 15 08:08:15 web-1 cron: job done",
    "Mär 15 08:08:15 host app: x",
    "2026-11-05 08:08:15,762 INFO  [http-nio-8080-exec-3] org.example.CacheManager - evicted 3 keys",
    "2026-11-05 08:08:15,762 - cache.worker - WARNING - lag is 12 messages",
    "I1105 08:08:15.762345    1234 cache.go:123] retry 1/3 for request 0a1b2c3d4e5f6a7b",
    "2026/11/05 08:08:15 worker started",
    "2026/11/05 08:08:15 [error] 12#12: *5 upstream timed out, client: 10.1.2.3, server: x",
    '{"ts": "2026-11-05T08:08:15.762Z", "level": "info", "msg": "cache loaded 12 entries"}',
    'time="2026-11-05T08:08:15.762Z" level=info msg="cache loaded" module=cache',
    "26/11/05 08:08:15 INFO cache.CacheRunner: cache loaded 12 entries",
    "26-11-05 08:08:15 host prog: two-digit year",
    "2026-11-05 08:08:15.762 UTC [4250] ERROR:  upstream 10.2.3.4:80 marked down",
    "1234:M 05 Nov 2026 08:08:15.762 * Background saving started",
    '10.1.2.3 - alice [05/Nov/2026:08:08:15 +0000] "GET /x HTTP/1.1" 200 123 "-" "curl/8.0"',
    '10.1.2.3 - - [05/Nov/2026:08:08:15 +0000] "GET /x HTTP/1.1" 200 123',
    "[10.1.2.3]:51234: url:/cgi-bin/x?a=1",
    "[Sat Nov 05 08:08:15.123456 2026] [core:error] [pid 12] [client 10.1.2.3:5] AH00126: bad",
    "<34>1 2026-11-05T08:08:15.762Z host app 1234 ID47 - message",
    "\uff12\uff10\uff12\uff16-11-05 08:08:15 host prog: full-width digits",
    "Invalid user admin from 10.9.9.9 port 50522",
    "Accepted publickey for git from 10.9.9.9 port 50522 ssh2: RSA SHA256:abc",
    "plain text without any header at all",
    "",
]


def _dev_lines(per_system: int = 400) -> list[str]:
    out: list[str] = []
    if DEV.is_dir():
        for log in sorted(DEV.glob("*/*_2k.log")):
            out += log.read_bytes().decode("utf-8", "replace").split("\n")[:per_system]
    return out


def _generated(n: int, seed: int) -> list[str]:
    """Lines of templates that share words, so templates are created, generalised and merged."""
    rnd = random.Random(seed)
    words = ["cache", "queue", "node", "user", "disk", "lock", "alpha", "beta", "gamma", "delta"]
    shapes = [
        "{w} {w} started on {n} with {w}",
        "{w} failed for {w} after {n} tries",
        "connection to {w} {n} closed by {w}",
        "{w} {w} {w} {n} {n} {w}",
        "ok {w} {n}",
    ]
    lines = []
    for _ in range(n):
        s = rnd.choice(shapes)
        while "{w}" in s or "{n}" in s:
            s = s.replace("{w}", rnd.choice(words), 1).replace("{n}", str(rnd.randrange(10**4)), 1)
        lines.append(f"2026-11-05T08:08:{rnd.randrange(60):02d}Z INFO [main] a.B: {s}")
    return lines


def test_prefilters_are_necessary_conditions() -> None:
    """A line a parser matches always passes that parser's prefilter (else skipping it would
    change the result)."""
    st = Structurer()
    lines = FORMATS + _dev_lines()
    checked = 0
    for name, pre in _PREFILTERS.items():
        for line in lines:
            got = st._parse_unfiltered(name, line)  # the parser without its prefilter
            if got is not None:
                checked += 1
                assert pre(line), (name, line)
    assert checked >= 15  # the samples do exercise the parsers


def test_prefilters_reject_what_cannot_match() -> None:
    pre = _PREFILTERS["SYSLOGLINE"]
    assert not pre("I1105 08:08:15.762345 1234 x.go:1] m")
    assert not pre("2026/11/05 08:08:15 m")
    assert not pre("1234:M 05 Nov 2026 08:08:15.762 * m")
    assert pre("2026-11-05 08:08:15 m") and pre("Nov  5 08:08:15 h p: m")


class _ScanMiner(TemplateMiner):
    """The merge step as first written: a scan of every template of the length, oldest first."""

    def _merge(self, c: Cluster) -> Cluster:
        for other in self._by_len.get(len(c.tokens), ()):
            if self._fold_into(c, other):
                return other
        return c


@pytest.mark.parametrize("seed", [1, 2])
def test_merge_index_finds_what_a_scan_finds(seed: int) -> None:
    lines = _generated(3000, seed) + _dev_lines(300)
    random.Random(seed).shuffle(lines)
    fast, scan = TemplateMiner(), _ScanMiner()
    for line in lines:
        a, _ = fast.add(line)
        b, _ = scan.add(line)
        assert (a.id, a.tokens) == (b.id, b.tokens), line
    assert fast.templates() == scan.templates()
    assert sum(1 for c in fast.clusters.values() if c.alias) > 0  # merges happened


def _cold_split(line: str) -> Split:
    """``split_header`` with every header cache empty: the rules themselves."""
    for cache in (header._RULES, header._KIND_OF, header._MEMO, header._PLANS):
        cache.clear()
    return split_header(line)


# Tails that change what the rules read right after a header: spaces of several kinds, a level,
# a timestamp, a program tag, brackets, separators, a padded column, the line's end.
_TAILS = [" ", "  ", "\t", "\u00a0", "\u2003x", " INFO", " ERROR x", " 12:00:01", " foo:", " 2026-01-01", " [x]",
          "]", "[", " - ", ": ", "  x", " a.b:", " x  y", "\x1c", " 123", " -", "|"]  # fmt: skip


def _near_misses(lines: list[str], seed: int) -> list[str]:
    """Each line, and four copies cut somewhere in their first 80 characters with a tail put in
    (the rest of the line kept or not), shuffled: lines that share a header's prefix and differ
    right where a memo that read too little would go wrong."""
    rnd = random.Random(seed)
    out: list[str] = []
    for line in lines:
        out.append(line)
        for _ in range(4):
            cut = rnd.randrange(0, min(len(line), 80) + 1)
            rest = line[cut:] if rnd.random() < 0.5 else ""
            out.append(line[:cut] + rnd.choice(_TAILS) * rnd.randrange(1, 3) + rest)
    rnd.shuffle(out)
    return out


def test_header_memo_splits_as_the_rules_do() -> None:
    """The memo (by kind sequence and the zeroed prefix the rules read) answers what the rules
    answer on each line alone, cold: on every format, the dev set, and near misses of them."""
    lines = _near_misses(FORMATS + _dev_lines(150) + _generated(150, 3), seed=4)
    cold = [_cold_split(line) for line in lines]
    for cache in (header._MEMO, header._PLANS):
        cache.clear()
    warm = [split_header(line) for line in lines]
    again = [split_header(line) for line in lines]
    assert warm == cold
    assert again == cold
    assert any(s.start for s in cold)
    assert sum(1 for s in cold if s.start) < len(cold)  # and lines with no header among them


def test_header_memo_tells_a_cut_prefix_from_its_line() -> None:
    """Lines equal up to where one ends: what the rules read of a line that ended right after
    its level (they saw its end) must not answer for a longer line whose level is followed by a
    message, even when another line's memo cuts the longer line exactly there."""
    shorter = "2016-09-28 04:30:31, Info  "
    short = "2016-09-28 04:30:31, Info    "
    longer = short + "\u00a0"
    assert _cold_split(longer).start == len(short)  # the level rule: the message is the last char
    assert _cold_split(short).start == _cold_split(shorter).start == short.index("Info")  # no message
    header._MEMO.clear()
    header._PLANS.clear()
    assert split_header(shorter).start == split_header(short).start == short.index("Info")
    assert split_header(longer).start == len(short)


def _clean_fields_loop(raw: Mapping[str, Any]) -> dict[str, Any]:
    """clean_fields as the plain loop it was."""
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if len(out) >= MAX_FIELDS:
            break
        out[clean_key(str(k))] = v[:MAX_VALUE] if isinstance(v, str) else v
    for k in sorted((k for k in out if k in ALIASES), key=list(ALIASES).index):
        if ALIASES[k] not in out:
            out[ALIASES[k]] = out[k]
    if isinstance(out.get("status"), str) and out["status"].isdigit():
        out["status"] = int(out["status"])
    if isinstance(out.get("path"), str) and "url_path" not in out:
        out["url_path"] = out["path"].split("?", 1)[0]
    return out


def test_field_plans_clean_as_the_loop_did() -> None:
    rnd = random.Random(5)
    names = [*ALIASES, "client_ip", "path", "url_path", "a b", "a_b", "a.b", "ä", "x" * 80, "status", "message"]
    for _ in range(500):
        keys = rnd.sample(names, rnd.randrange(1, len(names)))
        if rnd.random() < 0.1:
            keys += [f"k{i}" for i in range(70)]
        raw = {k: rnd.choice(["200", "/p?q=1", "v" * 1100, 7, None]) for k in keys}
        assert list(clean_fields(raw).items()) == list(_clean_fields_loop(raw).items()), keys


def test_header_memo_keeps_the_kinds_after_a_level_that_did_not_decide() -> None:
    """A level with no thread or component after it does not end the header alone: a timestamp
    word opening the message ("Sun") moves the split, so the memo of a line that opened with
    another word of the same first letter must not answer for it."""
    words = "2026-11-05 08:08:15,762 - WARNING - Suns are up"
    day = "2026-11-05 08:08:15,762 - WARNING - Sun rises"
    assert _cold_split(words).start == words.index("Suns")
    assert _cold_split(day).start == day.index("rises")
    header._MEMO.clear()
    header._PLANS.clear()
    assert split_header(words).start == words.index("Suns")
    assert split_header(day).start == day.index("rises")


def test_masker_key_is_the_collapsed_mask() -> None:
    """``Masker.key`` (one pass, cached by digit shape) gives the typed masks of each token,
    adjacent equal variables collapsed, as masking every token afresh does."""
    masker = Masker()
    messages = [line.split(" ", 3)[-1] for line in FORMATS + _dev_lines(150) + _generated(300, 5)]
    messages += ["a 1 2 3 b", "ids 0x1f 0x2e 12 x=1 x=2", "ip 10.0.0.1 10.0.0.2 10.0.0.3", ""]
    for message in messages + messages:  # the second time from the cache
        fresh = tuple(collapse([mask_token(tok) for tok in message.split()]))
        assert masker.key(message) == fresh, message
        assert masker.mask(message) == [mask_token(tok) for tok in message.split()]
    assert masker.key("a 1 2 3 b") == ("a", "<NUM>", "b")
