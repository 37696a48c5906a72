# SPDX-License-Identifier: Apache-2.0
"""Malicious-sequence rules (YAML under ``config/rules/sequences/``) over structured entries.

A rule is an ordered list of steps matched per container and per actor (``group_by`` field,
e.g. the client ip) within ``window_seconds`` of the first step's first match::

    id: RG-LOG-0001
    title: Many failed logins then a success from one source
    mitre: T1110
    severity: high
    group_by: client_ip
    window_seconds: 600
    steps:
      - where: {auth_outcome: failure}
        min_count: 5
      - where: {auth_outcome: success}

``where`` maps a field (``_line`` is the line, ``_template`` the template) to a value (equal) or
to operators: ``in``, ``regex`` (case-insensitive search), ``gte``, ``lt``, ``exists``.
A step may also require ``same: [field, ...]`` (equal to the entry that completed the previous
step), ``min_distinct: {field: n}``, and ``same_entry: true`` (the entry that completed the
previous step may also satisfy this one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.findings import Severity
from agent.resources import data_dir

DEFAULT_SEQUENCE_DIR = data_dir("config", "rules", "sequences")
_OPS = {"in", "regex", "gte", "lt", "exists", "equals"}


class RuleError(ValueError):
    """A rule file that does not follow the format above."""


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any
    regex: re.Pattern[str] | None = None

    def test(self, entry: Mapping[str, Any]) -> bool:
        v = entry.get(self.field)
        if self.op == "exists":
            return (v is not None) == bool(self.value)
        if v is None:
            return False
        if self.op == "equals":
            return bool(v == self.value or str(v) == str(self.value))
        if self.op == "in":
            return bool(v in self.value or str(v) in {str(x) for x in self.value})
        if self.op == "regex":
            assert self.regex is not None
            return self.regex.search(str(v)) is not None
        try:
            num = float(v)
        except (TypeError, ValueError):
            return False
        if self.op == "gte":
            return num >= float(self.value)
        return num < float(self.value)


@dataclass(frozen=True)
class Step:
    conditions: tuple[Condition, ...]
    min_count: int = 1
    same: tuple[str, ...] = ()
    min_distinct: tuple[tuple[str, int], ...] = ()
    same_entry: bool = False


@dataclass(frozen=True)
class SequenceRule:
    id: str
    title: str
    mitre: str
    severity: Severity
    group_by: str
    window_seconds: float
    steps: tuple[Step, ...]
    source_file: str = ""


def _conditions(where: Any, where_from: str) -> tuple[Condition, ...]:
    if not isinstance(where, Mapping) or not where:
        raise RuleError(f"{where_from}: 'where' must be a non-empty mapping")
    out: list[Condition] = []
    for fname, spec in where.items():
        if isinstance(spec, Mapping):
            for op, val in spec.items():
                if op not in _OPS:
                    raise RuleError(f"{where_from}: unknown operator {op!r} on {fname}")
                rx = None
                if op == "regex":
                    try:
                        rx = re.compile(str(val), re.IGNORECASE)
                    except re.error as exc:
                        raise RuleError(f"{where_from}: bad regex on {fname}: {exc}") from None
                if op == "in" and not isinstance(val, list):
                    raise RuleError(f"{where_from}: 'in' on {fname} needs a list")
                out.append(Condition(str(fname), op, val, rx))
        else:
            out.append(Condition(str(fname), "equals", spec))
    return tuple(out)


def parse_rule(doc: Mapping[str, Any], source: str = "") -> SequenceRule:
    """Validate one rule document."""
    where_from = f"{source}:{doc.get('id', '?')}"
    for key in ("id", "title", "mitre", "severity", "steps"):
        if key not in doc:
            raise RuleError(f"{where_from}: missing {key!r}")
    unknown = set(doc) - {"id", "title", "mitre", "severity", "group_by", "window_seconds", "steps", "description"}
    if unknown:
        raise RuleError(f"{where_from}: unknown keys {sorted(unknown)}")
    steps_raw = doc["steps"]
    if not isinstance(steps_raw, list) or not steps_raw:
        raise RuleError(f"{where_from}: 'steps' must be a non-empty list")
    steps: list[Step] = []
    for i, s in enumerate(steps_raw):
        if not isinstance(s, Mapping):
            raise RuleError(f"{where_from}: step {i} is not a mapping")
        bad = set(s) - {"where", "min_count", "same", "min_distinct", "same_entry", "name"}
        if bad:
            raise RuleError(f"{where_from}: step {i} has unknown keys {sorted(bad)}")
        steps.append(
            Step(
                conditions=_conditions(s.get("where"), f"{where_from} step {i}"),
                min_count=int(s.get("min_count", 1)),
                same=tuple(str(x) for x in s.get("same", ())),
                min_distinct=tuple((str(k), int(v)) for k, v in dict(s.get("min_distinct", {})).items()),
                same_entry=bool(s.get("same_entry", False)),
            )
        )
    try:
        severity = Severity.parse(doc["severity"])
    except (KeyError, ValueError):
        raise RuleError(f"{where_from}: unknown severity {doc['severity']!r}") from None
    return SequenceRule(
        id=str(doc["id"]),
        title=str(doc["title"]),
        mitre=str(doc["mitre"]),
        severity=severity,
        group_by=str(doc.get("group_by", "client_ip")),
        window_seconds=float(doc.get("window_seconds", 600)),
        steps=tuple(steps),
        source_file=source,
    )


def load_rules(dirs: Iterable[Path] = (DEFAULT_SEQUENCE_DIR,)) -> tuple[list[SequenceRule], dict[str, str]]:
    """Every rule of ``*.yaml``/``*.yml`` files, and the files/rules that failed with why."""
    rules: list[SequenceRule] = []
    errors: dict[str, str] = {}
    seen: set[str] = set()
    for d in dirs:
        d = Path(d)
        files = sorted([*d.glob("*.yaml"), *d.glob("*.yml")]) if d.is_dir() else [d]
        for f in files:
            try:
                docs = list(yaml.safe_load_all(f.read_text(encoding="utf-8")))
            except (OSError, yaml.YAMLError) as exc:
                errors[str(f)] = f"cannot read: {exc}"
                continue
            for doc in docs:
                if doc is None:
                    continue
                try:
                    if not isinstance(doc, Mapping):
                        raise RuleError(f"{f}: a rule must be a mapping")
                    rule = parse_rule(doc, str(f))
                    if rule.id in seen:
                        raise RuleError(f"{f}: duplicate rule id {rule.id}")
                    seen.add(rule.id)
                    rules.append(rule)
                except RuleError as exc:
                    errors[f"{f}:{doc.get('id', '?') if isinstance(doc, Mapping) else '?'}"] = str(exc)
    return rules, errors


@dataclass
class _State:
    idx: int = 0
    count: int = 0
    start: float = 0.0
    distinct: dict[str, set[str]] = field(default_factory=dict)
    anchor: dict[str, Any] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RuleMatch:
    rule: SequenceRule
    container_id: str
    actor: str
    evidence: tuple[str, ...]
    first_ts: float
    last_ts: float


class SequenceEngine:
    """Runs every rule over entries; ``feed`` returns the rules an entry completed."""

    def __init__(self, rules: Iterable[SequenceRule], max_states: int = 100_000) -> None:
        self.rules = list(rules)
        self.max_states = max_states
        self.states: dict[tuple[str, str, str], _State] = {}
        self.evicted = 0

    def feed(
        self, container_id: str, ts: float, line: str, template: str, fields: Mapping[str, Any]
    ) -> list[RuleMatch]:
        entry = dict(fields)
        entry["_line"] = line
        entry["_template"] = template
        out: list[RuleMatch] = []
        for rule in self.rules:
            actor = entry.get(rule.group_by)
            if actor in (None, "", "-"):
                continue
            key = (rule.id, container_id, str(actor))
            st = self.states.get(key)
            if st is not None and ts - st.start > rule.window_seconds:
                st = None
                del self.states[key]
            if st is None:
                if not self._step_matches(rule.steps[0], entry, {}):
                    continue
                if len(self.states) >= self.max_states:
                    self._evict(ts)
                st = _State(start=ts)
                self.states[key] = st
            done = self._advance(rule, st, entry, line)
            if done:
                out.append(RuleMatch(rule, container_id, str(actor), tuple(st.evidence), st.start, ts))
                del self.states[key]
        return out

    def _advance(self, rule: SequenceRule, st: _State, entry: Mapping[str, Any], line: str) -> bool:
        first_try = True
        while st.idx < len(rule.steps):
            step = rule.steps[st.idx]
            if not first_try and not step.same_entry:
                return False
            if not self._step_matches(step, entry, st.anchor):
                return False
            first_try = False
            st.count += 1
            for fname, _ in step.min_distinct:
                st.distinct.setdefault(fname, set()).add(str(entry.get(fname)))
            if len(st.evidence) < 12:
                st.evidence.append(line[:300])
            if st.count < step.min_count or any(len(st.distinct.get(f, ())) < n for f, n in step.min_distinct):
                return False
            st.anchor = {k: v for k, v in entry.items() if k not in ("_line", "_template")}
            st.idx += 1
            st.count = 0
            st.distinct = {}
        return True

    @staticmethod
    def _step_matches(step: Step, entry: Mapping[str, Any], anchor: Mapping[str, Any]) -> bool:
        for f in step.same:
            if entry.get(f) != anchor.get(f):
                return False
        return all(c.test(entry) for c in step.conditions)

    def _evict(self, now: float) -> None:
        for key in [k for k, s in self.states.items() if now - s.start > 3600]:
            del self.states[key]
        if len(self.states) >= self.max_states:
            oldest = min(self.states, key=lambda k: self.states[k].start)
            del self.states[oldest]
            self.evicted += 1
