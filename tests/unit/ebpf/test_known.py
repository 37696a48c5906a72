# SPDX-License-Identifier: Apache-2.0
"""Known execs and connects (agent/sources/ebpf/known.py): the entries' exact form, what may never
be known, persistence, and behaviour windows that stay the same when the kernel counts instead of
sending. The kernel side (a known exec counted, not sent) is tested in
tests/privileged/ebpf/test_known_filter.py."""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from pathlib import Path

from agent.behavior.features import window_vector
from agent.decoders.ebpf import EXEC, HDR
from agent.events import ContainerRef, KnownActivity, NetConnect, ProcessExec
from agent.findings import TAINTING_SQL, Finding, Severity, Source, taints
from agent.sources.ebpf.known import KNOWN_PATH, KnownSet, argv_hash, conn_entry, exec_entry
from agent.sources.window import WindowAggregator
from agent.store import Store

REF = ContainerRef(id="a" * 64, name="busy", image="busy:1", image_id="sha256:1")
NEVER = ("sh", "bash", "dash", "python", "perl", "busybox")


def _curl_connect(sport: int, dport: int, state: str) -> NetConnect:
    return NetConnect(
        ts=1.0,
        cgroup_id=7,
        op="connect",
        comm="curl",
        family=socket.AF_INET,
        protocol="tcp",
        saddr="127.0.0.1",
        sport=sport,
        daddr="127.0.0.1",
        dport=dport,
        state=state,
    )


# parent_ino, parent_dev, pad, parent_exe, stdio_kind[4], stdio_ino[3]; new_args_size, pad2, new_args
NO_PARENT, NO_NEW = (0, 0, 0, b"", 0, 0, 0, 0, 0, 0, 0), (0, 0, b"")


def _raw(
    path: bytes,
    args: bytes,
    *,
    pcomm: bytes = b"loop",
    truncated: int = 0,
    flags: int = 3,
    nlink: int = 1,
    exe: bytes = b"busybox",
) -> bytes:
    hdr = HDR.pack(1, 42, 7, 1, 43, 0, b"x")
    return (
        hdr
        + EXEC.pack(1, args.count(b"\0"), len(args), truncated, pcomm, path, flags, nlink, *NO_PARENT, exe, *NO_NEW)
        + args
    )


def test_argv_hash_is_fnv1a_over_zero_padded_little_endian_words() -> None:
    assert argv_hash(b"") == 14695981039346656037
    # One word: (offset ^ word) * prime mod 2**64, the word zero-padded.
    word = int.from_bytes(b"ls\0/etc\0", "little")
    assert argv_hash(b"ls\0/etc\0") == ((14695981039346656037 ^ word) * 1099511628211) % 2**64
    assert argv_hash(b"ls\0") == argv_hash(b"ls\0\0\0")  # the kernel masks the tail: same words
    assert argv_hash(b"nc\0-e\0/bin/sh\0") != argv_hash(b"nc\0-z\0/bin/sh\0")


def test_exec_entry_takes_the_exact_form_and_refuses_what_can_never_be_known() -> None:
    got = exec_entry(_raw(b"/bin/true\0", b"true\0"))
    assert got == ((b"/bin/true", b"loop", argv_hash(b"true\0")), "busybox", "true")
    assert exec_entry(_raw(b"/bin/true\0", b"true\0", truncated=1)) is None  # argv cut
    assert exec_entry(_raw(b"/bin/true\0", b"true\0", flags=1)) is None  # no executable read
    assert exec_entry(_raw(b"/bin/true\0", b"true\0", nlink=0)) is None  # deleted executable
    assert exec_entry(_raw(b"/" + b"a" * KNOWN_PATH + b"\0", b"x\0")) is None  # longer than the key
    assert exec_entry(b"short") is None


def test_shells_interpreters_writable_dirs_and_scripts_are_never_known(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "busybox").write_bytes(b"\x7fELF")
    (root / "bin" / "true").symlink_to("/bin/busybox")  # resolved inside the root
    (root / "app").mkdir()
    (root / "app" / "job.sh").write_text("#!/bin/sh\necho\n")
    k = KnownSet(None, lambda _k, _t: True, NEVER, ("/tmp/",), root_of=lambda _cg: root)
    assert k.eligible(b"/bin/true", "busybox", 1)
    assert not k.eligible(b"/app/job.sh", "busybox", 1)  # a script run by busybox sh
    assert not k.eligible(b"/bin/sh", "busybox", 1) and not k.eligible(b"/usr/bin/python3.11", "python3.11", 1)
    assert not k.eligible(b"/app/run.py", "python3.11", 1)  # a script: its interpreter ran
    assert not k.eligible(b"/tmp/x", "x", 1) and not k.eligible(b"/dev/shm/x", "x", 1)
    assert not k.eligible(b"true", "busybox", 1)  # relative
    assert not k.eligible(b"/bin/missing", "busybox", 1)  # unreadable: treated as a script
    assert k.eligible(b"/usr/sbin/nginx", "nginx", 1)
    # busybox re-executing itself for an applet a shell ran (filename /proc/self/exe).
    assert k.eligible(b"/proc/self/exe", "busybox", 1, "wget")
    assert not k.eligible(b"/proc/self/exe", "busybox", 1, "sh") and not k.eligible(b"/proc/self/exe", "x", 1, "wget")


def test_learned_entries_persist_and_connect_entries_need_an_established_tcp_connect(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    k = KnownSet(store, lambda _k, _t: True, NEVER)
    k.track(7, "busy:1")
    k.learn_exec(7, _raw(b"/usr/bin/curl\0", b"curl\0-s\0", exe=b"curl"), 1.0)
    k.learn_exec(7, _raw(b"/usr/bin/curl\0", b"curl\0-s\0", exe=b"curl"), 2.0)  # once
    ok = _curl_connect(4000, 8080, "ESTABLISHED")
    failed = _curl_connect(4001, 9, "CLOSE")
    assert conn_entry(failed) is None
    k.learn_conn(ok, 1.0)
    k.learn_conn(failed, 1.0)
    again = KnownSet(store, lambda _k, _t: True, NEVER)
    assert list(again.execs["busy:1"]) == [(b"/usr/bin/curl", b"loop", argv_hash(b"curl\0-s\0"))]
    assert list(again.conns["busy:1"]) == [(socket.AF_INET, bytes([127, 0, 0, 1]) + bytes(12), 8080)]
    assert sorted(i[0] for i in again.info.values()) == ["conn", "exec"]


def test_a_window_of_kernel_counts_equals_the_window_of_the_events() -> None:
    """Behaviour features see the same window whether the kernel sent 50 execs and 30 connects or
    counted them (KnownActivity)."""
    sent, counted = WindowAggregator(10.0), WindowAggregator(10.0)
    for _ in range(50):
        sent.on_event(ProcessExec(ts=1.0, container=REF, ppid=1, uid=0, comm="true", filename="/bin/true"))
    for port in (8080, 8081, 8080):
        for _ in range(10):
            sent.on_event(
                NetConnect(
                    ts=1.0,
                    container=REF,
                    op="connect",
                    comm="nc",
                    family=socket.AF_INET,
                    protocol="tcp",
                    saddr="127.0.0.1",
                    sport=1,
                    daddr="127.0.0.1",
                    dport=port,
                )
            )
    counted.on_event(
        KnownActivity(
            ts=1.0,
            container=REF,
            execs=50,
            connects=30,
            binaries=frozenset({"/bin/true"}),
            peers=frozenset({"127.0.0.1"}),
            dst_ports=frozenset({8080, 8081}),
        )
    )
    (a,), (b,) = sent.flush(11.0), counted.flush(11.0)
    assert (a.execs, a.connects, a.binaries, a.peers, a.dst_ports) == (
        b.execs,
        b.connects,
        b.binaries,
        b.peers,
        b.dst_ports,
    )
    assert a.execs == 50 and a.connects == 30
    assert window_vector(a) == window_vector(b)


def test_a_finding_takes_back_what_its_container_taught_while_the_image_learned(tmp_path: Path) -> None:
    """A container that misbehaves while its image learns (a miner connecting out, a dropped
    tool run from the image's own path) must not teach the kernel filter: its entries go (also
    from the store), it teaches nothing more, and a clean container's entries stay."""
    store = Store(tmp_path / "a.db")
    learning = {"busy:1": True}
    k = KnownSet(store, lambda key, _t: learning.get(key, False), NEVER)
    k.track(7, "busy:1")  # the container that will have a finding
    k.track(8, "busy:1")  # a clean replica of the same image
    bad = _curl_connect(4000, 3333, "ESTABLISHED")
    k.learn_exec(7, _raw(b"/usr/bin/curl\0", b"curl\0-s\0", exe=b"curl"), 1.0)
    k.learn_conn(bad, 1.0)
    shared = replace(_curl_connect(4001, 8080, "ESTABLISHED"), cgroup_id=8)
    k.learn_conn(shared, 1.0)
    k.learn_conn(replace(shared, cgroup_id=7, sport=4002), 1.0)  # made by both
    assert len(k.execs["busy:1"]) == 1 and len(k.conns["busy:1"]) == 2

    assert k.taint(7, 2.0) == 3  # the exec, the miner's connect, the shared connect
    assert k.execs["busy:1"] == {} and k.conns["busy:1"] == {}
    k.learn_conn(bad, 3.0)  # the tainted container teaches nothing more
    k.learn_exec(7, _raw(b"/usr/bin/curl\0", b"curl\0-s\0", exe=b"curl"), 3.0)
    k.learn_conn(shared, 3.0)  # the clean one teaches the shared destination again
    assert list(k.conns["busy:1"]) == [conn_entry(shared)] and k.execs["busy:1"] == {}
    again = KnownSet(store, lambda _k, _t: True, NEVER)  # the store agrees (a restart)
    assert list(again.conns["busy:1"]) == [conn_entry(shared)] and again.execs.get("busy:1", {}) == {}
    assert k.status()["entries_taken_back"] == 3 and k.status()["tainted_cgroups"] == 1

    learning["busy:1"] = False  # learned: nothing is taken back any more (the kernel has it)
    assert k.taint(8, 4.0) == 0 and list(k.conns["busy:1"]) == [conn_entry(shared)]
    k.track(7, None)  # the container went: its cgroup id may come back for another one
    assert 7 not in k.tainted


def _finding(source: Source, detector: str, severity: Severity, evidence: dict[str, str] | None = None) -> Finding:
    return Finding(
        container=REF, source=source, detector_id=detector, severity=severity, summary="s", evidence=evidence or {}
    )


def test_taints_is_the_tainting_sql_for_one_finding(tmp_path: Path) -> None:
    """The findings that take known entries back are the ones that keep behaviour windows out
    of training: ``taints`` (in memory) and ``TAINTING_SQL`` (the store) agree finding by finding."""
    store = Store(tmp_path / "f.db")
    cases = [
        _finding(Source.RULE, "RG-0002", Severity.HIGH),
        _finding(Source.RULE, "RG-0003", Severity.MEDIUM),
        _finding(Source.RULE, "RG-0003", Severity.LOW, {"allowance": "learned"}),
        _finding(Source.RULE, "RG-0001", Severity.MEDIUM, {"allowance": "operator"}),
        _finding(Source.VULN, "vuln.image", Severity.CRITICAL),
        _finding(Source.NETPOLICY, "RG-0105", Severity.MEDIUM),  # posture
        _finding(Source.NETPOLICY, "RG-0201", Severity.HIGH),
        _finding(Source.BEHAVIOR, "behavior.anomaly", Severity.MEDIUM),
        _finding(Source.LOGS, "RG-LOG-0001", Severity.INFO),
    ]
    for f in cases:
        store.execute(
            "INSERT INTO findings(id, ts, container_id, container_name, image, source, detector_id, severity,"
            " summary, evidence) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                f.id,
                f.ts,
                REF.id,
                REF.name,
                REF.image,
                str(f.source),
                f.detector_id,
                int(f.severity),
                f.summary,
                json.dumps(dict(f.evidence)),
            ),
        )
    by_sql = {str(r[0]) for r in store.query("SELECT id FROM findings WHERE " + TAINTING_SQL)}
    assert by_sql == {f.id for f in cases if taints(f)}
    assert [taints(f) for f in cases] == [True, True, False, False, False, False, True, True, False]
