# SPDX-License-Identifier: Apache-2.0
"""Per-container token buckets: a flooding container is cut, the others are not."""

from __future__ import annotations

from agent.sources.ratelimit import RateLimiter


def test_flooding_key_does_not_starve_others() -> None:
    rl = RateLimiter(rate=100, burst=100)
    flood = sum(rl.allow("noisy", now=0.5) for _ in range(10_000))
    quiet = sum(rl.allow("quiet", now=0.5) for _ in range(50))
    assert flood == 100 and quiet == 50
    assert rl.dropped["noisy"] == 9_900 and rl.dropped["quiet"] == 0


def test_tokens_refill_with_time() -> None:
    rl = RateLimiter(rate=10, burst=10)
    assert sum(rl.allow("a", now=0.0) for _ in range(20)) == 10
    assert sum(rl.allow("a", now=0.5) for _ in range(20)) == 5
    assert sum(rl.allow("a", now=100.0) for _ in range(20)) == 10  # capped at the burst


def test_idle_keys_are_forgotten() -> None:
    rl = RateLimiter(rate=1, idle_seconds=10)
    for i in range(100):
        rl.allow(f"c{i}", now=0.0)
    rl.allow("late", now=100.0)
    assert len(rl._buckets) == 1  # the bound on memory is the point of this test
