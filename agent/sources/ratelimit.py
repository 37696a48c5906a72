# SPDX-License-Identifier: Apache-2.0
"""Per-key token buckets: a container that floods a source cannot starve the others.

Each key (a container id) gets ``rate`` tokens per second up to ``burst``; a value over budget is
dropped and counted against its key. Thread-safe; keys idle for ``idle_seconds`` are forgotten so
the table stays bounded by the number of live containers.
"""

from __future__ import annotations

import threading
import time
from collections import Counter


class RateLimiter:
    """Token bucket per key with drop counters (``dropped[key]``)."""

    def __init__(self, rate: float, burst: float | None = None, idle_seconds: float = 300.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate)
        self.idle_seconds = idle_seconds
        self.dropped: Counter[str] = Counter()
        self.allowed: Counter[str] = Counter()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = threading.Lock()
        self._last_gc = 0.0

    def allow(self, key: str, now: float | None = None, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens from ``key``'s bucket; ``False`` (and a counted drop) if empty."""
        t = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, t))
            tokens = min(self.burst, tokens + (t - last) * self.rate)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, t)
                self.allowed[key] += 1
                ok = True
            else:
                self._buckets[key] = (tokens, t)
                self.dropped[key] += 1
                ok = False
            if t - self._last_gc > self.idle_seconds:
                self._last_gc = t
                for k in [k for k, (_, seen) in self._buckets.items() if t - seen > self.idle_seconds]:
                    del self._buckets[k]
            return ok

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {"dropped": dict(self.dropped), "allowed_total": {"all": sum(self.allowed.values())}}
