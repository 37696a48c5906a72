# SPDX-License-Identifier: Apache-2.0
"""Untrusted text at the edges: sanitising what comes in, escaping what goes to a terminal.

Inbound (sources that read text a container controls): ``clean_text`` replaces lone surrogates
with U+FFFD and removes ANSI escape sequences and control characters, so nothing downstream (the
store, JSON outputs, structlog) can fail on a string a container wrote; ``loads_json`` decodes
JSON with a nesting limit (``MAX_JSON_DEPTH``) checked before the decoder recurses, and cleans
every key and string value of the result.

Outbound (human-readable output only; JSON output stays exact): ``escape_terminal`` renders
every control character, bidi override and surrogate as a visible escape (``\\x1b``, ``\\n``,
``\\u202e``), so a value can never move the cursor, recolour, reorder or forge a line on the
operator's terminal. ``TerminalSafeWriter`` applies it to a whole stream, keeping the program's
own newlines and tabs.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import re
import sys
from collections.abc import Iterator
from typing import Any, TextIO

MAX_JSON_DEPTH = 64  # nesting levels of arrays/objects a JSON value from a container may have

# CSI / OSC / other ESC sequences (ECMA-48).
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_CONTROL_IN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # every C0/C1 control but TAB
# What a terminal interprets: C0/C1 controls, DEL, bidi embeddings/overrides/isolates and marks,
# line/paragraph separators, and surrogates (not printable, break UTF-8 encoders).
_TERMINAL_REST = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_TERMINAL_ALL = re.compile(f"[\x00-\x1f{_TERMINAL_REST}]")
_TERMINAL_KEEP_LINES = re.compile(f"[\x00-\x08\x0b-\x1f{_TERMINAL_REST}]")  # TAB and LF stay
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[^\[\]{}]+")
_STEP = str.maketrans({"[": "1", "{": "1", "]": "2", "}": "2"})


class JSONLimitError(ValueError):
    """A JSON text nested deeper than the limit (a ``ValueError``, like any undecodable JSON)."""


def no_surrogates(s: str) -> str:
    """``s`` with every lone surrogate (``\\udfff``, or a ``surrogateescape`` byte) as U+FFFD."""
    return _SURROGATE.sub("\ufffd", s) if _SURROGATE.search(s) else s


def clean_text(s: str) -> str:
    """``s`` without lone surrogates (U+FFFD instead), ANSI escape sequences or control characters
    other than TAB; the string itself when it is already clean."""
    s = no_surrogates(s)
    if "\x1b" in s:
        s = _ANSI.sub("", s)
    if _CONTROL_IN.search(s):
        s = _CONTROL_IN.sub("", s)
    return s


def json_depth(text: str) -> int:
    """The deepest array/object nesting of a JSON text (string contents ignored), in linear time."""
    if text.count("[") + text.count("{") == 0:
        return 0
    skeleton = _BRACKETS.sub("", _STRING.sub("", text)).translate(_STEP)
    return max(itertools.accumulate(1 if c == "1" else -1 for c in skeleton), default=0)


def loads_json(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that refuses nesting deeper than ``max_depth`` (``JSONLimitError``) before
    decoding, and returns keys and strings passed through ``clean_text``; raises ``ValueError``
    for anything that is not JSON."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", "replace")
    if text.count("[") + text.count("{") > max_depth:
        depth = json_depth(text)
        if depth > max_depth:
            raise JSONLimitError(f"JSON nested {depth} levels deep (limit {max_depth})")
    text = no_surrogates(text)
    try:
        value = json.loads(text)  # strict: a raw control character inside a string is refused
    except RecursionError:  # a limit below the decoder's own: cannot happen, kept as a guard
        raise JSONLimitError("JSON nested too deep for the decoder") from None
    # Without a backslash escape or a raw DEL/C1 (strict JSON refuses raw C0), no decoded string
    # can hold a surrogate or a control character: the walk is skipped (3x faster per line).
    return _clean(value) if "\\" in text or _CONTROL_IN.search(text) else value


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _escape(m: re.Match[str]) -> str:
    ch = m.group(0)
    named = _NAMED.get(ch)
    if named:
        return named
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def escape_terminal(value: object, keep_newlines: bool = False) -> str:
    """``str(value)`` on one line with every control character, bidi control and surrogate shown
    as a backslash escape; with ``keep_newlines`` a newline and a tab stay as they are."""
    s = value if isinstance(value, str) else str(value)
    rx = _TERMINAL_KEEP_LINES if keep_newlines else _TERMINAL_ALL
    return rx.sub(_escape, s) if rx.search(s) else s


class TerminalSafeWriter:
    """A text stream wrapper for human-readable output: every write goes through
    ``escape_terminal(keep_newlines=True)``; fields that must stay on one line are escaped by
    their printer (``escape_terminal``) before they reach it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, s: str) -> int:
        self.stream.write(escape_terminal(s, keep_newlines=True))
        return len(s)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


HUMAN_FORMATS = ("table", "markdown")


def machine_output(args: argparse.Namespace) -> bool:
    """True when the command prints a machine format (``--json``, an export, any ``--format``
    but table/markdown: JSON, JSON lines, SARIF, CycloneDX, YAML), kept exact; False for
    human-readable output."""
    if getattr(args, "json", False) or getattr(args, "export", None) or getattr(args, "action", None) == "export":
        return True  # --json, netpolicy --export, baseline export
    fmt = getattr(args, "format", None)
    if hasattr(args, "export"):
        fmt = None  # a --format that only shapes an export (netpolicy): no export, human output
    return fmt is not None and fmt not in HUMAN_FORMATS


@contextlib.contextmanager
def guard_terminal(args: argparse.Namespace) -> Iterator[None]:
    """Route human-readable stdout through ``TerminalSafeWriter`` for the block: no value a
    container wrote can send escape sequences, carriage returns or bidi overrides to the
    operator's terminal. Machine output (``--json``, ``--format json``, exports) stays exact."""
    saved = sys.stdout
    if not machine_output(args) and not isinstance(saved, TerminalSafeWriter):
        sys.stdout = TerminalSafeWriter(saved)
    try:
        yield
    finally:
        sys.stdout = saved
