# SPDX-License-Identifier: Apache-2.0
"""Header detection on raw log lines: split a line into its header (timestamp, level, pid, host,
thread, component) and its free-text message, with no per-system format string.

The rules look at the first ``SCAN_TOKENS`` whitespace tokens, each classified once by
``classify`` (timestamp part, number, dash, level word, program tag, other). In order:

1. **Level rule.** A level word (INFO, WARN, ERROR, ... any case, optionally ``[..]`` or ``:``)
   preceded by at least one timestamp token ends the header, followed by what commonly sits
   between a level and the message: a bracketed thread (``[main]``, nested brackets and spaces
   allowed), a qualified component ending in ``:`` (``org.x.Y:``, ``dfs.DataNode$Responder:``), a
   column padded by two or more spaces (``Info      CBS    Loaded ...``), and a lone ``-``/``:``.
2. **Program-tag rule** (syslog). A tag ``name[pid]:`` / ``name(sub)[pid]:`` / ``name:`` ends the
   header when it follows a timestamp with at most one other token (the host) in between, and no
   level word comes before it.
3. **Timestamp-extent rule.** Else the header runs through the last timestamp token among the
   first ``EXTENT_TOKENS`` tokens (columns before a leading timestamp are header), plus the
   numbers, dashes and ``|`` right after it.

The rules depend only on character classes and on letters, never on digit values, so two lines
that are equal after mapping every digit to ``0`` split at the same offset (the miner's line-shape
cache relies on this).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SCAN_TOKENS = 14
EXTENT_TOKENS = 7

LEVELS = frozenset(
    {
        "trace",
        "debug",
        "info",
        "information",
        "notice",
        "warn",
        "warning",
        "error",
        "err",
        "crit",
        "critical",
        "alert",
        "fatal",
        "emerg",
        "severe",
        "fine",
        "finer",
        "finest",
        "verbose",
    }
)
_MONTHS = (
    "jan|january|feb|february|mar|march|apr|april|may|jun|june|jul|july|aug|august|sep|sept|september"
    "|oct|october|nov|november|dec|december"
)
_DAYS = "mon|monday|tue|tuesday|wed|wednesday|thu|thursday|fri|friday|sat|saturday|sun|sunday"
# One combined expression for every timestamp part we recognise (a whole token).
_TS = re.compile(
    r"""\[?(?:
      \d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?:[T\-_ ]\d{1,2}[:.]\d{2}(?:[:.]\d{2})?(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?
    | \d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}(?:[:T]\d{1,2}:\d{2}(?::\d{2})?)?
    | \d{1,2}/(?:"""
    + _MONTHS
    + r""")/\d{4}(?::\d{2}:\d{2}:\d{2})?
    | T?\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?
    | [+-]\d{4}
    | \d{6,14}(?:[.,]\d+)?
    | (?:"""
    + _MONTHS
    + "|"
    + _DAYS
    + r""")\.?
    | utc|gmt|z
    )[\],]?""",
    re.VERBOSE | re.IGNORECASE,
)
_NUM = re.compile(r"\[?[-+]?\d{1,5}\]?:?")
_TAG = re.compile(r"[\w./@~+-]+(?:\([\w./@~+ -]*\))?(?:\[\d+\])?:")
_TAG_PID = re.compile(r"\[(\d+)\]:$")
_QUALIFIED = re.compile(r"[A-Za-z_][\w$@./\[\]-]*[.$@/][\w$@./\[\]-]*:")
_WS = re.compile(r"\S+")

_STRONG = frozenset({"thread", "component"})
# Token kinds.
TS, NUM, DASH, LEVEL, TAG, OTHER = "T", "N", "-", "L", "G", "W"


_ZERO = bytes.maketrans(b"123456789", b"000000000")
_KINDS: dict[bytes, str] = {}


def classify(token: str) -> str:
    """The kind of one header token (cached by the token's digit shape: kinds ignore digit values)."""
    key = token.encode("utf-8", "surrogatepass").translate(_ZERO)
    kind = _KINDS.get(key)
    if kind is None:
        kind = _classify(token)
        if len(_KINDS) >= 50_000:
            _KINDS.clear()
        _KINDS[key] = kind
    return kind


def _classify(token: str) -> str:
    """The kind of one header token: timestamp part, number, dash, level, program tag or other."""
    low = token.strip("[]:").lower()
    if low in LEVELS:
        return LEVEL
    if token in ("-", "|", "--"):
        return DASH
    if _NUM.fullmatch(token):
        return NUM
    if _TS.fullmatch(token):
        return TS
    if token.endswith(":") and _TAG.fullmatch(token):
        return TAG
    return OTHER


@dataclass(frozen=True, slots=True)
class Split:
    """Where the message starts, and the header's fields as character spans of the line."""

    start: int
    spans: tuple[tuple[str, int, int], ...] = ()

    def add_fields(self, line: str, out: dict[str, object], cap: int) -> None:
        """Add the header fields of ``line`` to ``out`` (as ``fields``, capped at ``cap`` chars),
        except names ``out`` already holds: a parser's fields keep priority."""
        if not self.spans:
            return
        held = out.keys() & {name for name, _, _ in self.spans} if out else ()
        for name, a, b in self.spans:
            if name in held:
                continue
            old = out.get(name)
            out[name] = line[a:b] if old is None else f"{old} {line[a:b]}"
        if len(line) > cap:  # a joined value is never longer than the line
            for name, _, _ in self.spans:
                value = out[name]
                if name not in held and isinstance(value, str) and len(value) > cap:
                    out[name] = value[:cap]

    def fields(self, line: str) -> dict[str, str]:
        """The header fields of ``line`` (timestamp parts joined by a space)."""
        out: dict[str, str] = {}
        for name, a, b in self.spans:
            value = line[a:b]
            out[name] = f"{out[name]} {value}" if name in out else value
        return out


def _bracket_end(line: str, at: int) -> int:
    """End offset of the balanced ``[...]`` starting at ``at``, or -1 (bounded to 256 chars)."""
    depth = 0
    for i in range(at, min(len(line), at + 256)):
        c = line[i]
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth == 0:
                return i + 1
    return -1


def _skip_ws(line: str, i: int) -> int:
    n = len(line)
    while i < n and line[i] in " \t":
        i += 1
    return i


def _after_level(line: str, pos: int, spans: list[tuple[str, int, int]]) -> int:
    """Consume thread, component, padded column and separator after a level; the message start."""
    i = _skip_ws(line, pos)
    if i < len(line) and line[i] == "[":
        end = _bracket_end(line, i)
        if end > 0:
            spans.append(("thread", i + 1, end - 1))
            i = _skip_ws(line, end)
    m = _WS.match(line, i)
    if m is not None:
        tok = m.group(0)
        if _QUALIFIED.fullmatch(tok):
            spans.append(("component", m.start(), m.end() - 1))
            i = _skip_ws(line, m.end())
        elif line.startswith("  ", m.end()) and tok.isalpha():
            spans.append(("component", m.start(), m.end()))
            i = _skip_ws(line, m.end())
    if line.startswith(("- ", ": "), i):
        i = _skip_ws(line, i + 2)
    return i


def split_header(line: str) -> Split:
    """The header/message split of one raw line (``Split(0)`` when no header is recognised)."""
    toks = _first_tokens(line)
    # Fast path: timestamp tokens, then a level followed by a thread or component (most
    # application logs) decide the split without classifying the rest of the line.
    kinds: list[str] = []
    for m in toks:
        kinds.append(classify(m.group(0)))
        if kinds[-1] == LEVEL:
            break
    if kinds and kinds[-1] == LEVEL and TS in kinds:
        level = _level_rule(line, toks[: len(kinds)], kinds)
        if level is not None and level.start < len(line) and any(n in _STRONG for n, _, _ in level.spans):
            return level
    kinds += [classify(m.group(0)) for m in toks[len(kinds) :]]
    level = _level_rule(line, toks, kinds)
    if level is not None and level.start < len(line) and any(n in _STRONG for n, _, _ in level.spans):
        return level  # a level followed by a thread or component: the header's end is certain
    best: Split | None = None
    for got in (level, _tag_rule(line, toks, kinds), _extent_rule(line, toks, kinds)):
        if got is not None and got.start < len(line) and (best is None or got.start > best.start):
            best = got
    return best if best is not None else Split(0)


def _level_rule(line: str, toks: list[re.Match[str]], kinds: list[str]) -> Split | None:
    spans: list[tuple[str, int, int]] = []
    seen_ts = False
    for j, kind in enumerate(kinds):
        if kind == TS:
            seen_ts = True
        elif kind == LEVEL and seen_ts:
            _header_spans(toks[:j], kinds[:j], spans)
            m = toks[j]
            spans.append(("level", m.start(), m.end()))
            return Split(_after_level(line, m.end(), spans), tuple(spans))
    return None


def _tag_rule(line: str, toks: list[re.Match[str]], kinds: list[str]) -> Split | None:
    spans: list[tuple[str, int, int]] = []
    last_ts = -1
    for j, kind in enumerate(kinds):
        if kind == TS:
            last_ts = j
        elif kind == LEVEL:
            return None  # after a level, a word ending in ":" is message text
        elif kind == TAG and last_ts >= 0 and sum(k in (OTHER, TAG) for k in kinds[last_ts + 1 : j]) <= 1:
            m = toks[j]
            pid = _TAG_PID.search(m.group(0))
            _header_spans(toks[:j], kinds[:j], spans, pid=pid is None)
            if pid is not None:
                spans.append(("component", m.start(), m.start() + pid.start()))
                spans.append(("pid", m.start() + pid.start(1), m.start() + pid.end(1)))
            else:
                spans.append(("component", m.start(), m.end() - 1))
            return Split(_skip_ws(line, m.end()), tuple(spans))
    return None


def _extent_rule(line: str, toks: list[re.Match[str]], kinds: list[str]) -> Split | None:
    last = -1
    for j, kind in enumerate(kinds[:EXTENT_TOKENS]):
        if kind == TS:
            last = j
    if last < 0:
        return None
    end = last + 1
    while end < len(kinds) and kinds[end] in (NUM, DASH):
        end += 1
    if end >= len(toks):
        return None  # nothing but header-like tokens: keep the whole line as the message
    spans: list[tuple[str, int, int]] = []
    _header_spans(toks[:end], kinds[:end], spans)
    return Split(toks[end].start(), tuple(spans))


def _first_tokens(line: str) -> list[re.Match[str]]:
    out: list[re.Match[str]] = []
    for m in _WS.finditer(line):
        out.append(m)
        if len(out) >= SCAN_TOKENS:
            break
    return out


def _header_spans(
    toks: list[re.Match[str]], kinds: list[str], spans: list[tuple[str, int, int]], pid: bool = True
) -> None:
    """Name the header tokens before the level/tag: timestamp parts, a pid-like number, a host."""
    for j, (m, kind) in enumerate(zip(toks, kinds, strict=True)):
        if kind == TS or (kind == NUM and 0 < j < len(kinds) - 1 and kinds[j - 1] == kinds[j + 1] == TS):
            spans.append(("timestamp", m.start(), m.end()))  # a number between two parts: a day
        elif kind == NUM and pid and not any(n == "pid" for n, _, _ in spans):
            spans.append(("pid", m.start(), m.end()))
        elif kind == OTHER and not any(n == "host" for n, _, _ in spans):
            spans.append(("host", m.start(), m.end()))
