# SPDX-License-Identifier: Apache-2.0
"""Config section ``outputs``: logs, alerts file, webhook, Prometheus, Elastic Common Schema."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from agent.settings.base import Section

# The least severe finding an output takes; action results always go (they follow a finding).
MinSeverity = Literal["info", "low", "medium", "high", "critical"]


class WebhookSettings(Section):
    """POST findings (and action results) as JSON to ``url``; "" disables it."""

    # POST findings (JSON) here; '' = no webhook.
    url: str = ""
    # riskguard: alert records, a JSON array of up to batch_size per POST. falco: one Falco alert
    # per POST, the body Falcosidekick's / endpoint takes (action results are not sent).
    format: Literal["riskguard", "falco"] = "riskguard"
    # Findings below this severity are not sent.
    min_severity: MinSeverity = "low"
    # Records per POST in the riskguard format (1: one object per POST, not an array).
    batch_size: int = Field(default=50, ge=1)
    # A partial batch is sent after this many seconds.
    flush_seconds: float = Field(default=1.0, gt=0)
    # Sent as "Authorization: Bearer <file content>" when set (keep the file 0600).
    token_file: Path | None = None
    # Timeout of one delivery attempt.
    timeout_seconds: float = Field(default=5.0, gt=0)
    # Attempts after the first one; the wait doubles from backoff_seconds up to backoff_max_seconds.
    max_retries: int = Field(default=3, ge=0)
    # First retry delay; it doubles on each retry.
    backoff_seconds: float = Field(default=0.5, gt=0)
    # Longest delay between two retries.
    backoff_max_seconds: float = Field(default=30.0, gt=0)
    # Objects waiting to be sent; when full, new ones are dropped and counted (detection never waits).
    queue_size: int = Field(default=1000, ge=1)
    # Also send action results (freeze, quarantine, release); riskguard format only.
    send_actions: bool = True

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if v and urlsplit(v).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        return v


class MetricsSettings(Section):
    """Prometheus exposition on http://<address>:<port>/metrics."""

    enabled: bool = True
    # Address of the Prometheus endpoint (loopback unless allow_remote).
    address: str = "127.0.0.1"
    # Port of the Prometheus endpoint (0: any free port, for tests).
    port: int = Field(default=9464, ge=0, le=65535)  # 0: any free port (tests)
    # Serving on a non-loopback address must be asked for explicitly.
    allow_remote: bool = False

    @field_validator("address")
    @classmethod
    def _ip(cls, v: str) -> str:
        ipaddress.ip_address(v)
        return v

    @model_validator(mode="after")
    def _loopback_unless_allowed(self) -> MetricsSettings:
        if not ipaddress.ip_address(self.address).is_loopback and not self.allow_remote:
            raise ValueError(f"address {self.address} is not loopback: set allow_remote: true to serve it")
        return self


class EcsSettings(Section):
    """Findings and action results as Elastic Common Schema documents."""

    # A JSON-lines file of ECS documents (for Filebeat / Logstash); null disables it.
    file: Path | None = None
    # Findings below this severity are not written or shipped.
    min_severity: MinSeverity = "info"
    # The ECS file is rotated at this size.
    max_bytes: int = Field(default=50 * 1024 * 1024, ge=4096)
    # Rotated ECS files kept.
    keep: int = Field(default=5, ge=1)
    # An Elasticsearch (or compatible) base URL; documents go to <url>/_bulk. "" disables it.
    elasticsearch_url: str = ""
    # Elasticsearch index or data stream the documents go to.
    index: str = "logs-riskguard.alerts-default"
    # "Authorization: ApiKey <file content>" when set.
    api_key_file: Path | None = None
    # Documents per _bulk request.
    batch_size: int = Field(default=200, ge=1)
    # A partial batch is sent after this many seconds.
    flush_seconds: float = Field(default=2.0, gt=0)
    # Documents waiting for Elasticsearch; beyond, they are counted as dropped.
    queue_size: int = Field(default=5000, ge=1)
    # Timeout of one _bulk request.
    timeout_seconds: float = Field(default=10.0, gt=0)
    # Retries of a failed _bulk request.
    max_retries: int = Field(default=5, ge=0)
    # First retry delay; it doubles on each retry.
    backoff_seconds: float = Field(default=0.5, gt=0)
    # Longest delay between two retries.
    backoff_max_seconds: float = Field(default=30.0, gt=0)
    # Verify Elasticsearch's TLS certificate.
    verify_tls: bool = True

    @field_validator("elasticsearch_url")
    @classmethod
    def _http(cls, v: str) -> str:
        if v and urlsplit(v).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        return v


class FalcoSettings(Section):
    """Findings as Falco JSON alerts (Falcosidekick / Talon schema) on stdout and/or a file."""

    # A JSON-lines file of Falco alerts (what falco -o json_output=true writes); null disables it.
    file: Path | None = None
    # The Falco alerts file is rotated at this size.
    max_bytes: int = Field(default=50 * 1024 * 1024, ge=4096)
    # Rotated Falco alerts files kept.
    keep: int = Field(default=5, ge=1)
    # One Falco alert per line on stdout, mixed with the agent's JSON log lines (a log collector
    # tells them apart by the "rule" and "output_fields" keys).
    stdout: bool = False
    # Findings below this severity are not written.
    min_severity: MinSeverity = "low"


class OutputsSettings(Section):
    """Where findings and actions go besides the journal: alerts file, webhook, Prometheus, ECS, Falco."""

    # One JSON object per finding, rotated by size: alerts.jsonl → alerts.jsonl.1 … .<keep>; a
    # relative path is under state.dir; null: no alerts file.
    alerts_file: Path | None = Path("alerts.jsonl")
    # The alerts file is rotated at this size.
    alerts_max_bytes: int = Field(default=50 * 1024 * 1024, ge=4096)
    # Rotated alerts files kept (alerts.jsonl.1 … .N).
    alerts_keep: int = Field(default=5, ge=1)
    # Findings below this severity are not written to the alerts file (they stay in the store).
    alerts_min_severity: MinSeverity = "info"
    # Findings below this severity get no log line.
    log_min_severity: MinSeverity = "info"
    # Each finding and action result also as a structured log line (journald keeps the fields).
    log_findings: bool = True
    # host.name in alerts and ECS documents; "" = $NODE_NAME, else the kernel's hostname.
    host_name: str = ""
    webhook: WebhookSettings = WebhookSettings()
    metrics: MetricsSettings = MetricsSettings()
    ecs: EcsSettings = EcsSettings()
    falco: FalcoSettings = FalcoSettings()
