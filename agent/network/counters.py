# SPDX-License-Identifier: Apache-2.0
"""Deny counters of the least-privilege table: read, turned into deltas, published.

Each read of a container's ``inet riskguard_lp`` table yields the ``denied_in``/``denied_out``
counters; the packets since the previous read go out as one ``PacketsDenied`` event and into the
``riskguard_netpolicy_denied_packets`` metric. A replaced table restarts its counters: a value
lower than the previous one counts from zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import Counter

from agent.events import Event, PacketsDenied
from agent.network.state import Tracked

DIRECTIONS = (("denied_in", "in"), ("denied_out", "out"))


def deltas(t: Tracked, counters: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """Packets and bytes denied since ``t``'s previous read, per counter."""
    zero = {"packets": 0, "bytes": 0}
    out = {}
    for name, _direction in DIRECTIONS:
        cur = counters.get(name, zero)
        prev = t.last_counters.get(name, zero)
        if cur["packets"] < prev["packets"]:
            prev = zero  # table replaced: counters restarted
        out[name] = {k: cur[k] - prev[k] for k in ("packets", "bytes")}
    return out


def publish_deltas(
    t: Tracked,
    table: Mapping[str, Any],
    publish: Callable[[Event], object],
    metric: Counter | None,
) -> int:
    """Account the counters of a freshly read ``table`` to ``t``; publish a ``PacketsDenied``
    event (and count the metric) when packets were denied since the last read. Returns them."""
    now = time.time()
    counters = table["counters"]
    delta = deltas(t, counters)
    start = t.last_read or t.container.started_at or now
    t.last_counters = counters
    t.last_read = now
    n = delta["denied_in"]["packets"] + delta["denied_out"]["packets"]
    if not n:
        return 0
    t.denied_packets += n
    if metric is not None:
        for name, direction in DIRECTIONS:
            if delta[name]["packets"]:
                metric.labels(t.container.short_id, direction).inc(delta[name]["packets"])
    publish(
        PacketsDenied(
            ts=now,
            cgroup_id=t.container.cgroup_id,
            container=t.container.ref(),
            start=start,
            end=now,
            packets_in=delta["denied_in"]["packets"],
            packets_out=delta["denied_out"]["packets"],
            bytes_in=delta["denied_in"]["bytes"],
            bytes_out=delta["denied_out"]["bytes"],
            enforced=t.rules == "enforce",
        )
    )
    return n
