# SPDX-License-Identifier: Apache-2.0
"""Config section ``logs``: tailing, structuring, sequence models."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from agent.settings.base import Section
from agent.settings.log_patterns import DEFAULT_PATTERNS


class LogsSettings(Section):
    """Container logs: tailing, grok + template structuring, sessions, sequence models, rules."""

    enabled: bool = True
    # Seconds between two reads of every container log.
    poll_seconds: float = Field(default=1.0, gt=0)
    # Docker log drivers to tail (json-file and local are implemented); CRI files under
    # /var/log/pods are tailed when `cri` is true.
    docker_drivers: tuple[Literal["json-file", "local"], ...] = ("json-file", "local")
    # Tail CRI log files under /var/log/pods (Kubernetes nodes).
    cri: bool = True
    # Where to start a log that has no stored offset yet: its beginning or its current end.
    start_at: Literal["beginning", "end"] = "beginning"
    # Longer logical lines are cut to this many bytes (counted as truncated).
    max_line_bytes: int = Field(default=16384, ge=256, le=1 << 20)
    # A raw record (one json-file/CRI line, one local frame) longer than this is skipped.
    max_record_bytes: int = Field(default=1 << 20, ge=4096)
    # At most this many lines read per container per poll (the rest wait for the next poll).
    max_lines_per_poll: int = Field(default=10000, ge=1)
    # Per-container token bucket: lines beyond it are dropped and counted (0 = unlimited).
    rate_limit_lines_per_second: float = Field(default=2000.0, ge=0)
    # Burst allowance of the per-container line rate limit.
    rate_limit_burst: float = Field(default=10000.0, ge=0)
    # Extra grok pattern directories (Logstash syntax), loaded after the shipped config/grok.
    grok_dirs: tuple[Path, ...] = ()
    # Parsers tried in order (JSON, LOGFMT or a grok pattern name); per image the last one that
    # matched is tried first.
    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    # Parsers per image, by glob on the image name ("nginx*": [NGINXACCESS, NGINXERROR]): matching
    # images use only these, in this order; other images detect from `patterns`.
    image_patterns: dict[str, tuple[str, ...]] = {}
    # Most templates kept per image (least recently used are evicted).
    max_templates: int = Field(default=4096, ge=16)
    # Sessions: entries of one container grouped by the first present key field (or the first
    # group of `session_key_regex` when set), cut after `session_gap_seconds` of silence.
    session_key_fields: tuple[str, ...] = ("request_id", "trace_id", "session_id", "client_ip", "user")
    # A regex whose first group is the session key (e.g. 'req=(\\S+)'); '' = use session_key_fields.
    session_key_regex: str = ""
    # A session ends after this many seconds without an entry.
    session_gap_seconds: float = Field(default=300.0, gt=0)
    # A session is cut (and scored) after this many entries.
    session_max_events: int = Field(default=200, ge=2)
    # Sequence models per image: learnt from the first `learn_sessions` sessions, then scoring.
    anomaly: bool = True
    # Normal sessions per image learned before sessions are scored.
    learn_sessions: int = Field(default=200, ge=5)
    # Share of normal sessions the calibrated session model may flag (its threshold is the
    # matching percentile of cross-validated normal scores; 0.001 = the 99.9th percentile).
    anomaly_target_fpr: float = Field(default=0.001, gt=0, lt=0.5)
    # n of the next-event n-gram model.
    ngram: int = Field(default=3, ge=2, le=6)
    # Malicious-sequence rules (YAML) and Sigma rules: shipped sets plus these directories.
    sequence_rules: bool = True
    # Extra folders of malicious-sequence rule YAML files (the shipped config/rules/sequences always loads).
    sequence_rule_dirs: tuple[Path, ...] = ()
    # Evaluate Sigma rules (linux auditd, process_creation, network_connection) on audit, process and network events.
    sigma: bool = True
    # Extra folders of Sigma rules (the shipped config/rules/sigma always loads).
    sigma_rule_dirs: tuple[Path, ...] = ()
