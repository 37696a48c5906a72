# SPDX-License-Identifier: Apache-2.0
"""Buses: never block the producer, count drops and subscriber errors, filter in prepare steps."""

from __future__ import annotations

import threading
import time

from agent.events import Event, ProcessExit
from agent.pipeline import Bus


def ev(pid: int) -> ProcessExit:
    return ProcessExit(ts=time.time(), pid=pid, comm="x")


def test_full_queue_counts_drops_without_blocking() -> None:
    bus: Bus[Event] = Bus("t", maxsize=2)
    t0 = time.monotonic()
    results = [bus.publish(ev(i)) for i in range(5)]
    assert time.monotonic() - t0 < 0.5
    assert results == [True, True, False, False, False]
    assert bus.stats.dropped["ProcessExit"] == 3
    assert bus.status()["queue_depth"] == 2


def test_subscribers_by_kind_prepare_filter_and_error_isolation() -> None:
    bus: Bus[Event] = Bus("t")
    seen: list[int] = []
    bus.add_prepare(lambda e: None if e.pid == 13 else e)

    def broken(_e: Event) -> None:
        raise RuntimeError("analyser bug")

    bus.subscribe(broken, name="broken")
    bus.subscribe(lambda e: seen.append(e.pid), kind=ProcessExit)
    for i in (1, 13, 2):
        bus.process(ev(i))
    assert seen == [1, 2]
    assert bus.stats.filtered == 1
    assert bus.stats.errors["broken"] == 2
    assert bus.stats.processed == 2


def test_thread_drains_everything_published() -> None:
    bus: Bus[Event] = Bus("t")
    seen: list[int] = []
    lock = threading.Lock()

    def add(e: Event) -> None:
        with lock:
            seen.append(e.pid)

    bus.subscribe(add)
    bus.start()
    for i in range(1000):
        bus.publish(ev(i))
    assert bus.drain(5)
    bus.stop()
    assert sorted(seen) == list(range(1000))


def test_periodic_runs_until_stopped_and_survives_a_failing_tick() -> None:
    from agent.pipeline import Periodic

    calls: list[float] = []

    def tick() -> None:
        calls.append(time.monotonic())
        if len(calls) == 2:
            raise RuntimeError("one bad round")

    p = Periodic("test-timer", 0.02, tick, run_first=True)
    t0 = time.monotonic()
    p.start()
    deadline = time.monotonic() + 5
    while len(calls) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    p.stop()
    n = len(calls)
    assert n >= 5 and p.errors == 1
    assert calls[0] - t0 < 0.015  # run_first: at once, not after one interval
    time.sleep(0.1)
    assert len(calls) == n  # stopped means stopped


def test_pause_holds_the_dispatcher_and_a_swap_delivers_everything_to_the_new_subscribers() -> None:
    bus: Bus[object] = Bus("t", maxsize=100)
    old: list[object] = []
    new: list[object] = []
    bus.subscribe(old.append, kind=(int, float), name="old")
    bus.start()
    try:
        bus.publish(1)
        assert bus.drain(2) and old == [1]
        bus.pause()
        for value in (2, 3.5, "skip", 4):
            assert bus.publish(value)  # publishing goes on while the dispatcher is held
        time.sleep(0.4)
        assert old == [1] and bus.status()["queue_depth"] == 4
        bus.set_subscribers([((int, float), "new", new.append)])
        bus.resume()
        assert bus.drain(2)
        assert old == [1] and new == [2, 3.5, 4]
        assert [name for _k, name, _h in bus.subscribers()] == ["new"]
    finally:
        bus.stop(1)
