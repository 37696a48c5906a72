# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import pytest

from agent.logs.grok import GrokError, GrokLibrary


@pytest.fixture(scope="module")
def lib() -> GrokLibrary:
    return GrokLibrary.load()


def test_every_shipped_pattern_compiles(lib: GrokLibrary) -> None:
    assert len(lib.patterns) > 80
    for name in lib.patterns:
        lib.get(name)


@pytest.mark.parametrize(
    ("pattern", "line", "expected"),
    [
        (
            "COMBINEDAPACHELOG",
            '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 '
            '"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"',
            {"clientip": "127.0.0.1", "auth": "frank", "verb": "GET", "request": "/apache_pb.gif", "response": "200"},
        ),
        (
            "NGINXACCESS",
            '10.1.2.3 - - [27/Nov/2026:01:02:03 +0000] "POST /api/v1/items?id=3 HTTP/1.1" 201 17 "-" "curl/8.5.0"',
            {"clientip": "10.1.2.3", "verb": "POST", "request": "/api/v1/items?id=3", "response": "201"},
        ),
        (
            "SYSLOGLINE",
            "Nov 27 01:02:03 web-1 sshd[4242]: Accepted password for alice from 192.0.2.7 port 5022 ssh2",
            {"logsource": "web-1", "program": "sshd", "pid": "4242"},
        ),
        (
            "BUSYBOXHTTPD",
            "[::ffff:172.17.0.1]:40412: response:404",
            {"clientip": "::ffff:172.17.0.1", "clientport": "40412", "response": "404"},
        ),
        (
            "AUTHLINE",
            "Failed password for invalid user admin from 203.0.113.5 port 2222 ssh2",
            {"user": "admin", "clientip": "203.0.113.5"},
        ),
        (
            "NGINXERROR",
            "2026/11/27 01:02:03 [error] 12#12: *5 open() failed",
            {"timestamp": "2026/11/27 01:02:03", "loglevel": "error", "connection_id": "5"},
        ),
    ],
)
def test_library_patterns_extract_fields(lib: GrokLibrary, pattern: str, line: str, expected: dict[str, str]) -> None:
    got = lib.get(pattern).match(line)
    assert got is not None, f"{pattern} did not match"
    for k, v in expected.items():
        assert got[k] == v


def test_types_onig_groups_duplicates_and_ecs_names(lib: GrokLibrary) -> None:
    g = lib.compile(r"%{INT:n:int} %{NUMBER:f:float} (?<word>\w+) %{WORD:word} %{IP:[source][address]}")
    got = g.match("42 3.5 first second 10.0.0.1")
    assert got == {"n": 42, "f": 3.5, "word": "first", "source.address": "10.0.0.1"}


def test_no_match_and_errors(lib: GrokLibrary) -> None:
    assert lib.get("COMBINEDAPACHELOG").match("not an access log") is None
    with pytest.raises(GrokError, match="unknown grok pattern"):
        lib.compile("%{NOPE:x}")
    bad = GrokLibrary({"A": "%{B}", "B": "%{A}"})
    with pytest.raises(GrokError, match="recursive"):
        bad.get("A")
    with pytest.raises(GrokError, match="not a valid regex"):
        GrokLibrary({"X": "(unclosed"}).get("X")
