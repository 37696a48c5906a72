# SPDX-License-Identifier: Apache-2.0
"""Audit decoding on records captured from this kernel (scripts/fixtures/capture_audit.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.decoders.audit import (
    EventAssembler,
    MalformedRecord,
    decode_hex,
    field_value,
    parse_log_line,
    parse_netlink_payload,
    split_netlink,
)
from agent.events import AuditEvent
from agent.hostfs import HostPaths
from agent.runtime.model import ContainerRegistry
from agent.settings.sources import AuditSettings
from agent.sources.auditd import AuditSource

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "audit"
KEY = (FIX / "KEY").read_text().strip()


def netlink_events() -> list[AuditEvent]:
    asm = EventAssembler()
    out: list[AuditEvent] = []
    for line in (FIX / "netlink.jsonl").read_text().splitlines():
        d = json.loads(line)
        for mtype, payload in split_netlink(bytes.fromhex(d["datagram"])):
            assert mtype == d["type"]
            out += asm.add(parse_netlink_payload(mtype, payload), now=0.0)
    assert asm.pending_serials() == [], "every netlink event ends with its EOE"
    return out


def log_events() -> list[AuditEvent]:
    asm = EventAssembler(ordered=True)
    out: list[AuditEvent] = []
    for line in (FIX / "audit.log").read_text().splitlines():
        out += asm.add(parse_log_line(line), now=0.0)
    return out + asm.flush()


def by_exe(events: list[AuditEvent], argv0: str) -> AuditEvent:
    hits = [e for e in events if e.argv and e.argv[0] == argv0]
    assert len(hits) == 1, [e.argv[:1] for e in events]
    return hits[0]


@pytest.fixture(params=["netlink", "file"])
def events(request: pytest.FixtureRequest) -> list[AuditEvent]:
    return netlink_events() if request.param == "netlink" else log_events()


def test_multi_record_assembly(events: list[AuditEvent]) -> None:
    ls = by_exe(events, "/bin/ls")
    assert ls.record_types[0] == "SYSCALL"
    assert {"EXECVE", "CWD", "PATH", "PROCTITLE"} <= set(ls.record_types)
    assert "EOE" not in ls.record_types
    assert ls.syscall == "execve" and ls.success is True and ls.exit == 0
    assert ls.argv == ("/bin/ls", "/")
    assert ls.paths[0] == "/bin/ls"
    assert ls.key == KEY
    assert ls.comm == "ls" and ls.exe.endswith("/ls")
    assert ls.pid > 0 and ls.ppid > 0 and ls.uid == 0
    assert ls.auid == -1  # 4294967295 is "unset"
    assert ls.proctitle == "/bin/ls /"
    # Serials are unique: one event per exec.
    assert len({e.serial for e in events}) == len(events)


def test_hex_encoded_argv_paths_and_cwd(events: list[AuditEvent]) -> None:
    echo = by_exe(events, "/bin/echo")
    assert echo.argv == ("/bin/echo", "hello world", 'quote"d', "tab\there")
    cat = by_exe(events, "/bin/cat")
    assert cat.argv[1].startswith("/tmp/rg fixture ") and cat.argv[1].endswith("/a file")
    pwd = by_exe(events, "/bin/pwd")
    assert pwd.cwd.startswith("/tmp/rg fixture ")


def test_argument_split_over_several_execve_records(events: list[AuditEvent]) -> None:
    true = by_exe(events, "/bin/true")
    assert true.record_types.count("EXECVE") >= 2
    assert true.argv == ("/bin/true", "A" * 9000, "tail")


def test_netlink_and_file_agree() -> None:
    nl = {e.serial: e for e in netlink_events()}
    fl = {e.serial: e for e in log_events()}
    assert set(nl) == set(fl)
    for serial, e in nl.items():
        assert (e.argv, e.paths, e.cwd, e.pid, e.key) == (
            fl[serial].argv,
            fl[serial].paths,
            fl[serial].cwd,
            fl[serial].pid,
            fl[serial].key,
        )


def test_field_values() -> None:
    assert decode_hex("2F746D702F61206200") == "/tmp/a b"
    assert field_value("proctitle", "6C73002D6C") == "ls -l"  # NUL-separated argv
    assert field_value("a0", "ABCD") == "ABCD"  # SYSCALL a0 is a number, not text
    assert field_value("a0", "4142", "EXECVE") == "AB"
    assert field_value("key", "(null)") == ""
    assert field_value("comm", '"ls"') == "ls"


def test_malformed_lines_are_counted_and_skipped() -> None:
    good = (FIX / "audit.log").read_text().splitlines()
    bad = [
        "",
        "garbage",
        "type=SYSCALL msg=audit(1795744201.240",  # a captured line cut in its header
        good[0][:25],
        'type=EXECVE msg=audit(1.0:99999): argc=x a0="ls"',
    ]
    src = AuditSource(
        AuditSettings(mode="file"),
        HostPaths.under("/nonexistent"),
        ContainerRegistry(),
        lambda e: None,
        include_host=True,
    )
    for line in bad:
        src.feed_line(line)
    src.assembler.flush()  # the argc=x event assembles into a counted malformed event
    st = src.status()
    assert st["malformed"] == 4, st


def test_malformed_datagrams() -> None:
    d = bytes.fromhex(json.loads((FIX / "netlink.jsonl").read_text().splitlines()[0])["datagram"])
    with pytest.raises(MalformedRecord):
        split_netlink(d[:10])
    mtype, payload = split_netlink(d)[0]
    with pytest.raises(MalformedRecord):
        parse_netlink_payload(mtype, b"not a record")
    src = AuditSource(AuditSettings(), HostPaths.under("/nonexistent"), ContainerRegistry(), lambda e: None)
    src.feed_netlink(mtype, payload[:8])
    assert src.status()["malformed"] == 1


def test_timeout_completes_an_event_without_eoe() -> None:
    asm = EventAssembler(timeout=1.0)
    lines = [ln for ln in (FIX / "audit.log").read_text().splitlines() if ":34):" in ln]
    for ln in lines:
        assert asm.add(parse_log_line(ln), now=10.0) == []
    assert asm.expire(10.5) == []
    done = asm.expire(11.0)
    assert len(done) == 1 and done[0].argv == ("/bin/ls", "/")
    assert asm.stats.timed_out == 1


def test_file_mode_source_tails_a_log(tmp_path: Path) -> None:
    """The real reader thread tails a file it did not write itself, one line at a time."""
    log_file = tmp_path / "audit.log"
    log_file.write_text("type=DAEMON_START msg=audit(1.0:1): old line before start\n")
    got: list[AuditEvent] = []
    cfg = AgentConfig().audit.model_copy(update={"mode": "file", "log_file": log_file, "event_timeout_seconds": 0.5})
    src = AuditSource(cfg, HostPaths.under(tmp_path), ContainerRegistry(), got.append, include_host=True)
    src.start()
    lines = (FIX / "audit.log").read_text().splitlines()
    half = next(i for i, ln in enumerate(lines) if i > len(lines) // 2 and "type=SYSCALL" in ln)
    try:
        with log_file.open("a") as fh:
            for line in lines[:half]:
                fh.write(line + "\n")
                fh.flush()
        time.sleep(0.5)
        # auditd rotates: audit.log → audit.log.1, a new audit.log
        log_file.rename(tmp_path / "audit.log.1")
        with log_file.open("w") as fh:
            for line in lines[half:]:
                fh.write(line + "\n")
                fh.flush()
        deadline = time.monotonic() + 5
        while len(got) < 17 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        src.stop()
    assert len(got) == len(log_events())
    assert by_exe(got, "/bin/echo").argv[1] == "hello world"
    assert all(e.container is None for e in got)


def test_unavailable_reader_leaves_the_source_inactive(tmp_path: Path) -> None:
    cfg = AuditSettings(mode="file", log_file=tmp_path / "missing.log")
    src = AuditSource(cfg, HostPaths.under(tmp_path), ContainerRegistry(), lambda e: None)
    src.start()  # never raises: the reason is in status()
    st = src.status()
    src.stop()
    assert st["running"] is False and "missing.log" in st["error"]
