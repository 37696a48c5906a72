# SPDX-License-Identifier: Apache-2.0
"""Template mining on raw lines: header detection, typed masks, the tree, merging, persistence."""

from __future__ import annotations

import random

import pytest

from agent.logs.header import split_header
from agent.logs.masking import mask_token
from agent.logs.miner import TemplateMiner, allowed_mismatches
from agent.logs.templates import TemplateCache

HEADERS = [
    # (line, expected message, expected fields)
    (
        "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster",
        "Created MRAppMaster",
        {"level": "INFO", "thread": "main", "component": "org.apache.hadoop.mapreduce.v2.app.MRAppMaster"},
    ),
    ("2024-05-01T10:11:12.345Z WARN disk almost full", "disk almost full", {"level": "WARN"}),
    ("2024-05-01T10:11:12+02:00 [error] upstream timed out", "upstream timed out", {"level": "[error]"}),
    (
        "Nov  9 12:01:01 web01 sshd[2915]: Failed password for root from 10.0.0.1 port 22 ssh2",
        "Failed password for root from 10.0.0.1 port 22 ssh2",
        {"component": "sshd", "pid": "2915", "host": "web01", "timestamp": "Nov 9 12:01:01"},
    ),
    # After a level, a word ending in ":" is message text, not a program tag.
    (
        "- 1118709955 2005.06.13 R10-M0-N1 2005-06-13-17.45.55.674418 RAS KERNEL FATAL instruction address: 0x4ed8",
        "instruction address: 0x4ed8",
        {"level": "FATAL"},
    ),
    # Columns before a leading timestamp are header; words before a colon in the message are not a tag.
    (
        "134681 node-246 unix.hw state_change.unavailable 1077804742 1 Component State Change: Component alt0 is up",
        "Component State Change: Component alt0 is up",
        {"host": "node-246"},
    ),
    ("17/06/09 20:10:40 INFO executor.Backend: Registered signal handlers", "Registered signal handlers", {}),
    (
        "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating",
        "PacketResponder 1 terminating",
        {"pid": "148"},
    ),
    (
        "2016-09-28 04:30:30, Info                  CBS    Loaded Servicing Stack",
        "Loaded Servicing Stack",
        {"component": "CBS"},
    ),
    (
        "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:2181:Election@774] - Notification time out: 3200",
        "Notification time out: 3200",
        {},
    ),
    ("1700000000 debug: cache warmed", "cache warmed", {"level": "debug:"}),
    ("Mon Jan 15 2024 10:00:00 service started", "service started", {}),
]


@pytest.mark.parametrize(("line", "message", "fields"), HEADERS)
def test_header_detected_on_common_timestamp_formats(line: str, message: str, fields: dict[str, str]) -> None:
    split = split_header(line)
    assert line[split.start :] == message
    got = split.fields(line)
    assert "timestamp" in got
    for k, v in fields.items():
        assert got[k] == v


def test_lines_without_header_are_left_whole() -> None:
    for line in ("Failed password for root", "GET /index.html 200", "error: cannot open file", ""):
        assert split_header(line).start == 0
    # A line that is nothing but a timestamp keeps its text as the message.
    assert split_header("2024-05-01 10:00:00").start == 0


@pytest.mark.parametrize(
    ("token", "masked"),
    [
        ("10.1.2.3:8080", "<IP>"),
        ("/10.251.73.220:50010", "<IP>"),
        ("fe80::1ff:fe23:4567:890a", "<IP>"),
        ("0xdeadbeef,", "<HEX>,"),
        ("0245b64c", "<HEX>"),
        ("3f2504e0-4f89-11d3-9a0c-0305e82c3301", "<UUID>"),
        ("aa:bb:cc:dd:ee:ff", "<MAC>"),
        ("17", "<NUM>"),
        ("-3.25", "<NUM>"),
        ("250ms", "<DUR>"),
        ("5.4KB", "<DUR>"),
        ("(87%)", "(<DUR>)"),
        ("/var/lib/app/users.db:", "<PATH>:"),
        ("https://example.org/x?y=1", "<PATH>"),
        ("C:\\Windows\\system32\\x.dll", "<PATH>"),
        ("(HWID=1973)", "(HWID=<NUM>)"),
        ("user=alice", "user=<VAL>"),
        ("blk_-6952295868487656571", "<ID>"),
        ("node-246", "<ID>"),
        ("vCores:1>", "vCores:<NUM>>"),
        ("mapResourceRequest:<memory:1024,", "mapResourceRequest:<memory:<NUM>,"),
        ("19:02:14", "<TIME>"),
        ("2005-06-03", "<DATE>"),
        ("terminating", "terminating"),
        ("[main]", "[main]"),
    ],
)
def test_masking_by_type(token: str, masked: str) -> None:
    assert mask_token(token) == masked


def test_similarity_adapts_to_length() -> None:
    assert [allowed_mismatches(n) for n in (1, 3, 4, 5, 9, 13)] == [0, 0, 0, 1, 2, 3]
    m = TemplateMiner()
    a, _ = m.add("Connection opened", header=False)
    b, _ = m.add("Connection closed", header=False)
    assert a.id != b.id  # short messages differing by a word are different events
    c, _ = m.add("job finished for tenant alpha in queue default after retry", header=False)
    d, _ = m.add("job finished for tenant beta in queue default after retry", header=False)
    assert c.id == d.id  # a long one tolerates an unmasked variable
    assert "<*>" in m.resolve(c.id).text()


def test_unmasked_variable_in_second_position_and_typed_values_of_one_key() -> None:
    m = TemplateMiner()
    ids = {
        m.add(f"user {u} uploaded file /x/{i} size {i * 7} bytes", header=False)[0].id
        for i, u in enumerate(["bob", "root", "alice"] * 10)
    }
    assert len(ids) == 1
    a, _ = m.add("request_id=d2252a8cb562aae8 method=GET status=200", header=False)
    b, _ = m.add("request_id=0682339260654815 method=GET status=200", header=False)  # all digits: <NUM>
    assert m.resolve(b.id).id == m.resolve(a.id).id
    assert m.resolve(a.id).text() == "request_id=<*> method=<VAL> status=<NUM>"


def test_templates_differing_only_in_variable_positions_merge() -> None:
    m = TemplateMiner()
    # Routed to different leaves (first token differs: a word, then a variable)...
    a, _ = m.add("alpha 7 sent to host-a ok", header=False)
    b, _ = m.add("<ID> 7 sent to host-a ok", header=False)
    # ...yet equal wherever both are constants: one template, the older id kept.
    assert m.resolve(b.id).id == a.id
    assert m.templates()[a.id] == "<*> <NUM> sent to host-a ok"
    # Constants that differ keep templates apart.
    c, _ = m.add("alpha 7 sent to host-b failed", header=False)
    assert m.resolve(c.id).id != a.id


def test_a_position_stable_over_many_lines_stays_constant() -> None:
    m = TemplateMiner()
    for i in range(30):
        m.add(f"Session {i}_{i * 7} initialized by client UpdateAgent.", header=False)
    other, _ = m.add("Session 5_9 initialized by client SPP.", header=False)
    first = m.match("Session 1_1 initialized by client UpdateAgent.", header=False)
    assert first is not None and first.id != other.id


def test_cache_ids_stable_across_merges_and_persistence() -> None:
    rnd = random.Random(3)
    cache = TemplateCache()
    ids = []
    for _ in range(2000):
        ip = ".".join(str(rnd.randrange(256)) for _ in range(4))
        port, ms = rnd.randrange(1, 65535), rnd.randrange(1000)
        ts = f"2024-01-0{rnd.randrange(1, 9)} 10:00:0{rnd.randrange(10)}"
        t, _ = cache.add_line(f"{ts} INFO net.Conn: connect to {ip}:{port} took {ms} ms")
        ids.append(cache.resolve(t.id))
    assert len(set(ids)) == 1
    assert cache.hits + cache.masked_hits > cache.misses
    blob = cache.dump()
    again = TemplateCache()
    again.load(blob)
    t, split = again.add_line("2024-02-02 11:11:11 INFO net.Conn: connect to 1.2.3.4:5 took 6 ms")
    assert again.resolve(t.id) == ids[0]
    assert split.fields("2024-02-02 11:11:11 INFO net.Conn: x")["component"] == "net.Conn"
    with pytest.raises(ValueError):
        again.load("not a state")


def test_template_limit_bounds_memory() -> None:
    cache = TemplateCache(max_clusters=10)
    for i in range(200):
        cache.add(f"event{chr(65 + i % 26)}{chr(65 + i // 26)} happened")
    assert len(cache.templates()) <= 11


def test_overlong_lines_are_cut() -> None:
    cache = TemplateCache(max_line=100)
    t = cache.add("word " * 10000)
    assert len(t.text) <= 100
