# SPDX-License-Identifier: Apache-2.0
"""Prometheus metrics on ``ctx.metrics`` and their HTTP exposition on a loopback address.

Counters the outputs own: ``riskguard_findings_total{source,severity}``,
``riskguard_actions_total{kind,result}``. Read at scrape time from the running agent:
``riskguard_build_info{version,python}`` (always 1), ``riskguard_containers_watched{runtime}``,
``riskguard_bus_dropped_total{bus,kind}`` (events and findings dropped on a full bus queue),
``riskguard_bus_errors_total{bus,subscriber}`` (values a subscriber raised on),
``riskguard_lost_events_total{source}`` (the ``lost``/``lost_events``/``dropped`` status counters
of components that export no loss metric of their own), ``riskguard_queue_depth{queue}``, and
``riskguard_output_sent_total`` / ``_dropped_total`` / ``_failed_total`` / ``_retries_total``
``{output}`` of the webhook and Elasticsearch shippers.

One concept, one metric: a loss a component already exports under its own name (eBPF's
``riskguard_events_lost_total``, audit's ``riskguard_audit_lost_total``, behaviour's
``riskguard_behavior_dropped_total``) is not repeated here.
"""

from __future__ import annotations

import contextlib
import platform
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from agent import __version__
from agent.context import AgentContext

LOST_KEYS = ("lost", "lost_events", "dropped")
# Components whose loss counters are exported by their own collectors under their own names.
OWN_LOSS_METRICS = frozenset({"ebpf", "audit", "behavior"})


def _numbers(prefix: str, value: Any) -> Iterable[tuple[str, float]]:
    """Flatten an int or a {key: int} status value into (label, number) pairs."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield prefix, float(value)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                yield f"{prefix}:{k}", float(v)


class RuntimeCollector(Collector):
    """Lost events and queue depths, read from the buses and components at each scrape."""

    def __init__(
        self,
        ctx: AgentContext,
        shippers: Callable[[], Mapping[str, Mapping[str, Any]]],
        peers: Callable[[], Mapping[str, Mapping[str, Any]]] = dict,
    ) -> None:
        self.ctx = ctx
        self.shippers = shippers
        self.peers = peers  # every running component's status()
        self.own = "outputs"

    def collect(self) -> Iterable[Metric]:
        build = GaugeMetricFamily(
            "riskguard_build_info", "The running agent's version (always 1)", labels=["version", "python"]
        )
        build.add_metric([__version__, platform.python_version()], 1.0)
        yield build
        watched = GaugeMetricFamily("riskguard_containers_watched", "Containers the agent watches", labels=["runtime"])
        per_runtime: dict[str, int] = {}
        for c in self.ctx.registry.all():
            per_runtime[c.runtime] = per_runtime.get(c.runtime, 0) + 1
        for runtime, n in sorted(per_runtime.items()):
            watched.add_metric([runtime], float(n))
        yield watched
        bus = CounterMetricFamily(
            "riskguard_bus_dropped", "Items dropped on a full bus queue, per bus and kind", labels=["bus", "kind"]
        )
        for name, b in (("events", self.ctx.events), ("findings", self.ctx.findings)):
            for kind, n in sorted(b.stats.dropped.items()):
                bus.add_metric([name, str(kind)], float(n))
        yield bus
        errors = CounterMetricFamily(
            "riskguard_bus_errors",
            "Values a subscriber or prepare step raised on (counted, skipped for it only), per bus and subscriber",
            labels=["bus", "subscriber"],
        )
        for name, b in (("events", self.ctx.events), ("findings", self.ctx.findings)):
            for subscriber, n in sorted(b.stats.errors.items()):
                errors.add_metric([name, str(subscriber)], float(n))
        yield errors
        lost = CounterMetricFamily(
            "riskguard_lost_events",
            "Events a component lost (components without a loss metric of their own), per source",
            labels=["source"],
        )
        peers = self.peers()
        for name, st in sorted(peers.items()):
            if name == self.own or name in OWN_LOSS_METRICS:
                continue
            for key in LOST_KEYS:
                if key in st:
                    for label, value in _numbers(name, st[key]):
                        lost.add_metric([label], value)
        yield lost
        known = peers.get("ebpf", {}).get("known")
        if isinstance(known, Mapping) and known:
            # The kernel-side filter of known execs/connects out of room: more CPU, nothing lost.
            images = GaugeMetricFamily(
                "riskguard_ebpf_known_images_refused",
                "Images whose known execs and connects do not fit in the kernel's maps (their events are all sent)",
            )
            images.add_metric([], float(known.get("images_refused", 0)))
            yield images
            hits = CounterMetricFamily(
                "riskguard_ebpf_known_hits_refused",
                "Known execs and connects the full kernel hits map could not count (sent as events instead)",
            )
            hits.add_metric([], float(known.get("hits_refused", 0)))
            yield hits
        depth = GaugeMetricFamily("riskguard_queue_depth", "Items waiting in a queue", labels=["queue"])
        depth.add_metric(["events"], float(self.ctx.events.queue.qsize()))
        depth.add_metric(["findings"], float(self.ctx.findings.queue.qsize()))
        shippers = self.shippers()
        for name, st in sorted(shippers.items()):
            depth.add_metric([name], float(st.get("queue_depth", 0)))
        yield depth
        for what, help_text in (
            ("sent", "Records an output delivered"),
            ("dropped", "Records an output dropped because its queue was full"),
            ("failed", "Records an output gave up on after its retries"),
            ("retries", "Delivery attempts an output repeated after a transient failure"),
        ):
            fam = CounterMetricFamily(f"riskguard_output_{what}", help_text, labels=["output"])
            for name, st in sorted(shippers.items()):
                fam.add_metric([name], float(st.get(what, 0)))
            yield fam


class OutputMetrics:
    """The outputs' metrics registered on one registry; ``unregister`` undoes it (config reload)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        ctx: AgentContext,
        shippers: Callable[[], Mapping[str, Mapping[str, Any]]],
        peers: Callable[[], Mapping[str, Mapping[str, Any]]] = dict,
    ) -> None:
        self.registry = registry
        self.findings = Counter("riskguard_findings", "Findings reported", ["source", "severity"], registry=None)
        self.actions = Counter("riskguard_actions", "Response actions taken", ["kind", "result"], registry=None)
        self.runtime = RuntimeCollector(ctx, shippers, peers)
        self._collectors: list[Collector] = [
            self.findings,
            self.actions,
            self.runtime,
        ]
        for c in self._collectors:
            registry.register(c)

    def unregister(self) -> None:
        for c in self._collectors:
            with contextlib.suppress(KeyError):
                self.registry.unregister(c)


class MetricsServer:
    """``/metrics`` over HTTP on ``address:port`` in a daemon thread (prometheus_client's WSGI server)."""

    def __init__(self, registry: CollectorRegistry, address: str, port: int) -> None:
        self.registry = registry
        self.address = address
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        server, thread = start_http_server(self.port, addr=self.address, registry=self.registry)
        self._server, self._thread = server, thread
        self.port = int(server.server_port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/metrics"
