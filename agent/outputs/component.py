# SPDX-License-Identifier: Apache-2.0
"""The outputs component: every finding and action result to logs, the alerts file, a webhook,
Prometheus, Elastic Common Schema (a JSON-lines file and/or Elasticsearch ``_bulk``) and Falco's
alert format (stdout, a file, or the webhook in ``format: falco``). Each output drops findings
below its own ``min_severity``.

Wiring (``agent.wiring``): the response engine is given this component and reports each finding
with its verdict and action through ``emit_finding(finding, verdict, action)`` and each action
result through ``emit_action(result)``; with the response disabled, ``emit_finding`` is
subscribed to the findings bus instead. Nothing here blocks the caller for longer than a local
file append: the network outputs sit behind bounded queues.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from agent.context import AgentContext
from agent.findings import ActionResult, Finding, Verdict
from agent.outputs.alert import action_record, finding_record
from agent.outputs.ecs import action_to_ecs, finding_to_ecs
from agent.outputs.evidence import at_least
from agent.outputs.falco import finding_to_falco
from agent.outputs.files import RotatingJsonl
from agent.outputs.metrics import MetricsServer, OutputMetrics
from agent.outputs.shipper import BulkSender, Shipper, WebhookSender
from agent.settings.outputs import OutputsSettings

log = structlog.get_logger("agent.outputs")

_LEVEL = {"info": "info", "low": "info", "medium": "warning", "high": "warning", "critical": "error"}


def _host_name(settings: OutputsSettings) -> str:
    return settings.host_name or os.environ.get("NODE_NAME", "") or socket.gethostname()


class Outputs:
    """Fans findings and action results out to every configured output."""

    name = "outputs"

    def __init__(
        self,
        ctx: AgentContext,
        settings: OutputsSettings,
        peers: Callable[[], Mapping[str, Mapping[str, Any]]] = dict,
        exposition: CollectorRegistry | None = None,
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.peers = peers  # every component's status, for the lost-events metric
        self.exposition = exposition or ctx.metrics  # the registry served on /metrics
        self.host = _host_name(settings)
        self.alerts: RotatingJsonl | None = None
        self.ecs_file: RotatingJsonl | None = None
        self.falco_file: RotatingJsonl | None = None
        self.webhook: Shipper | None = None
        self.elastic: Shipper | None = None
        self._senders: list[Any] = []
        self.metrics: OutputMetrics | None = None
        self.metrics_server: MetricsServer | None = None
        self.errors: dict[str, str] = {}
        self.findings_emitted = 0
        self.actions_emitted = 0
        self.below_min_severity: dict[str, int] = {}  # output -> findings it was not given
        self._lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------
    def start(self, ctx: AgentContext) -> None:
        s = self.settings
        if s.alerts_file is not None:
            self.alerts = RotatingJsonl(s.alerts_file, s.alerts_max_bytes, s.alerts_keep)
        if s.ecs.file is not None:
            self.ecs_file = RotatingJsonl(s.ecs.file, s.ecs.max_bytes, s.ecs.keep)
        if s.falco.file is not None:
            self.falco_file = RotatingJsonl(s.falco.file, s.falco.max_bytes, s.falco.keep)
        # Each network output is set up on its own: a missing token file or a taken port
        # disables that output (reported in status), never the alerts file and the logs.
        if s.webhook.url:
            try:
                self._start_webhook()
            except OSError as exc:
                self.errors["webhook"] = str(exc)
                log.error("output_unavailable", output="webhook", error=str(exc))
        if s.ecs.elasticsearch_url:
            try:
                self._start_elastic()
            except OSError as exc:
                self.errors["elasticsearch"] = str(exc)
                log.error("output_unavailable", output="elasticsearch", error=str(exc))
        self.metrics = OutputMetrics(ctx.metrics, ctx, self._shipper_status, self.peers)
        if s.metrics.enabled:
            server = MetricsServer(self.exposition, s.metrics.address, s.metrics.port)
            try:
                server.start()
                self.metrics_server = server
            except OSError as exc:  # EADDRINUSE: another agent or exporter holds the port
                self.errors["metrics"] = f"{s.metrics.address}:{s.metrics.port}: {exc}"
                log.error("output_unavailable", output="metrics", error=self.errors["metrics"])
        log.info(
            "outputs_started",
            alerts=str(s.alerts_file or ""),
            webhook=bool(self.webhook),
            elasticsearch=bool(self.elastic),
            ecs_file=str(s.ecs.file or ""),
            falco_file=str(s.falco.file or ""),
            falco_stdout=s.falco.stdout,
            metrics=self.metrics_server.url if self.metrics_server else "",
        )

    def _start_webhook(self) -> None:
        w = self.settings.webhook
        sender = WebhookSender(w.url, w.timeout_seconds, w.token_file, array=w.format == "riskguard")
        self._senders.append(sender)
        self.webhook = Shipper(
            "webhook",
            sender,
            queue_size=w.queue_size,
            batch_size=w.batch_size,
            flush_seconds=w.flush_seconds,
            max_retries=w.max_retries,
            backoff_seconds=w.backoff_seconds,
            backoff_max_seconds=w.backoff_max_seconds,
        )
        self.webhook.start()

    def _start_elastic(self) -> None:
        e = self.settings.ecs
        bulk = BulkSender(e.elasticsearch_url, e.index, e.timeout_seconds, e.api_key_file, e.verify_tls)
        self._senders.append(bulk)
        self.elastic = Shipper(
            "elasticsearch",
            bulk,
            queue_size=e.queue_size,
            batch_size=e.batch_size,
            flush_seconds=e.flush_seconds,
            max_retries=e.max_retries,
            backoff_seconds=e.backoff_seconds,
            backoff_max_seconds=e.backoff_max_seconds,
        )
        self.elastic.start()

    def stop(self) -> None:
        for shipper in (self.webhook, self.elastic):
            if shipper is not None:
                shipper.stop()
        for sender in self._senders:
            sender.close()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        if self.metrics is not None:
            self.metrics.unregister()
        for f in (self.alerts, self.ecs_file, self.falco_file):
            if f is not None:
                f.close()

    def status(self) -> dict[str, Any]:
        return {
            "findings_emitted": self.findings_emitted,
            "actions_emitted": self.actions_emitted,
            "alerts": self.alerts.status() if self.alerts else None,
            "ecs_file": self.ecs_file.status() if self.ecs_file else None,
            "falco_file": self.falco_file.status() if self.falco_file else None,
            "below_min_severity": dict(self.below_min_severity),
            "webhook": self.webhook.status() if self.webhook else None,
            "elasticsearch": self.elastic.status() if self.elastic else None,
            "metrics": self.metrics_server.url if self.metrics_server else None,
            "errors": dict(self.errors),
        }

    # --- API for the response engine and scanners ----------------------------------------
    def emit_finding(
        self,
        finding: Finding | Mapping[str, Any],
        verdict: Verdict | Mapping[str, Any] | str | None = None,
        action: ActionResult | Mapping[str, Any] | str | None = None,
    ) -> dict[str, Any]:
        """Send one finding (with the verdict and action taken) to every output; return the record."""
        rec = finding_record(finding, verdict, action, host=self.host)
        s = self.settings
        with self._lock:
            self.findings_emitted += 1
        if self.metrics is not None:
            self.metrics.findings.labels(rec["source"], rec["severity"]).inc()
        if s.log_findings and self._takes("log", rec, s.log_min_severity):
            level = _LEVEL.get(rec["severity"], "warning")
            fields = {k: v for k, v in rec.items() if k not in ("type", "ts", "time", "id")}
            getattr(log, level)("finding_reported", finding_id=rec["id"], **fields)
        if self.alerts is not None and self._takes("alerts", rec, s.alerts_min_severity):
            self.alerts.write(rec)
        if (self.ecs_file is not None or self.elastic is not None) and self._takes("ecs", rec, s.ecs.min_severity):
            doc = finding_to_ecs(rec)
            if self.ecs_file is not None:
                self.ecs_file.write(doc)
            if self.elastic is not None:
                self.elastic.offer(doc)
        falco_wanted = s.falco.stdout or self.falco_file is not None
        webhook_falco = self.webhook is not None and s.webhook.format == "falco"
        take_falco = falco_wanted and self._takes("falco", rec, s.falco.min_severity)
        falco = finding_to_falco(rec, self._labels(rec["container_id"])) if take_falco or webhook_falco else None
        if take_falco and falco is not None:
            if self.falco_file is not None:
                self.falco_file.write(falco)
            if s.falco.stdout:
                self._print(falco)
        if self.webhook is not None and self._takes("webhook", rec, s.webhook.min_severity):
            self.webhook.offer(falco if webhook_falco else rec)
        return rec

    def emit_action(self, result: ActionResult | Mapping[str, Any]) -> dict[str, Any]:
        """Send one action result to the log, metrics, webhook and ECS outputs; return the record."""
        rec = action_record(result, host=self.host)
        with self._lock:
            self.actions_emitted += 1
        if self.metrics is not None:
            self.metrics.actions.labels(rec.get("kind", ""), rec.get("result", "")).inc()
        if self.settings.log_findings:
            fields = {k: v for k, v in rec.items() if k not in ("type", "ts", "time")}
            fields["action_kind"] = fields.pop("kind", "")
            (log.info if rec.get("ok") is not False else log.warning)("action_reported", **fields)
        if self.ecs_file is not None or self.elastic is not None:
            doc = action_to_ecs(rec)
            if self.ecs_file is not None:
                self.ecs_file.write(doc)
            if self.elastic is not None:
                self.elastic.offer(doc)
        w = self.settings.webhook
        if self.webhook is not None and w.send_actions and w.format == "riskguard":
            self.webhook.offer(rec)
        return rec

    # --- internals -----------------------------------------------------------------------
    def _takes(self, output: str, rec: Mapping[str, Any], minimum: str) -> bool:
        """True when ``rec`` is at or above ``minimum``; else count it for ``output``."""
        if at_least(str(rec.get("severity", "")), minimum):
            return True
        with self._lock:
            self.below_min_severity[output] = self.below_min_severity.get(output, 0) + 1
        return False

    def _labels(self, container_id: str) -> Mapping[str, str]:
        c = self.ctx.registry.get(container_id) if container_id else None
        return c.labels if c is not None else {}

    def _print(self, obj: Mapping[str, Any]) -> None:
        # One write per line under the lock: Falco lines never interleave with each other.
        line = json.dumps(obj, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            try:
                sys.stdout.write(line)
                sys.stdout.flush()
            except (OSError, ValueError):
                pass

    def _shipper_status(self) -> dict[str, dict[str, Any]]:
        return {s.name: s.status() for s in (self.webhook, self.elastic) if s is not None}


def build(
    ctx: AgentContext,
    peers: Callable[[], Mapping[str, Mapping[str, Any]]] = dict,
    exposition: CollectorRegistry | None = None,
) -> Outputs:
    """The outputs component (always on: the alerts file and logs are the minimum)."""
    settings = ctx.config.outputs
    if settings.alerts_file is not None:
        settings = settings.model_copy(update={"alerts_file": ctx.paths.in_state(settings.alerts_file)})
    return Outputs(ctx, settings, peers, exposition)
