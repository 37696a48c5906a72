# SPDX-License-Identifier: Apache-2.0
"""The ``logs`` component: tails container logs every ``logs.poll_seconds``, publishes
``LogEntry`` events, analyses them (sequence rules, sessions, sequence models) and evaluates
Sigma rules over ``AuditEvent`` / ``ProcessExec`` / ``NetConnect`` events from the bus.

Findings: source ``logs`` for sequence rules and anomalous sessions; ``audit`` (audit events)
or ``rule`` (process/network events) for Sigma matches. Template-miner state and fitted models
are kept in the store (``kv`` namespace ``logs.state``) so template ids survive restarts.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from agent.context import AgentContext
from agent.events import Event, LogEntry
from agent.logs.analyzer import LogAnalyzer
from agent.pipeline import Periodic
from agent.sources.logset import TailerSet

log = structlog.get_logger("agent.logs")

STATE_NS = "logs.state"


class _Metrics(Collector):
    def __init__(self, comp: LogsComponent) -> None:
        self.comp = comp

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        totals = self.comp.tailers.stats()["totals"] if self.comp.tailers else {}
        c = CounterMetricFamily("riskguard_log_lines", "Container log lines by outcome", labels=["outcome"])
        c.add_metric(["read"], float(totals.get("lines", 0)))
        for k in ("truncated", "rate_dropped", "malformed", "oversized_records"):
            c.add_metric([k], float(totals.get(k, 0)))
        yield c
        m = CounterMetricFamily("riskguard_log_malformed", "Log records and lines skipped by reason", labels=["reason"])
        for reason, count in sorted(self.comp.malformed_by_reason().items()):
            m.add_metric([reason], float(count))
        yield m
        g = GaugeMetricFamily("riskguard_log_tailers", "Container logs being tailed")
        g.add_metric([], float(len(self.comp.tailers.tailers) if self.comp.tailers else 0))
        yield g


class LogsComponent:
    """Threads: one tail loop (daemon thread). Analysis runs on the event bus's thread."""

    name = "logs"

    def __init__(self, ctx: AgentContext) -> None:
        self.ctx = ctx
        self.settings = ctx.config.logs
        self.analyzer = LogAnalyzer(self.settings)
        st = self.settings
        self.tailers = TailerSet(
            paths=ctx.paths,
            registry=ctx.registry,
            store=ctx.store,
            options={
                "max_line": st.max_line_bytes,
                "max_record": st.max_record_bytes,
                "start_at": st.start_at,
                "rate_per_second": st.rate_limit_lines_per_second,
                "burst": st.rate_limit_burst,
            },
            drivers=tuple(st.docker_drivers),
            cri=st.cri,
            max_lines_per_poll=st.max_lines_per_poll,
        )
        self._timer = Periodic("logs-tail", st.poll_seconds, self._poll, run_first=True)
        self._lock = threading.Lock()  # analyzer state: bus thread vs tail thread
        self._tail_lock = threading.Lock()  # one poll at a time (the loop, or a direct call)
        self.published = 0
        self.publish_dropped = 0
        self.malformed: Counter[str] = Counter()  # lines skipped after reading, by reason
        self.findings = 0
        self.last_poll = 0.0
        self._last_save = time.monotonic()

    # --- lifecycle -----------------------------------------------------------------------
    def start(self, ctx: AgentContext) -> None:
        self._restore()
        pruned = self.tailers.prune_offsets()
        if pruned:
            log.info("log_offsets_pruned", count=pruned)
        ctx.control("logs.status", lambda _p: self.status())
        ctx.control("logs.rules", lambda _p: self.rules())
        try:
            ctx.metrics.register(_Metrics(self))
        except ValueError:
            pass  # registered by an earlier instance on the same registry (tests)
        self._timer.start()
        log.info(
            "logs_started",
            sigma_loaded=len(self.analyzer.sigma.rules),
            sigma_unsupported=len(self.analyzer.sigma.unsupported),
            sequence_rules=len(self.analyzer.engine.rules),
        )

    def stop(self) -> None:
        self._timer.stop(10)
        self.tailers.close()
        self._save()

    def status(self) -> Mapping[str, Any]:
        with self._lock:
            a = self.analyzer.status()
        return {
            "tail": self.tailers.stats(),
            "malformed": self.malformed_by_reason(),
            "published": self.published,
            "publish_dropped": self.publish_dropped,
            "findings": self.findings,
            "last_poll": self.last_poll,
            "analysis": a,
        }

    def malformed_by_reason(self) -> dict[str, int]:
        """Records and lines skipped as malformed, by reason (tail and structuring)."""
        out = Counter(self.tailers.stats()["malformed_by_reason"])
        out.update(self.malformed)
        deep = self.analyzer.structurer.sanitize_stats.json_too_deep  # structured as plain text
        if deep:
            out["json_too_deep"] = deep
        return dict(out)

    def rules(self) -> dict[str, Any]:
        return {
            "sigma": self.analyzer.sigma.report(),
            "sequences": {
                "loaded": [{"id": r.id, "title": r.title, "mitre": r.mitre} for r in self.analyzer.engine.rules],
                "errors": self.analyzer.rule_errors,
            },
        }

    # --- loop ----------------------------------------------------------------------------
    def poll_once(self) -> int:
        """Read every log once and publish its lines; returns how many were published."""
        with self._tail_lock:
            return self._poll_locked()

    def _poll_locked(self) -> int:
        raws = self.tailers.poll()
        n = 0
        for raw in raws:
            try:
                with self._lock:
                    entry = self.analyzer.entry(raw.target.container, raw.ts, raw.stream, raw.data)
            except Exception as exc:  # one line no parser foresaw is skipped, never the batch
                self.malformed[f"structure_{type(exc).__name__}"] += 1
                log.warning("log_line_skipped", container_id=raw.target.key, error=repr(exc)[:200])
                continue
            if self.ctx.publish(entry):
                n += 1
            else:
                self.publish_dropped += 1
        self.published += n
        self.last_poll = time.time()
        with self._lock:
            closed = self.analyzer.tick(time.time(), {c.id: c.ref() for c in self.ctx.registry.all()})
        self._report(closed)
        if time.monotonic() - self._last_save > 300:
            self._save()
        return n

    def _poll(self) -> None:
        try:
            self.poll_once()
        except Exception as exc:  # keep tailing whatever one poll hit
            log.error("logs_poll_failed", error=repr(exc)[:300])

    def on_log(self, e: LogEntry) -> None:
        """LogEntry handler: sequence rules and sessions."""
        with self._lock:
            found = self.analyzer.on_log(e)
        self._report(found)

    def on_event(self, e: Event) -> None:
        """AuditEvent / ProcessExec / NetConnect handler: Sigma rules."""
        self._report(self.analyzer.on_event(e))

    def _report(self, findings: list[Any]) -> None:
        for f in findings:
            self.findings += 1
            self.ctx.report(f)
            log.info(
                "log_finding_reported", detector_id=f.detector_id, container_id=f.container_id, summary=f.summary[:200]
            )

    # --- state ---------------------------------------------------------------------------
    def _save(self) -> None:
        try:
            with self._lock:
                blob = self.analyzer.templates.dump()
                models = self.analyzer.models_dump()
            self.ctx.store.kv_put(STATE_NS, "templates", blob.encode())
            self.ctx.store.kv_put_json(STATE_NS, "models", models)
            self._last_save = time.monotonic()
        except Exception as exc:
            log.warning("logs_state_save_failed", error=repr(exc)[:300])

    def _restore(self) -> None:
        try:
            blob = self.ctx.store.kv_get(STATE_NS, "templates")
            if blob:
                self.analyzer.templates.load(blob.decode())
            models = self.ctx.store.kv_get_json(STATE_NS, "models")
            if isinstance(models, dict):
                self.analyzer.models_load(models)
        except Exception as exc:
            log.warning("logs_state_restore_failed", error=repr(exc)[:300])


def build(ctx: AgentContext) -> LogsComponent | None:
    """The logs component, or None when ``logs.enabled`` is false."""
    if not ctx.config.logs.enabled:
        return None
    return LogsComponent(ctx)
