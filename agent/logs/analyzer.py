# SPDX-License-Identifier: Apache-2.0
"""The log analysis stages as plain objects (no threads): structure raw lines into ``LogEntry``
events, run the malicious-sequence rules, keep sessions, learn per-image sequence models and
score closed sessions, and evaluate Sigma rules over audit/process/network events."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from agent.events import AuditEvent, ContainerRef, Event, LogEntry
from agent.findings import Finding, Severity, Source
from agent.logs.grok import DEFAULT_GROK_DIR
from agent.logs.rules import DEFAULT_SEQUENCE_DIR, RuleMatch, SequenceEngine, load_rules
from agent.logs.session_model import SessionModel, SessionParams
from agent.logs.sessions import Session, SessionTracker, event_symbol, session_key
from agent.logs.sigma import DEFAULT_SIGMA_DIR, SigmaEngine, SigmaMatch
from agent.logs.structure import Structurer
from agent.logs.templates import TemplateCache
from agent.settings.logs import LogsSettings

log = structlog.get_logger("agent.logs")

ANOMALY_DETECTOR = "RG-LOG-0100"


@dataclass
class GroupModel:
    """Learning buffer, then fitted model, of one image."""

    learning: list[list[str]] = field(default_factory=list)
    model: SessionModel | None = None


class LogAnalyzer:
    """Everything the logs component does to one line or event, callable synchronously."""

    def __init__(self, settings: LogsSettings) -> None:
        self.settings = settings
        # The miner's similarity adapts to message length and it routes by the first token
        # (docs/logs.md, "Templates from raw lines").
        self.templates = TemplateCache(max_clusters=settings.max_templates)
        self.structurer = Structurer(
            patterns=settings.patterns,
            grok_dirs=(DEFAULT_GROK_DIR, *settings.grok_dirs),
            templates=self.templates,
            max_line=settings.max_line_bytes,
            image_patterns=settings.image_patterns,
        )
        for name, why in self.structurer.unsupported.items():
            log.error("grok_pattern_rejected", pattern=name, reason=why[:300])
        self.key_regex = re.compile(settings.session_key_regex) if settings.session_key_regex else None
        self.sessions = SessionTracker(settings.session_gap_seconds, settings.session_max_events)
        self.rule_errors: dict[str, str] = {}
        self.engine = SequenceEngine([])
        if settings.sequence_rules:
            rules, self.rule_errors = load_rules((DEFAULT_SEQUENCE_DIR, *settings.sequence_rule_dirs))
            self.engine = SequenceEngine(rules)
            for where, why in self.rule_errors.items():
                log.error("sequence_rule_rejected", rule=where, reason=why[:300])
        self.sigma = (
            SigmaEngine.load_isolated((DEFAULT_SIGMA_DIR, *settings.sigma_rule_dirs))
            if settings.sigma
            else SigmaEngine()
        )
        for where, why in self.sigma.unsupported.items():
            log.warning("sigma_rule_unsupported", rule=where, reason=why[:300])
        self.groups: dict[str, GroupModel] = {}
        self.counts: Counter[str] = Counter()

    # --- structuring ---------------------------------------------------------------------
    def entry(self, container: ContainerRef | None, ts: float, stream: str, data: bytes | str) -> LogEntry:
        """One raw line → a ``LogEntry`` (fields sanitised and capped)."""
        group = (container.image or container.name) if container else ""
        s = self.structurer.structure(data, key=group)
        self.counts["entries"] += 1
        return LogEntry(
            ts=ts,
            container=container,
            line=s.line,
            stream=stream if stream in ("stdout", "stderr") else "stdout",
            template_id=s.template_id,
            template=s.template,
            fields=s.fields,
            pattern=s.pattern,
        )

    # --- analysis ------------------------------------------------------------------------
    def on_log(self, e: LogEntry) -> list[Finding]:
        """Rules and sessions for one entry; findings for completed rules and closed sessions."""
        cid = e.container.id if e.container else ""
        findings = [
            self._rule_finding(e.container, m) for m in self.engine.feed(cid, e.ts, e.line, e.template, e.fields)
        ]
        key = session_key(e.fields, e.line, self.settings.session_key_fields, self.key_regex)
        if key:
            group = (e.container.image or e.container.name) if e.container else ""
            closed = self.sessions.add(group, cid, key, e.ts, event_symbol(e.template_id, e.fields), e.line)
            findings.extend(self._sessions_closed(closed, e.container))
        return findings

    def tick(self, now: float, container_of: dict[str, ContainerRef] | None = None) -> list[Finding]:
        """Close idle sessions and score them."""
        out: list[Finding] = []
        for s in self.sessions.expire(now):
            out.extend(self._sessions_closed([s], (container_of or {}).get(s.container_id)))
        return out

    def _sessions_closed(self, closed: Iterable[Session], container: ContainerRef | None) -> list[Finding]:
        out: list[Finding] = []
        if not self.settings.anomaly:
            return out
        for s in closed:
            self.counts["sessions"] += 1
            g = self.groups.setdefault(s.group, GroupModel())
            if g.model is None:
                g.learning.append(self._resolved(s.symbols))
                if len(g.learning) >= self.settings.learn_sessions:
                    g.model = SessionModel(self._params()).fit(g.learning)
                    g.learning = []
                    log.info(
                        "session_model_fitted",
                        group=s.group[:200],
                        sessions=g.model.sessions,
                        cv_false_positive_rate=round(g.model.cv_fpr, 5),
                    )
                continue
            score, anomalous, why = g.model.score(self._resolved(s.symbols))
            if anomalous:
                self.counts["anomalous_sessions"] += 1
                out.append(
                    Finding(
                        container=container if container and container.id == s.container_id else None,
                        source=Source.LOGS,
                        detector_id=ANOMALY_DETECTOR,
                        severity=Severity.HIGH if len(why[0].get("flagged", ())) > 1 else Severity.MEDIUM,
                        summary=f"log session {s.key[:80]} deviates from normal sessions of {s.group[:80]}",
                        evidence={
                            "session": s.key,
                            "score": score,
                            "events": len(s.symbols),
                            "patterns": why[:10],
                            "lines": s.lines[:10],
                            "start": s.start,
                            "end": s.end,
                        },
                    )
                )
        return out

    def _resolved(self, symbols: list[str]) -> list[str]:
        """Symbols with template ids that merged since the entry was made mapped to the live id."""
        out = []
        for sym in symbols:
            head, sep, rest = sym.partition("/")
            if head[1:].isdigit():
                head = f"T{self.templates.resolve(int(head[1:]))}"
            out.append(head + sep + rest)
        return out

    def _params(self) -> SessionParams:
        # The verdict is calibrated to the target false-positive rate; `ngram` is the order of
        # the next-event model.
        return SessionParams(order=self.settings.ngram, target_fpr=self.settings.anomaly_target_fpr)

    @staticmethod
    def _rule_finding(container: ContainerRef | None, m: RuleMatch) -> Finding:
        return Finding(
            container=container,
            source=Source.LOGS,
            detector_id=m.rule.id,
            severity=m.rule.severity,
            summary=f"{m.rule.title} ({m.rule.group_by} {m.actor[:80]})",
            evidence={
                "rule": m.rule.id,
                "actor": m.actor,
                "lines": list(m.evidence),
                "first_ts": m.first_ts,
                "last_ts": m.last_ts,
                "window_seconds": m.rule.window_seconds,
            },
            mitre=m.rule.mitre,
        )

    def on_event(self, e: Event) -> list[Finding]:
        """Sigma rules over an audit, process or network event."""
        return [self._sigma_finding(m) for m in self.sigma.evaluate(e)]

    @staticmethod
    def _sigma_finding(m: SigmaMatch) -> Finding:
        e = m.event
        evidence: dict[str, Any] = {
            "rule_title": m.rule.title,
            "rule_file": Path(m.rule.source_file).name,
            "event": e.kind,
        }
        for name in ("pid", "comm", "filename", "argv", "exe", "syscall", "paths", "daddr", "dport"):
            v = getattr(e, name, None)
            if v not in (None, "", ()):
                evidence[name] = list(v) if isinstance(v, tuple) else v
        return Finding(
            container=e.container,
            source=Source.AUDIT if isinstance(e, AuditEvent) else Source.RULE,
            detector_id=f"SIGMA-{m.rule.id}",
            severity=m.rule.severity,
            summary=f"Sigma: {m.rule.title}",
            evidence=evidence,
            mitre=m.rule.mitre,
        )

    # --- persistence -------------------------------------------------------------------
    def models_dump(self) -> dict[str, Any]:
        return {g: gm.model.to_dict() for g, gm in self.groups.items() if gm.model is not None}

    def models_load(self, data: dict[str, Any]) -> None:
        """Restore fitted models; a model of another format is dropped (that group relearns)."""
        for g, d in data.items():
            try:
                self.groups[g] = GroupModel(model=SessionModel.from_dict(d))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("session_model_dropped", group=str(g)[:200], reason=str(exc)[:200])

    def status(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "patterns_matched": dict(self.structurer.matched),
            "sanitized": self.structurer.sanitize_stats.snapshot(),
            "templates": len(self.templates.templates()),
            "template_cache": {"hits": self.templates.hits, "misses": self.templates.misses},
            "open_sessions": len(self.sessions.open),
            "models": {
                g: (gm.model.sessions if gm.model else f"learning {len(gm.learning)}") for g, gm in self.groups.items()
            },
            "grok_rejected": dict(self.structurer.unsupported),
            "sequence_rules": [r.id for r in self.engine.rules],
            "sequence_rule_errors": self.rule_errors,
            "sigma": {"loaded": len(self.sigma.rules), "unsupported": self.sigma.unsupported},
        }
