# SPDX-License-Identifier: Apache-2.0
"""Variable masking by type, one whitespace token at a time, with one combined expression.

A token's *core* (without the brackets, quotes and trailing punctuation around it) is matched
once against ``_VAR``, whose named alternatives are the types, in priority order:

``<TIME>`` (``hh:mm:ss``) ``<DATE>`` ``<UUID>`` ``<MAC>`` ``<IP>`` (v4 with optional ``:port``,
v6) ``<HEX>`` (``0x..`` or 8+ hex digits) ``<DUR>`` (a number with a time/size unit or ``%``)
``<NUM>`` ``<PATH>`` (absolute, ``./``, ``~/``, ``C:\\``, or a URL). ``key=value`` masks the
value (whatever its type; a value without a type becomes ``<VAL>``); any other core that contains
a digit is split at ``: , < > ( ) [ ] @`` and its parts masked alike (``vCores:1>`` →
``vCores:<NUM>>``), an undivided one being an ``<ID>`` (``blk_-123``, ``node-7``,
``appattempt_1_2``). Everything else is a constant word.

Each rule depends on character classes, not on digit values: lines equal after mapping digits to
``0`` mask to the same tokens. Results for tokens without digits are cached (words repeat).
"""

from __future__ import annotations

import re

from agent.logs.header import zeroed

VARIABLE_PREFIX = "<"
WILDCARD = "<*>"
TYPES = ("<TIME>", "<DATE>", "<UUID>", "<IP>", "<MAC>", "<HEX>", "<DUR>", "<NUM>", "<PATH>", "<ID>", "<VAL>", WILDCARD)
_TYPESET = frozenset(TYPES)

_VAR = re.compile(
    r"""(?:
      (?P<TIME>\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?)
    | (?P<DATE>\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4})
    | (?P<UUID>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})
    | (?P<MAC>(?:[0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2})
    | (?P<IP>/?(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?|(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{1,4}(?:%\w+)?)
    | (?P<HEX>0[xX][0-9a-fA-F]+|(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]+)
    | (?P<DUR>[-+]?\d+(?:\.\d+)?(?:ns|us|µs|ms|s|sec|secs|seconds|m|min|mins|h|hr|d|b|kb|mb|gb|tb|kib|mib|gib|k|g|%))
    | (?P<NUM>[-+]?\d+(?:[.,]\d+)*)
    | (?P<PATH>(?:/|\./|\.\./|~/|[A-Za-z]:\\|\\\\|[A-Za-z][\w+.-]*://)\S*)
    )""",
    re.VERBOSE | re.IGNORECASE,
)
_LEAD = "([{<'\"`"
_TRAIL = ")]}>'\"`,;:.!?"
_DIGITS = frozenset("0123456789")
_ZERO = bytes.maketrans(b"123456789", b"000000000")
_HEX_MIN = 8


def is_variable(token: str) -> bool:
    """Whether a masked token is a variable: a ``<TYPE>``, possibly inside brackets/punctuation
    (``from=<VAL>,`` is not: its key is a constant)."""
    got = _VARIABLE.get(token)
    if got is None:
        got = VARIABLE_PREFIX in token and (
            token in _TYPESET or token.strip(_LEAD + _TRAIL + "<>") + ">" in _TYPE_NAMES
        )
        if len(_VARIABLE) >= 100_000:
            _VARIABLE.clear()
        _VARIABLE[token] = got
    return got


_VARIABLE: dict[str, bool] = {}  # masked tokens repeat: their answer, by token


_TYPE_NAMES = frozenset(t[1:] for t in TYPES)


def _type_of(core: str) -> str | None:
    m = _VAR.fullmatch(core)
    if m is None:
        return None
    kind = m.lastgroup or ""
    if kind == "HEX" and len(core) < _HEX_MIN and not core.lower().startswith("0x"):
        return None  # short hex-looking words ("ab12"): left to the digit rule
    return f"<{kind}>"


def mask_token(token: str) -> str:
    """The masked form of one whitespace token (punctuation around a variable is kept)."""
    i, j = 0, len(token)
    while i < j and token[i] in _LEAD:
        i += 1
    while j > i and token[j - 1] in _TRAIL:
        j -= 1
    core = token[i:j]
    if not core:
        return token
    typed = _type_of(core)
    if typed is None:
        eq = core.find("=")
        if eq > 0:
            value = core[eq + 1 :]
            vtype = (_type_of(value) or ("<ID>" if _DIGITS.intersection(value) else "<VAL>")) if value else ""
            typed = core[: eq + 1] + vtype
        elif _DIGITS.intersection(core):
            typed = _mask_parts(core)
        else:
            return token
    return token[:i] + typed + token[j:]


_PARTS = re.compile(r"([:,<>()\[\]@]+)")


def _mask_parts(core: str) -> str:
    """A token with digits split at ``: , < > ( ) [ ] @``: each part masked on its own, so
    constant keys stay (``vCores:1>`` → ``vCores:<NUM>>``); an undivided token is an ``<ID>``."""
    parts = _PARTS.split(core)
    if len(parts) == 1:
        return "<ID>"
    out = []
    for k, part in enumerate(parts):
        if k % 2 or not part:
            out.append(part)
        else:
            t = _type_of(part)
            out.append(t if t is not None else ("<ID>" if _DIGITS.intersection(part) else part))
    return "".join(out)


class Masker:
    """``mask(message)`` → masked tokens, ``key(message)`` → the same with runs of variables
    collapsed; each token's answer is cached (bounded) by its digit shape (masks ignore digit
    values)."""

    def __init__(self, max_cache: int = 100_000) -> None:
        self._kinds: dict[str, tuple[str, bool]] = {}  # token's digit shape → (mask, variable?)
        self.max_cache = max_cache

    def key(self, message: str, zmessage: str | None = None) -> tuple[str, ...]:
        """``mask(message)`` with each run of adjacent equal variables kept as one, as a tuple
        (``miner.collapse`` of the mask, in one pass: a token's mask and variable-ness come from
        one cache lookup). ``zmessage``, when the caller has it, is ``zeroed(message)``."""
        kinds = self._kinds
        out: list[str] = []
        prev = ""  # the variable the last kept token is (a run's first), "" after a constant
        raw: list[str] | None = None
        for n, z in enumerate((zeroed(message) if zmessage is None else zmessage).split()):
            got = kinds.get(z)
            if got is None:
                if raw is None:
                    raw = message.split()  # the same cuts: zeroing keeps every space
                got = self._kind(z, raw[n])
            masked, var = got
            if var:
                if masked == prev:  # the run of one variable goes on
                    continue
                prev = masked
            else:
                prev = ""
            out.append(masked)
        return tuple(out)

    def _kind(self, ztok: str, tok: str) -> tuple[str, bool]:
        """``(mask, is a variable)`` of ``tok``, cached under its digit shape ``ztok``."""
        m = mask_token(tok)
        got = (m, is_variable(m))
        if len(self._kinds) >= self.max_cache:
            self._kinds.clear()
        self._kinds[ztok] = got
        return got

    def mask(self, message: str) -> list[str]:
        """The message's whitespace tokens, variables replaced by their type."""
        kinds = self._kinds
        zs = zeroed(message).split()
        return [(kinds.get(z) or self._kind(z, tok))[0] for z, tok in zip(zs, message.split(), strict=True)]
