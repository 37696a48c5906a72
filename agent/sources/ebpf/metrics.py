# SPDX-License-Identifier: Apache-2.0
"""The eBPF source's Prometheus metrics: events lost, rate-limited and delivered per probe, and
which probes are loaded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from agent.decoders.ebpf import PROBES

if TYPE_CHECKING:
    from agent.sources.ebpf.component import EbpfSource


class EbpfCollector(Collector):
    def __init__(self, source: EbpfSource) -> None:
        self.source = source

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        lost = CounterMetricFamily(
            "riskguard_events_lost", "Events lost before user space (buffer full)", labels=["source", "probe"]
        )
        limited = CounterMetricFamily(
            "riskguard_events_rate_limited",
            "Events dropped by the per-container rate limit",
            labels=["source", "probe"],
        )
        delivered = CounterMetricFamily(
            "riskguard_events_delivered", "Events decoded and published", labels=["source", "probe"]
        )
        active = GaugeMetricFamily("riskguard_probe_active", "1 when the probe is loaded", labels=["probe"])
        lost_now = self.source.lost_counts()
        limited_now = self.source.rate_limited_counts()
        for p in PROBES:
            lost.add_metric(["ebpf", p], lost_now.get(p, 0))
            limited.add_metric(["ebpf", p], limited_now.get(p, 0))
            delivered.add_metric(["ebpf", p], self.source.delivered.get(p, 0))
            active.add_metric([p], 1.0 if p in self.source.active else 0.0)
        yield lost
        yield limited
        yield delivered
        yield active
