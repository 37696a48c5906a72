# SPDX-License-Identifier: Apache-2.0
"""Prometheus view of a source's ``status()``: named counters, optionally per container."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily
from prometheus_client.registry import Collector


class StatusCollector(Collector):
    """Exports ``status()[key]`` as ``<prefix>_<key>_total``; a mapping value becomes one sample per
    label value (``container`` by default). Keys are fixed at construction so metric names are
    stable from the first scrape."""

    def __init__(
        self,
        prefix: str,
        status: Callable[[], Mapping[str, Any]],
        keys: Sequence[tuple[str, str]],
        label: str = "container",
    ) -> None:
        self.prefix = prefix
        self.status = status
        self.keys = keys
        self.label = label

    def collect(self) -> Iterator[CounterMetricFamily]:
        st = self.status()
        for key, doc in self.keys:
            value = st.get(key, 0)
            if isinstance(value, Mapping):
                fam = CounterMetricFamily(f"{self.prefix}_{key}", doc, labels=[self.label])
                for lv, n in value.items():
                    if isinstance(n, int | float):
                        fam.add_metric([str(lv)[:12]], n)
            else:
                fam = CounterMetricFamily(
                    f"{self.prefix}_{key}", doc, value=value if isinstance(value, int | float) else 0
                )
            yield fam
