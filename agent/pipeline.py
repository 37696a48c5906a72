# SPDX-License-Identifier: Apache-2.0
"""Bounded queues with drop counters, and the buses that carry events and findings.

Sources never block: ``publish`` on a full queue counts a drop and returns ``False``. One
dispatcher thread per bus drains its queue and calls the subscribers in order; a subscriber that
raises is logged and counted (``errors`` by subscriber), it never stops the bus nor keeps the value
from the subscribers after it; a ``prepare`` step that raises is counted (``prepare:<step>``) and
the value goes on as it was before that step. ``process`` runs the same path
synchronously, so tests push values through without threads.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog

log = structlog.get_logger("agent.pipeline")

T = TypeVar("T")


@dataclass
class StageStats:
    """Counters of one bus, exported by ``status`` and Prometheus."""

    published: int = 0
    processed: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    filtered: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "processed": self.processed,
            "dropped": dict(self.dropped),
            "errors": dict(self.errors),
            "filtered": self.filtered,
        }


class BoundedQueue(Generic[T]):
    """A FIFO that never blocks its producer: a full queue counts a drop per key.

    The consumer calls ``done(n)`` once it has finished with ``n`` items it took; ``drain``
    waits until every item put so far has been taken and finished.
    """

    def __init__(self, name: str, maxsize: int) -> None:
        self.name = name
        self._q: queue.Queue[T] = queue.Queue(maxsize=maxsize)
        self.dropped: Counter[str] = Counter()
        self._idle = threading.Condition()
        self._inflight = 0

    def put(self, item: T, key: str = "") -> bool:
        with self._idle:
            self._inflight += 1
        try:
            self._q.put_nowait(item)
            return True
        except queue.Full:
            self.dropped[key or type(item).__name__] += 1
            self.done()
            return False

    def done(self, n: int = 1) -> None:
        """``n`` items taken from the queue have been finished with."""
        with self._idle:
            self._inflight -= n
            self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until every item put so far has been taken and finished; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._inflight > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def get(self, timeout: float) -> T | None:
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def qsize(self) -> int:
        return self._q.qsize()


Handler = Callable[[T], object]
# (kind or kinds or None for every value, subscriber name, handler)
Subscriber = tuple[type | tuple[type, ...] | None, str, Handler[Any]]


class Bus(Generic[T]):
    """A bounded queue, a chain of ``prepare`` steps (may drop a value) and subscribers."""

    def __init__(self, name: str, maxsize: int = 65536) -> None:
        self.name = name
        self.queue: BoundedQueue[T] = BoundedQueue(name, maxsize)
        self.stats = StageStats()
        self._prepare: list[Callable[[T], T | None]] = []
        self._subscribers: list[Subscriber] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._gate = threading.Lock()  # held by the dispatcher per value, and by ``pause``

    # --- wiring ------------------------------------------------------------------------
    def add_prepare(self, step: Callable[[T], T | None]) -> None:
        """Add a step run before subscribers; returning ``None`` filters the value out."""
        self._prepare.append(step)

    def subscribe(self, handler: Handler[Any], kind: type | tuple[type, ...] | None = None, name: str = "") -> None:
        """Call ``handler`` for every value (of type ``kind``, or one of the types, when given)."""
        self._subscribers = [
            *self._subscribers,
            (kind, name or getattr(handler, "__qualname__", repr(handler)), handler),
        ]

    def set_subscribers(self, subscribers: list[Subscriber]) -> None:
        """Replace every subscriber at once (prepare steps stay): ``agent.wiring`` swaps generations."""
        self._subscribers = list(subscribers)

    def subscribers(self) -> list[Subscriber]:
        """The current subscribers in call order."""
        return list(self._subscribers)

    def pause(self) -> None:
        """Hold the dispatcher after the value in hand (publishing goes on into the queue)."""
        self._gate.acquire()

    def resume(self) -> None:
        """Let the dispatcher go on with the queued values."""
        self._gate.release()

    # --- producing ---------------------------------------------------------------------
    def publish(self, value: T) -> bool:
        self.stats.published += 1
        if self.queue.put(value):
            return True
        self.stats.dropped[type(value).__name__] += 1
        return False

    # --- consuming ---------------------------------------------------------------------
    def process(self, value: T) -> None:
        """Run ``value`` through prepare steps and subscribers, synchronously."""
        item: T = value
        for step in self._prepare:
            try:
                prepared = step(item)
            except Exception as exc:  # a failed enrichment still delivers the value as it was
                name = "prepare:" + getattr(step, "__qualname__", repr(step))
                self.stats.errors[name] += 1
                log.error("prepare_step_failed", bus=self.name, step=name, error=repr(exc)[:300])
                continue
            if prepared is None:
                self.stats.filtered += 1
                return
            item = prepared
        for kind, name, handler in self._subscribers:  # a swap replaces the list, never mutates it
            if kind is not None and not isinstance(item, kind):
                continue
            try:
                handler(item)
            except Exception as exc:  # a faulty analyser must not stop the bus or starve the others
                self.stats.errors[name] += 1
                log.error("subscriber_failed", bus=self.name, subscriber=name, error=repr(exc)[:300])
        self.stats.processed += 1

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"bus-{self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._gate:
                value = self.queue.get(timeout=0.2)
                if value is None:
                    continue
                try:
                    self.process(value)
                except Exception as exc:  # never reached by a prepare step or subscriber; kept so
                    self.stats.errors["dispatch"] += 1  # nothing can end the dispatcher thread
                    log.error("bus_dispatch_failed", bus=self.name, error=repr(exc)[:300])
                finally:
                    self.queue.done()

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until everything published so far has been processed."""
        return self.queue.drain(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self.drain(timeout)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def status(self) -> dict[str, Any]:
        snap = self.stats.snapshot()
        snap["queue_depth"] = self.queue.qsize()
        return snap


class Periodic:
    """Calls ``tick()`` every ``interval`` seconds in a daemon thread until ``stop()``.

    With ``run_first`` the first call happens at once (a scan), else after one interval (a
    timer). An exception is logged (``periodic_task_failed``) and counted; it never ends the loop.
    """

    def __init__(self, name: str, interval: float, tick: Callable[[], object], run_first: bool = False) -> None:
        self.name = name
        self.interval = interval
        self.tick = tick
        self.run_first = run_first
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self.run_first:
            self._call()
        while not self._stop.wait(self.interval):
            self._call()

    def _call(self) -> None:
        try:
            self.tick()
        except Exception as exc:
            self.errors += 1
            log.error("periodic_task_failed", task=self.name, error=repr(exc)[:500])

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
