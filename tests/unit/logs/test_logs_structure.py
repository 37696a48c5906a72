# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import json

from agent.logs.structure import MAX_FIELDS, MAX_KEY, MAX_VALUE, SanitizeStats, Structurer, sanitize


def test_sanitize_counts_and_cleans() -> None:
    st = SanitizeStats()
    assert sanitize(b"\x1b[31mred\x1b[0m text\x1b]0;title\x07!", 100, st) == "red text!"
    assert sanitize(b"bad \xff\xfe bytes", 100, st) == "bad \ufffd\ufffd bytes"
    assert sanitize("nul\x00 and bell\x07 and\ttab\r\n", 100, st) == "nul and bell and\ttab"
    assert sanitize(b"x" * 1000, 10, st) == "x" * 10
    assert st.snapshot() == {
        "invalid_utf8": 1,
        "ansi_stripped": 1,
        "control_stripped": 1,
        "truncated": 1,
        "json_too_deep": 0,
    }


def test_json_injected_keys_stay_data_and_capped() -> None:
    s = Structurer()
    obj = {f"k{i}": i for i in range(200)}
    obj["event"] = "forged_event"
    obj["level"] = "critical"
    obj["\x1b[31m" + "K" * 500] = "v" * 5000
    obj["nested"] = {"a": [1, 2, {"b": "c" * 5000}]}
    e = s.structure(json.dumps(obj))
    assert e.pattern == "JSON"
    assert len(e.fields) <= MAX_FIELDS + 8  # plus canonical aliases
    for k, v in e.fields.items():
        assert len(k) <= MAX_KEY and all(c.isalnum() or c in "_.@-" for c in k)
        if isinstance(v, str):
            assert len(v) <= MAX_VALUE


def test_parsers_and_aliases() -> None:
    s = Structurer()
    e = s.structure('10.0.0.5 - - [27/Nov/2026:01:00:00 +0000] "GET /a?b=1 HTTP/1.1" 404 0 "-" "x"')
    assert e.pattern == "COMBINEDAPACHELOG"
    assert e.fields["client_ip"] == "10.0.0.5" and e.fields["status"] == 404
    assert e.fields["method"] == "GET" and e.fields["url_path"] == "/a"
    e = s.structure('ts=2026 level=warn msg="disk \\"full\\"" used=97')
    assert e.pattern == "LOGFMT" and e.fields["message"] == 'disk "full"'
    e = s.structure("Failed password for root from 10.9.9.9 port 22 ssh2")
    assert e.fields["auth_outcome"] == "failure" and e.fields["client_ip"] == "10.9.9.9"
    e = s.structure("just some free text 123")
    assert e.pattern == "" and e.template_id > 0


def test_busybox_response_line_carries_request_path() -> None:
    s = Structurer()
    s.structure("[::ffff:127.0.0.1]:5000: url:/admin/../../etc/passwd", key="img")
    e = s.structure("[::ffff:127.0.0.1]:5000: response:200", key="img")
    assert e.fields["status"] == 200 and e.fields["path"] == "/admin/../../etc/passwd"


def test_hostile_lines_cost_little_in_every_parser() -> None:
    import time

    s = Structurer()
    hostile = [c * 16384 for c in 'a1 .:[/-"\\'] + [
        "a." * 8192,
        "1.1.1.1 " * 2000,
        "a b=" * 4000,
        "Failed password for " * 800,
        "Jan 1 " * 2700,
        "::" * 8192,
    ]
    for line in hostile:
        t0 = time.perf_counter()
        s.structure(line)
        assert time.perf_counter() - t0 < 0.25, f"slow on {line[:12]!r}…"


def test_image_patterns_pin_parsers_per_image() -> None:
    s = Structurer(image_patterns={"registry/auth*": ["AUTHLINE"]})
    line = '{"msg": "Failed password for root from 10.0.0.1 port 22 ssh2"}'
    assert s.structure(line, key="registry/auth:1.2").pattern == "AUTHLINE"
    assert s.structure(line, key="other:1").pattern == "JSON"
    assert s.structure('{"a": 1}', key="registry/auth:1.2").pattern == ""
