# SPDX-License-Identifier: Apache-2.0
"""The edge helpers for untrusted text: cleaning what comes in, escaping what goes to a terminal."""

from __future__ import annotations

import io
import json
import time

import pytest

from agent.textsafe import (
    MAX_JSON_DEPTH,
    JSONLimitError,
    TerminalSafeWriter,
    clean_text,
    escape_terminal,
    json_depth,
    loads_json,
    no_surrogates,
)


def test_clean_text_replaces_surrogates_and_drops_controls() -> None:
    assert clean_text("a\udfffb") == "a\ufffdb"
    assert clean_text("\x1b[31mred\x1b[0m\x1b]0;title\x07 ok\r\n\x00\x9b\tT") == "red ok\tT"
    plain = "nothing to do: ünïcödé ✓"
    assert clean_text(plain) is plain
    assert no_surrogates("x\udcff") == "x\ufffd"
    # The result always encodes: the store, JSON outputs and structlog cannot fail on it.
    clean_text("\ud800\udfff\udc80").encode("utf-8")


def test_json_depth_ignores_brackets_in_strings() -> None:
    assert json_depth('{"a": "[[[[{{{{", "b": [1, [2]]}') == 3
    assert json_depth('"\\"[[["') == 0
    assert json_depth("[]") == 1


def test_loads_json_refuses_deep_nesting_before_decoding() -> None:
    deep = '{"a":' * 100_000 + "1" + "}" * 100_000
    t0 = time.monotonic()
    with pytest.raises(JSONLimitError, match="100000 levels deep"):
        loads_json(deep)
    assert time.monotonic() - t0 < 1.0
    with pytest.raises(ValueError):  # still a ValueError for callers that catch undecodable JSON
        loads_json("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    ok = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert loads_json(ok) == json.loads(ok)
    # Truncated deep JSON (a capped line) is refused by depth too, not by a RecursionError.
    with pytest.raises(JSONLimitError):
        loads_json(deep[:16384])


def test_loads_json_cleans_keys_and_strings() -> None:
    got = loads_json(b'{"m": "bad \\udfff \\u001b[2Jname", "\\ud800k": ["\\u0007x", 1, null]}')
    assert got == {"m": "bad \ufffd name", "\ufffdk": ["x", 1, None]}
    json.dumps(got, ensure_ascii=False).encode("utf-8")
    assert loads_json('{"raw": "a\x9b1mb\x7f"}') == {"raw": "a1mb"}  # raw C1/DEL: no escape needed
    plain = loads_json('{"msg": "GET /index.html 200", "n": [1, 2]}')
    assert plain == {"msg": "GET /index.html 200", "n": [1, 2]}
    with pytest.raises(ValueError):
        loads_json("{not json")


def test_escape_terminal_renders_every_control_visibly() -> None:
    name = "evil\x1b[2J\x1b]0;pwned\x07\nFAKE LINE\r\u202egnp.exe\udfff\x9b"
    out = escape_terminal(f"file {name} written")
    assert out == "file evil\\x1b[2J\\x1b]0;pwned\\x07\\nFAKE LINE\\r\\u202egnp.exe\\udfff\\x9b written"
    assert out.isprintable()
    assert escape_terminal("a\tb\nc", keep_newlines=True) == "a\tb\nc"
    assert escape_terminal(42) == "42"


def test_terminal_safe_writer_keeps_program_newlines_only() -> None:
    buf = io.StringIO()
    w = TerminalSafeWriter(buf)
    print("row\x1b[31m one", file=w)  # type: ignore[arg-type]
    print("two\u202e", file=w)  # type: ignore[arg-type]
    assert buf.getvalue() == "row\\x1b[31m one\ntwo\\u202e\n"
