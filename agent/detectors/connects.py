# SPDX-License-Identifier: Apache-2.0
"""One container's recent connect attempts with the counts the scan rule (RG-0013) asks for.

The attempts are kept in arrival order, bounded by count, and dropped from the front by time
(``DetectorState.remember_connect``). On every insert and drop, per-host port counts and
per-port host counts are updated, so the rule reads how many distinct ports of one host (or
hosts on one port) the window holds without walking it: a container that connects a lot costs
the same per connect as one that connects rarely. The minimum timestamp held (a monotonic
queue) says when an attempt older than the window is still held behind newer ones (events
arrive out of time order by more than the window): only then is the window walked.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterator
from typing import TypeVar

_K = TypeVar("_K")
_V = TypeVar("_V")


class RecentConnects:
    """Recent connect attempts (ts, daddr, dport), oldest first, with their target counts."""

    __slots__ = ("_mins", "entries", "hosts_of", "maxlen", "ports_of", "walked")

    def __init__(self, maxlen: int) -> None:
        self.maxlen = maxlen
        self.entries: deque[tuple[float, str, int]] = deque()
        # daddr -> {dport: attempts held}, dport -> {daddr: attempts held}
        self.ports_of: dict[str, dict[int, int]] = {}
        self.hosts_of: dict[int, dict[str, int]] = {}
        # Timestamps in increasing order whose front is the smallest one held.
        self._mins: deque[float] = deque()
        # Attempts visited by a walk of the window (out-of-order arrivals only): a stats counter.
        self.walked = 0

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[tuple[float, str, int]]:
        return iter(self.entries)

    def add(self, ts: float, daddr: str, dport: int) -> None:
        if len(self.entries) >= self.maxlen:
            self._drop()
        self.entries.append((ts, daddr, dport))
        ports = self.ports_of.setdefault(daddr, {})
        ports[dport] = ports.get(dport, 0) + 1
        hosts = self.hosts_of.setdefault(dport, {})
        hosts[daddr] = hosts.get(daddr, 0) + 1
        mins = self._mins
        while mins and mins[-1] > ts:
            mins.pop()
        mins.append(ts)

    def expire(self, since: float) -> None:
        """Drop the attempts at the front older than ``since``."""
        while self.entries and self.entries[0][0] < since:
            self._drop()

    def targets(self, daddr: str, dport: int, since: float) -> tuple[Collection[int], Collection[str]]:
        """The distinct ports of ``daddr`` and hosts on ``dport`` attempted at or after ``since``
        (views of the counts when the whole window is that recent: not copied)."""
        if not self.entries:
            return (), ()
        if self._mins[0] >= since:
            return self.ports_of.get(daddr, {}).keys(), self.hosts_of.get(dport, {}).keys()
        self.walked += len(self.entries)
        ports: set[int] = set()
        hosts: set[str] = set()
        for ts, a, p in self.entries:
            if ts >= since:
                if a == daddr:
                    ports.add(p)
                if p == dport:
                    hosts.add(a)
        return ports, hosts

    def _drop(self) -> None:
        ts, daddr, dport = self.entries.popleft()
        if self._mins[0] == ts:
            self._mins.popleft()
        _uncount(self.ports_of, daddr, dport)
        _uncount(self.hosts_of, dport, daddr)


def _uncount(table: dict[_K, dict[_V, int]], key: _K, value: _V) -> None:
    inner = table[key]
    left = inner[value] - 1
    if left:
        inner[value] = left
    else:
        del inner[value]
        if not inner:
            del table[key]
