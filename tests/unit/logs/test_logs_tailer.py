# SPDX-License-Identifier: Apache-2.0
"""Tailers over captured Docker/CRI log trees: offsets, partial lines, rotation, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

from agent.events import ContainerRef
from agent.hostfs import HostPaths
from agent.runtime.model import Container, ContainerRegistry
from agent.sources.logformats import decode_local_entry, encode_local_entry, parse_rfc3339
from agent.sources.logs import LogTailer, LogTarget
from agent.sources.logset import TailerSet, discover_targets
from agent.store import Store

REF = ContainerRef(id="c" * 64, name="web", image="busybox")


def jline(text: str, stream: str = "stdout", nl: bool = True) -> bytes:
    return (
        json.dumps({"log": text + ("\n" if nl else ""), "stream": stream, "time": "2026-11-27T01:02:03.123456789Z"})
        + "\n"
    ).encode()


def append(p: Path, data: bytes) -> None:
    with p.open("ab") as fh:
        fh.write(data)


def texts(lines: list) -> list[str]:  # type: ignore[type-arg]
    return [r.data.decode() for r in lines]


def tailer(path: Path, store: Store | None, fmt: str = "json-file", **kw: object) -> LogTailer:
    return LogTailer(LogTarget(REF.id, REF, path, fmt), store, **kw)  # type: ignore[arg-type]


def test_rfc3339() -> None:
    assert parse_rfc3339("2026-11-27T01:02:03.123456789Z") == parse_rfc3339("2026-11-27T01:02:03.123456Z")
    assert parse_rfc3339("garbage") == 0.0


def test_json_file_partials_restart_no_loss_no_repeat(tmp_path: Path, store: Store) -> None:
    p = tmp_path / "x-json.log"
    append(p, jline("one") + jline("tw", nl=False))
    t = tailer(p, store)
    assert texts(t.poll()) == ["one"]
    t.close()
    # Restarted with a half-written line pending: its partial records are re-read, not lost.
    append(p, jline("o") + jline("three", stream="stderr"))
    t2 = tailer(p, store)
    got = t2.poll()
    assert texts(got) == ["two", "three"] and got[1].stream == "stderr"
    assert got[0].ts > 1.7e9
    t2.close()
    t3 = tailer(p, store)
    assert t3.poll() == []
    append(p, jline("four"))
    assert texts(t3.poll()) == ["four"]


def test_rotation_truncation_and_replacement(tmp_path: Path, store: Store) -> None:
    p = tmp_path / "x-json.log"
    append(p, jline("a1") + jline("a2"))
    t = tailer(p, store)
    assert texts(t.poll()) == ["a1", "a2"]
    append(p, jline("a3"))  # written just before rotation: read through the old descriptor
    p.rename(tmp_path / "x-json.log.1")
    append(p, jline("b1"))
    assert texts(t.poll()) == ["a3", "b1"]
    # Two rotations between polls: the intermediate file is read too.
    append(p, jline("b2"))
    (tmp_path / "x-json.log.1").rename(tmp_path / "x-json.log.2")
    p.rename(tmp_path / "x-json.log.1")
    append(p, jline("c1"))
    (tmp_path / "x-json.log.2").rename(tmp_path / "x-json.log.3")
    (tmp_path / "x-json.log.1").rename(tmp_path / "x-json.log.2")
    p.rename(tmp_path / "x-json.log.1")
    append(p, jline("d1"))
    assert texts(t.poll()) == ["b2", "c1", "d1"]
    assert t.stats.rotations == 2
    # Truncated in place.
    os.truncate(p, 0)
    append(p, jline("e1"))
    assert texts(t.poll()) == ["e1"] and t.stats.truncations == 1
    # Deleted and replaced by a new file.
    p.unlink()
    assert t.poll() == []
    append(p, jline("f1"))
    assert texts(t.poll()) == ["f1"]
    # Restart after a rotation that happened while down.
    t.close()
    append(p, jline("f2"))
    p.rename(tmp_path / "x-json.log.1")
    append(p, jline("g1"))
    t2 = tailer(p, store)
    assert texts(t2.poll()) == ["f2", "g1"]


def test_bad_records_and_huge_lines(tmp_path: Path, store: Store) -> None:
    p = tmp_path / "x-json.log"
    big = b'{"log":"' + b"A" * (10 << 20) + b'\\n","stream":"stdout","time":"x"}\n'
    append(p, b"not json\n" + b'{"log": 5}\n' + big + jline("after-big"))
    # Docker-split 10 MB logical line: 640 partial records of 16 KiB.
    for _ in range(640):
        append(p, jline("B" * 16384, nl=False))
    append(p, jline("end-of-B") + jline("\x1b[31mred\x1b[0m"))
    t = tailer(p, store, max_line=4096, max_record=1 << 20, chunk=1 << 20)
    got: list = []  # type: ignore[type-arg]
    for _ in range(50):
        got += t.poll(max_lines=100)
    assert texts(got)[0] == "after-big"
    assert got[1].truncated and len(got[1].data) == 4096 and set(got[1].data) == {ord("B")}
    assert texts(got)[2] == "\x1b[31mred\x1b[0m"  # raw here; the structurer strips escapes
    assert len(got) == 3
    assert t.stats.malformed == 2 and t.stats.oversized_records == 1 and t.stats.truncated == 1


def test_local_driver_frames(tmp_path: Path, store: Store) -> None:
    frame = encode_local_entry("stderr", 1_764_205_323_000_000_000, b"hello")
    assert decode_local_entry(frame[4:-4]) == ("stderr", 1_764_205_323_000_000_000, b"hello", False, False)
    p = tmp_path / "container.log"
    append(
        p,
        frame
        + encode_local_entry("stdout", 1, b"par", partial=True)
        + encode_local_entry("stdout", 2, b"tial", partial=True, last=True),
    )
    half = encode_local_entry("stdout", 3, b"next")
    append(p, half[:7])
    t = tailer(p, store, fmt="local")
    got = t.poll()
    assert texts(got) == ["hello", "partial"] and got[0].stream == "stderr"
    append(p, half[7:] + b"\xff\xff\xff\xff garbage")
    got = t.poll()
    assert texts(got) == ["next"] and t.stats.malformed == 1
    assert t.poll() == []


def test_cri_tree_discovery_partials_and_rate_limit(tmp_path: Path) -> None:
    paths = HostPaths.under(tmp_path / "host")
    d = paths.pod_logs / "default_web-1_0f0e-uid" / "nginx"
    d.mkdir(parents=True)
    (d / "0.log").write_bytes(b"2026-11-27T01:02:03.000000001Z stdout F old\n")
    lines = [b"2026-11-27T01:02:03.5Z stdout P hel", b"2026-11-27T01:02:03.5Z stdout F lo", b"bad line"]
    lines += [f"2026-11-27T01:02:04Z stderr F n{i}".encode() for i in range(10)]
    (d / "1.log").write_bytes(b"\n".join(lines) + b"\n")
    reg = ContainerRegistry()
    reg.upsert(
        Container(
            id="d" * 64,
            name="x",
            image="img",
            image_id="",
            runtime="docker",
            init_pid=1,
            details={"log_driver": "syslog"},
        )
    )
    targets, unsupported = discover_targets(paths, reg)
    assert [t.path.name for t in targets] == ["1.log"] and unsupported == {"syslog": 1}
    store = Store(tmp_path / "s.db")
    ts = TailerSet(paths, reg, store, options={"rate_per_second": 1.0, "burst": 5.0})
    got = ts.poll()
    assert texts(got)[0] == "hello" and len(got) == 5
    st = ts.stats()["totals"]
    assert st["rate_dropped"] == 6 and st["malformed"] == 1 and st["lines"] == 11
    assert got[0].target.container.id.startswith("cri:default_web-1")
    store.close()


def test_start_at_end_skips_history(tmp_path: Path) -> None:
    p = tmp_path / "x-json.log"
    append(p, jline("old"))
    t = tailer(p, None, start_at="end")
    assert t.poll() == []
    append(p, jline("new"))
    assert texts(t.poll()) == ["new"]


def test_removed_container_is_read_one_last_time_and_offsets_pruned(tmp_path: Path) -> None:
    paths = HostPaths.under(tmp_path / "host")
    cid = "e" * 64
    d = paths.docker_container_dir(cid)
    d.mkdir(parents=True)
    log = d / f"{cid}-json.log"
    append(log, jline("first"))
    reg = ContainerRegistry()
    reg.upsert(
        Container(
            id=cid,
            name="x",
            image="img",
            image_id="",
            runtime="docker",
            init_pid=1,
            details={"log_driver": "json-file"},
        )
    )
    store = Store(tmp_path / "s.db")
    ts = TailerSet(paths, reg, store, cri=False)
    assert texts(ts.poll()) == ["first"]
    append(log, jline("last words"))
    reg.remove(cid)
    assert texts(ts.poll()) == ["last words"] and ts.tailers == {}
    assert ts.prune_offsets() == 0
    log.unlink()
    assert ts.prune_offsets() == 1
    store.close()


def test_local_frame_with_wrong_suffix_is_skipped_not_misread(tmp_path: Path) -> None:
    p = tmp_path / "container.log"
    good = encode_local_entry("stdout", 1, b"good")
    bad = bytearray(encode_local_entry("stdout", 2, b"bad"))
    bad[-1] ^= 0xFF
    append(p, good + bytes(bad) + encode_local_entry("stdout", 3, b"unreachable"))
    t = tailer(p, None, fmt="local")
    assert texts(t.poll()) == ["good"]
    assert t.poll() == [] and t.stats.malformed == 1
    append(p, encode_local_entry("stdout", 4, b"after"))
    assert texts(t.poll()) == ["after"]


def test_a_daemon_with_its_own_data_root_is_tailed_where_it_reports_the_log(tmp_path: Path) -> None:
    """dockerd's ``data-root`` is not always /var/lib/docker (a moved data-root, a second daemon):
    the log is read where inspect's ``LogPath`` says, re-rooted under the host root."""
    paths = HostPaths.under(tmp_path / "host")
    cid = "f" * 64
    reported = f"/srv/docker-2/containers/{cid}/{cid}-json.log"
    log = paths.host(reported)
    log.parent.mkdir(parents=True)
    append(log, jline("from the second daemon"))
    reg = ContainerRegistry()
    details = {"log_driver": "json-file", "log_path": reported}
    reg.upsert(Container(id=cid, name="x", image="img", image_id="", runtime="docker", init_pid=1, details=details))
    targets, _ = discover_targets(paths, reg)
    assert [t.path for t in targets] == [log]
    assert texts(TailerSet(paths, reg, None).poll()) == ["from the second daemon"]
    # no LogPath reported (the local driver, an old record): the default data-root's folder
    old = ContainerRegistry()
    old.upsert(Container(id=cid, name="x", image="img", image_id="", runtime="docker", init_pid=1))
    assert [t.path for t in discover_targets(paths, old)[0]] == [paths.docker_container_dir(cid) / f"{cid}-json.log"]
