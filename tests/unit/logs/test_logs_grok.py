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


def test_ipv6_guard_changes_no_match(lib: GrokLibrary) -> None:
    """The look-ahead put in front of the shipped IPV6 text keeps every match and every field."""
    guarded = lib.compile("^(?:%{SYSLOGLINE})", name="guarded")
    assert "(?=[0-9A-Fa-f]{0,4}:)" in guarded.regex.pattern
    plain_lib = GrokLibrary(lib.patterns)
    plain_lib.patterns["IPV6"] = "(?:" + lib.patterns["IPV6"] + ")"  # another text: used unguarded
    plain = plain_lib.compile("^(?:%{SYSLOGLINE})", name="plain")
    assert "(?=[0-9A-Fa-f]{0,4}:)" not in plain.regex.pattern
    hosts = [
        "::1",
        "fe80::1%eth0",
        "2001:db8::8a2e:370:7334",
        "::ffff:10.0.0.1",
        "1:2:3:4:5:6:7:8",
        "abcd::",
        "10.1.2.3",
        "256.1.1.1",
        "web-1",
        "ERROR",
        "cafe",
        "beef:",
        "dead:beef",
        ":::",
        "a:b:c",
        "host.example.org",
    ]
    lines = [f"2026-11-05T08:08:15Z {h} sshd[42]: Accepted password for root" for h in hosts]
    lines += [f"Nov  5 08:08:15 {h} kernel: eth0 up" for h in hosts] + [f"Nov  5 08:08:15 {h}" for h in hosts]
    for line in lines:
        assert guarded.match(line) == plain.match(line), line
    ips = [lib.compile("^%{IP:ip}$", name="ip").match(h) for h in hosts]
    assert [bool(x) for x in ips] == [True] * 6 + [True, False] + [False] * 8
