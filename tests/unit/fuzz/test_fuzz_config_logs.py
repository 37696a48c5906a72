# SPDX-License-Identifier: Apache-2.0
"""Property-based fuzzing of config loading and log structuring: any YAML is a config or a
``ConfigError`` with dotted-path problems; any log line is structured, never an exception."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from agent.config import ConfigError, parse_config, read_yaml
from agent.logs.structure import Structurer

CHARS = st.one_of(
    st.characters(), st.sampled_from(["\udfff", "\x00", "\x1b", "\t", "\n", ":", "-", "{", "[", "&", "*", "!"])
)
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["2024-31-12", "!!float abc", "9" * 5000, "0x" + "f" * 40, "~", ".inf"]),
)
SECTIONS = ["agent", "state", "response", "vuln", "logs", "sources", "outputs", "network", "behavior", "scan", "x"]
KEYS = st.one_of(
    st.sampled_from([*SECTIONS, "enabled", "mode", "path", "interval_seconds", "level"]), st.text(max_size=8)
)
DOC = st.recursive(SCALAR, lambda ch: st.lists(ch, max_size=3) | st.dictionaries(KEYS, ch, max_size=4), max_leaves=20)
TAGGED = st.sampled_from(
    [
        "vuln:\n  interval_seconds: !!float abc\n",
        "agent: !!python/object:os.system {}\n",
        "a: 2024-31-12\n",
        "response:\n  mode: enforce\nresponse:\n  mode: detect\n",
        "a: " + "[" * 3000 + "]" * 3000 + "\n",
        "a: " + "9" * 5000 + "\n",
        "? [a, b]\n: c\n",
        "a: !!binary ZZZ\n",
        "a: !!timestamp 2024-99-99\n",
    ]
)


def _check(text: str) -> None:
    try:
        config = parse_config(read_yaml(text, "fuzz.yaml"), "fuzz.yaml")
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        return
    assert config is not None


@given(DOC)
def test_any_document_is_a_config_or_config_error(doc: object) -> None:
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except (yaml.YAMLError, UnicodeEncodeError):
        return
    _check(text)


@given(st.one_of(TAGGED, st.text(CHARS, max_size=200), st.tuples(TAGGED, st.text(CHARS, max_size=40)).map("".join)))
def test_any_text_is_a_config_or_config_error(text: str) -> None:
    _check(text)


JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(CHARS, max_size=20))
JSON_VALUE = st.recursive(
    JSON_SCALAR,
    lambda ch: st.lists(ch, max_size=3) | st.dictionaries(st.text(CHARS, max_size=6), ch, max_size=4),
    max_leaves=15,
)
LINES = st.one_of(
    st.binary(max_size=300),
    st.text(CHARS, max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
    JSON_VALUE.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 3000).map(lambda n: ("[" * n + "]" * n).encode()),
    st.integers(1, 3000).map(lambda n: ('{"msg":' * n + '"x"' + "}" * n).encode()),
    st.sampled_from(
        [
            b'{"level":"info","msg":"\\udfff lone surrogate"}',
            b"2024-01-01T00:00:00Z host prog[1]: message \x1b[31m red",
            b'127.0.0.1 - - [01/Jan/2024:00:00:00 +0000] "GET / HTTP/1.1" 200 5',
        ]
    ),
)


@given(st.lists(LINES, min_size=1, max_size=20))
def test_any_log_line_is_structured(lines: list[bytes]) -> None:
    structurer = Structurer()
    for i, raw in enumerate(lines):
        s = structurer.structure(raw, key=f"c{i % 2}")
        json.dumps({"line": s.line, "fields": s.fields, "template": s.template})
        assert isinstance(s.template_id, int)


@pytest.mark.parametrize("text", ["a: &x [*x]\n", "a: &x [*x, 2024-31-12]\n", "a: &x {b: *x, c: !!float z}\n"])
def test_recursive_alias_is_a_config_error_not_a_hang(text: str) -> None:
    """Found by the fuzzer: ``a: &x [*x]`` (12 bytes) makes ``read_yaml`` loop forever, growing
    its stack list without bound, so ``check-config`` and a reload hang. Run in a child with a
    time limit: ``duplicate_keys`` and ``_unconstructible`` now skip nodes they have visited."""
    code = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # the loop also grows memory\n"
        "from agent.config import read_yaml, ConfigError\n"
        f"try:\n    read_yaml({text!r}, 'x')\nexcept ConfigError:\n    pass\n"
    )
    try:
        subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[3], timeout=5, check=True)
    except subprocess.TimeoutExpired:
        pytest.fail("read_yaml did not return within 5 s")
