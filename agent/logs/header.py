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
cache relies on this). They run on that zeroed line, and their answer is memoised by a group and
the zeroed line up to one past the last character a rule read (its end included when a rule saw
it). The group is the kinds up to the level word when the level rule decides alone (a thread or
component follows it: nothing later matters), else the token indices the three rules pick from
the kinds of the first ``SCAN_TOKENS`` tokens (the split depends on the kinds through them only).
A later line of the same group and prefix makes every rule read and decide the same, so it gets
the same split; the lines of one header format share both whatever their messages say.
"""

from __future__ import annotations

import re
from bisect import bisect_left

from agent.logs.split import Split, joined_spans

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

# Token kinds.
TS, NUM, DASH, LEVEL, TAG, OTHER = "T", "N", "-", "L", "G", "W"

_ZMAP = str.maketrans("123456789", "000000000")
_ZERO = bytes.maketrans(b"123456789", b"000000000")
_KIND_OF: dict[str, str] = {}  # token with its digits as 0 → kind
_RULES: dict[str, tuple[int, int, int]] = {}  # kind sequence → (level, tag, extent) token index
# Splits by (group, bound, the digit-zeroed line up to that bound: one past the last character a
# rule read), and the (token, characters past its start) places such a bound fell at before, by
# group (the kinds up to a deciding level word, else the three rules' token indices).
_MEMO: dict[tuple[str | tuple[int, int, int], int, str], Split] = {}
_PLANS: dict[str | tuple[int, int, int], list[tuple[int, int]]] = {}
MEMO_MAX = 20_000  # entries of about 200 bytes: ~4 MB at most
PLANS_PER_SIG = 6


def classify(token: str) -> str:
    """The kind of one header token (cached by the token's digit shape: kinds ignore digit values)."""
    z = zeroed(token)
    return _KIND_OF.get(z) or _kind(z)


def _kind(ztoken: str) -> str:
    """``_classify`` of a digit-zeroed token, cached (the same kind as any token of that shape)."""
    kind = _classify(ztoken)
    if len(_KIND_OF) >= 50_000:
        _KIND_OF.clear()
    _KIND_OF[ztoken] = kind
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


def _after_level(line: str, pos: int, spans: list[tuple[str, int, int]]) -> tuple[int, int]:
    """Consume thread, component, padded column and separator after a level: the message start,
    and the end of what was read (one past the last character looked at; may pass the line's end)."""
    i = _skip_ws(line, pos)
    read = i + 1
    if i < len(line) and line[i] == "[":
        end = _bracket_end(line, i)
        if end > 0:
            spans.append(("thread", i + 1, end - 1))
            i = _skip_ws(line, end)
            read = i + 1
        else:
            read = min(len(line) + 1, i + 256)  # scanned to the bound, or saw the line end
    m = _WS.match(line, i)
    if m is not None:
        tok = m.group(0)
        read = max(read, m.end() + 1)
        if _QUALIFIED.fullmatch(tok):
            spans.append(("component", m.start(), m.end() - 1))
            i = _skip_ws(line, m.end())
            read = i + 1
        elif tok.isalpha() and line.startswith("  ", m.end()):
            spans.append(("component", m.start(), m.end()))
            i = _skip_ws(line, m.end())
            read = i + 1
        elif tok.isalpha() and line.startswith(" ", m.end()):
            read = m.end() + 2  # looked for a second space after it
    read = max(read, i + 2 if line.startswith(("-", ":"), i) else i + 1)  # a 2nd char after - or :
    if line.startswith(("- ", ": "), i):
        i = _skip_ws(line, i + 2)
        read = i + 1
    return i, read


def zeroed(line: str) -> str:
    """``line`` with every ASCII digit as ``0`` (header rules and masks ignore digit values)."""
    if line.isascii():
        return line.encode("ascii").translate(_ZERO).decode("ascii")  # a quarter of str.translate's time
    return line.translate(_ZMAP)


def split_header(line: str) -> Split:
    """The header/message split of one raw line (``Split(0)`` when no header is recognised)."""
    return split_zeroed(zeroed(line))


def split_zeroed(zl: str) -> Split:
    """``split_header`` of a line given as ``zeroed(line)`` (memoised: see the module's docstring)."""
    # One C-level split instead of a regex match object per token: ``str.split()`` and the
    # ``\S+`` of ``_WS`` cut at the same characters (both use ``str.isspace``).
    words = zl.split(None, SCAN_TOKENS)
    if len(words) > SCAN_TOKENS:
        words.pop()
    get = _KIND_OF.get
    # The kinds up to the first level word first: after a timestamp, they may decide alone (the
    # message's tokens, whose shapes rarely repeat, are then never classified).
    kinds: list[str] = []
    fast = ""
    for w in words:
        kind = get(w) or _kind(w)
        kinds.append(kind)
        if kind == LEVEL:
            if TS in kinds:
                fast = "".join(kinds)  # the kinds through the first level, which follows a timestamp
            break
    starts: list[int] = []
    if fast:
        got = _recall(fast, zl, words, starts)
        if got is not None:
            return got
    if len(kinds) < len(words):
        kinds.extend(get(w) or _kind(w) for w in words[len(kinds) :])
    sig = "".join(kinds)
    rules = _RULES.get(sig)
    if rules is None:
        rules = _level_index(kinds), _tag_rule(kinds), _extent_rule(kinds)
        if len(_RULES) >= 50_000:
            _RULES.clear()
        _RULES[sig] = rules
    got = _recall(rules, zl, words, starts)
    if got is not None:
        return got
    split, read, early = _split(zl, words, starts, kinds, rules)
    if split.spans:
        split = Split(split.start, split.spans, joined_spans(zl, split.spans))
    # The read prefix as (token, characters past its start): the last token starting before it.
    while len(starts) < len(words) and (not starts or starts[-1] < read):
        _starts(zl, words, starts, len(starts) + 1)
    k = bisect_left(starts, read) - 1
    plan = (k, read - starts[k]) if k >= 0 else (-1, read)
    if len(_MEMO) >= MEMO_MAX:
        _MEMO.clear()
        _PLANS.clear()
    group: str | tuple[int, int, int] = fast if early and fast else rules
    _MEMO[group, read, zl[:read]] = split  # the bound too: a prefix cut at the line end is not its line
    plans = _PLANS.setdefault(group, [])
    if plan not in plans:
        plans.insert(0, plan)
        del plans[PLANS_PER_SIG:]
    return split


def _recall(group: str | tuple[int, int, int], zl: str, words: list[str], starts: list[int]) -> Split | None:
    """The memoised split of a line of ``group`` whose read prefix was seen, else None."""
    plans = _PLANS.get(group)
    if plans is None:
        return None
    for n, (k, c) in enumerate(plans):
        if k >= 0:
            if len(starts) <= k:
                if k >= len(words):
                    continue  # the line has fewer tokens: not that prefix
                _starts(zl, words, starts, k + 1)
            c += starts[k]
        got = _MEMO.get((group, c, zl[:c]))
        if got is not None:
            if n:
                plans.insert(0, plans.pop(n))
            return got
    return None


def _split(
    zl: str, words: list[str], starts: list[int], kinds: list[str], rules: tuple[int, int, int]
) -> tuple[Split, int, bool]:
    """The rules on a digit-zeroed line: its split, one past the last character read, and whether
    the level rule decided alone (a level followed by a thread or component)."""
    j, tag, end = rules
    read = 0
    level: tuple[int, int, list[tuple[str, int, int]]] | None = None
    if j >= 0:
        _starts(zl, words, starts, j + 1)
        after: list[tuple[str, int, int]] = []
        pos, read = _after_level(zl, starts[j] + len(words[j]), after)
        level = (pos, j, after)
        if pos < len(zl) and after:
            return _level_split(words, starts, kinds, level), read, True
    # Each rule's message start first; the header spans only for the winner (ties: the first).
    best = -1
    best_start = -1
    if level is not None and level[0] < len(zl):
        best, best_start = 0, level[0]
    if tag >= 0:
        _starts(zl, words, starts, tag + 1)
        tag_start = _skip_ws(zl, starts[tag] + len(words[tag]))
        read = max(read, tag_start + 1)
        if tag_start < len(zl) and tag_start > best_start:
            best, best_start = 1, tag_start
    if end >= 0:
        _starts(zl, words, starts, end + 1)
        read = max(read, starts[end] + 1)
        if starts[end] > best_start:  # a token's start is always inside the line
            best, best_start = 2, starts[end]
    if best == 0:
        assert level is not None
        return _level_split(words, starts, kinds, level), read, False
    if best == 1:
        return _tag_split(words, starts, kinds, tag, best_start), read, False
    if best == 2:
        spans: list[tuple[str, int, int]] = []
        _header_spans(words, starts, kinds, end, spans)
        return Split(best_start, tuple(spans)), read, False
    return Split(0), read, False


def _starts(line: str, words: list[str], starts: list[int], n: int) -> None:
    """Extend ``starts`` to where each of the first ``n`` of ``words`` (the line's first
    whitespace tokens, in order) starts."""
    k = len(starts)
    pos = starts[-1] + len(words[k - 1]) if k else 0
    find = line.find
    for w in words[k:n]:
        pos = find(w, pos)  # only whitespace lies between tokens: the first occurrence is it
        starts.append(pos)
        pos += len(w)


def _level_index(kinds: list[str]) -> int:
    """Index of the first level word that follows a timestamp token, else -1."""
    seen_ts = False
    for j, kind in enumerate(kinds):
        if kind == TS:
            seen_ts = True
        elif kind == LEVEL and seen_ts:
            return j
    return -1


def _level_split(
    words: list[str],
    starts: list[int],
    kinds: list[str],
    level: tuple[int, int, list[tuple[str, int, int]]],
) -> Split:
    pos, j, after = level
    spans: list[tuple[str, int, int]] = []
    _header_spans(words, starts, kinds, j, spans)
    spans.append(("level", starts[j], starts[j] + len(words[j])))
    spans.extend(after)
    return Split(pos, tuple(spans))


def _tag_rule(kinds: list[str]) -> int:
    """Index of the program tag that ends a syslog header, else -1."""
    last_ts = -1
    for j, kind in enumerate(kinds):
        if kind == TS:
            last_ts = j
        elif kind == LEVEL:
            return -1  # after a level, a word ending in ":" is message text
        elif kind == TAG and last_ts >= 0 and sum(k in (OTHER, TAG) for k in kinds[last_ts + 1 : j]) <= 1:
            return j
    return -1


def _tag_split(words: list[str], starts: list[int], kinds: list[str], j: int, start: int) -> Split:
    spans: list[tuple[str, int, int]] = []
    tag = words[j]
    a = starts[j]
    pid = _TAG_PID.search(tag)
    _header_spans(words, starts, kinds, j, spans, pid=pid is None)
    if pid is not None:
        spans.append(("component", a, a + pid.start()))
        spans.append(("pid", a + pid.start(1), a + pid.end(1)))
    else:
        spans.append(("component", a, a + len(tag) - 1))
    return Split(start, tuple(spans))


def _extent_rule(kinds: list[str]) -> int:
    """Index of the first message token after the last leading timestamp token, else -1."""
    last = -1
    for j, kind in enumerate(kinds[:EXTENT_TOKENS]):
        if kind == TS:
            last = j
    if last < 0:
        return -1
    end = last + 1
    while end < len(kinds) and kinds[end] in (NUM, DASH):
        end += 1
    if end >= len(kinds):
        return -1  # nothing but header-like tokens: keep the whole line as the message
    return end


def _header_spans(
    words: list[str],
    starts: list[int],
    kinds: list[str],
    n: int,
    spans: list[tuple[str, int, int]],
    pid: bool = True,
) -> None:
    """Name the first ``n`` tokens (those before the level/tag): timestamp parts, a pid-like
    number, a host."""
    has_pid = has_host = False
    for j in range(n):
        kind = kinds[j]
        a = starts[j]
        if kind == TS or (kind == NUM and 0 < j < n - 1 and kinds[j - 1] == kinds[j + 1] == TS):
            spans.append(("timestamp", a, a + len(words[j])))  # a number between two parts: a day
        elif kind == NUM and pid and not has_pid:
            spans.append(("pid", a, a + len(words[j])))
            has_pid = True
        elif kind == OTHER and not has_host:
            spans.append(("host", a, a + len(words[j])))
            has_host = True
