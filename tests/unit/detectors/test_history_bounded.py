# SPDX-License-Identifier: Apache-2.0
"""The pipe rules (RG-0014/RG-0015) and the scan rule (RG-0013) do bounded work per event however
much history a container made: a shell loop exec'ing and connecting thousands of times, a
container connecting thousands of times. The work is counted by the detectors' own stats
counters (``Activity.sibling_visits``/``reader_tests``, ``RecentConnects.walked``); the findings
are compared with a direct reading of the whole history (what the rules computed before)."""

from __future__ import annotations

import dataclasses
import random
from collections import deque

from agent.detectors.activity import activity
from agent.detectors.network_scan import SPEC as SCAN
from agent.detectors.pipes import is_reader
from agent.detectors.spec import DetectorState
from agent.events import NetConnect
from agent.findings import Finding
from agent.settings.detectors import DetectorsSettings
from tests.unit.detectors.sequence_cases import SESSION, conn, exe, pipeline, run, session
from tests.unit.detectors.test_rules import conn as scan_conn

N = 5000


def _shell_loop(n: int, t0: float = 1000.0) -> list:
    """``while :; do wget -O /dev/null URL; done``: one exec and one connect per iteration,
    1 ms apart (500 earlier children of the shell within the 0.5 s pairing window)."""
    out = []
    for i in range(n):
        ts = t0 + i * 0.001
        out += [exe(10_000 + i, SESSION, "wget", "-O", "/dev/null", "http://h/x", ts=ts), conn(10_000 + i, ts=ts)]
    return out


def test_pipe_rules_work_per_exec_is_bounded_and_the_pipe_is_still_found() -> None:
    st = DetectorState(settings=DetectorsSettings())
    assert run([*session(), *_shell_loop(N)], st) == []
    act = activity(st)
    # Each child is asked once whether it reads its stdin; no non-reader is visited again.
    assert act.reader_tests <= N + 2
    assert act.sibling_visits <= 2 * N  # before: ~500 per connect (2.5 M in all)
    t = 1000.0 + N * 0.001 + 2.0
    found = run(
        [*pipeline((90_202, ("wget", "-O-", "http://h/x"), ()), (90_201, ("sh",), ()), t0=t), conn(90_202, ts=t)], st
    )
    assert [f.detector_id for f in found] == ["RG-0014"]
    assert found[0].evidence["shell"]["pid"] == 90_201 and found[0].evidence["feeder"]["pid"] == 90_202


def test_pipe_rules_loop_benign_twin() -> None:
    """The same loop ending in a download then a script run from the file: no reader, no finding."""
    st = DetectorState(settings=DetectorsSettings())
    t = 1000.0 + N * 0.001 + 2.0
    tail = pipeline((90_202, ("wget", "-O", "/tmp/x", "http://h/x"), ()), (90_201, ("sh", "/tmp/x"), ()), t0=t)
    assert run([*session(), *_shell_loop(N), *tail, conn(90_202, ts=t)], st) == []
    assert activity(st).sibling_visits <= 2 * N


def test_reader_siblings_are_the_readers_among_the_siblings() -> None:
    """Mixed children (readers, shells running a command or a script, downloaders), some out of
    exec order by less than the order slack: the reader index gives what filtering every
    sibling gives."""
    st = DetectorState(settings=DetectorsSettings())
    rng = random.Random(14)
    kinds = [("sh",), ("sh", "-c", "id"), ("sh", "/tmp/x"), ("wget", "-O-", "u"), ("bash", "-s"), ("python3",)]
    recs = []
    act = activity(st)
    for i in range(2000):
        ts = 1000.0 + i * 0.004 + rng.uniform(-0.1, 0.1)
        recs.append(act.observe_exec(exe(20_000 + i, SESSION if i % 7 else 77, *rng.choice(kinds), ts=ts)))
        if i % 5 == 0:
            rec = rng.choice(recs)
            want = [s for s in act.siblings(rec, 0.5) if is_reader(s, st)]
            assert act.reader_siblings(rec, 0.5, lambda r: is_reader(r, st)) == want
    assert sum(1 for r in recs if is_reader(r, st)) > 100


def _reference(ev: NetConnect, history: deque[tuple[float, str, int]], s: DetectorsSettings) -> tuple | None:
    """RG-0013 read from the whole retained history, as the rule did before its counts."""
    since = ev.ts - s.scan_window_seconds
    ports = {p for ts, a, p in history if ts >= since and a == ev.daddr}
    hosts = {a for ts, a, p in history if ts >= since and p == ev.dport}
    if ev.dport not in ports and len(ports) + 1 == s.scan_min_targets:
        return ("port_scan", sorted({*ports, ev.dport}))
    if ev.daddr not in hosts and len(hosts) + 1 == s.scan_min_targets:
        return ("host_sweep", sorted({*hosts, ev.daddr}))
    return None


def _got(f: Finding | None) -> tuple | None:
    if f is None:
        return None
    kind = f.evidence["kind"]
    return (kind, f.evidence["ports"] if kind == "port_scan" else f.evidence["hosts"])


def _feed(st: DetectorState, events: list[NetConnect], horizon: float, maxlen: int) -> tuple[list, list]:
    """Evaluate then remember each connect (as the component does), beside the reference."""
    history: deque[tuple[float, str, int]] = deque(maxlen=maxlen)
    got, want = [], []
    for ev in events:
        want.append(_reference(ev, history, st.settings))
        got.append(_got(SCAN.evaluate(ev, st)))
        history.append((ev.ts, ev.daddr, ev.dport))
        while history and history[0][0] < ev.ts - horizon:
            history.popleft()
        st.remember_connect(ev, horizon)
    return got, want


def test_scan_work_per_connect_is_bounded() -> None:
    """5,000 connects of one container to 15 ports of one host, 1 ms apart, then a scan."""
    st = DetectorState(settings=DetectorsSettings())
    w = st.settings.scan_window_seconds
    loop = [dataclasses.replace(scan_conn(1 + i % 15), ts=1000.0 + i * 0.001) for i in range(N)]
    t = 1000.0 + N * 0.001
    scan = [dataclasses.replace(scan_conn(100 + i), ts=t + i * 0.001) for i in range(30)]
    got = []
    for ev in [*loop, *scan]:
        got.append(_got(SCAN.evaluate(ev, st)))
        st.remember_connect(ev, w)
    fired = [(i, g) for i, g in enumerate(got) if g is not None]
    # The 20th distinct port of the host: the 15 of the loop and the scan's first 5.
    assert fired == [(N + 4, ("port_scan", [*range(1, 16), *range(100, 105)]))]
    assert st.connects[loop[0].container.id].walked == 0  # no walk of the window at all


def test_scan_findings_equal_a_reading_of_the_whole_history() -> None:
    """Random hosts and ports, a small threshold and bound, timestamps out of order (by more
    than the window now and then): the counts give the same findings as reading everything."""
    st = DetectorState(settings=DetectorsSettings(scan_min_targets=4, scan_window_seconds=1.0))
    st.max_connects = 64
    rng = random.Random(13)
    events = []
    for i in range(6000):
        skew = rng.uniform(-2.0, 0.0) if rng.random() < 0.02 else rng.uniform(-0.01, 0.01)
        ev = scan_conn(rng.randrange(1, 8), daddr=f"10.0.0.{rng.randrange(1, 8)}")
        events.append(dataclasses.replace(ev, ts=1000.0 + i * 0.01 + skew))
    got, want = _feed(st, events, st.settings.scan_window_seconds, st.max_connects)
    assert got == want
    assert sum(g is not None for g in got) > 50
    assert st.connects[events[0].container.id].walked > 0  # the late ones took the walk
