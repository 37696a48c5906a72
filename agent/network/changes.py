# SPDX-License-Identifier: Apache-2.0
"""The netpolicy worker's queue of container changes, with a count of the ones not yet handled.

Registry listeners only enqueue (they never wait on netlink); the worker takes one change at a
time and marks it done, and ``drain`` waits until every queued change has been handled.
"""

from __future__ import annotations

import queue
import threading
import time

from agent.runtime.model import Container

Change = tuple[str, Container | None]  # ("added" | "removed" | "stop", container)


class ChangeQueue:
    """A FIFO of container changes that knows how many are still pending."""

    def __init__(self) -> None:
        self._q: queue.Queue[Change] = queue.Queue()
        self._pending = 0
        self._cond = threading.Condition()

    @property
    def pending(self) -> int:
        """Changes queued and not yet handled."""
        with self._cond:
            return self._pending

    def put(self, what: str, c: Container) -> None:
        """Queue one change to handle."""
        with self._cond:
            self._pending += 1
        self._q.put((what, c))

    def wake(self) -> None:
        """Wake the worker without a change (it checks its stop flag)."""
        self._q.put(("stop", None))

    def get(self, timeout: float) -> Change:
        """The next change, or ("", None) after ``timeout`` seconds."""
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return "", None

    def done(self) -> None:
        """One change taken by ``get`` has been handled."""
        with self._cond:
            self._pending -= 1
            self._cond.notify_all()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued change has been handled; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True
