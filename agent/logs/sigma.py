# SPDX-License-Identifier: Apache-2.0
"""Sigma rules (parsed with pySigma) evaluated directly over our events.

Supported log sources: ``product: linux`` with ``category: process_creation`` (``ProcessExec``),
``service: auditd`` (``AuditEvent``) and ``category: network_connection`` (``NetConnect``).
A rule is *loaded* only when every field it names maps to one of ours and every value type and
modifier is one this evaluator implements; anything else is listed as *unsupported* with the
reason — never dropped silently. Matching follows Sigma semantics: strings are
case-insensitive with ``*``/``?`` wildcards unless ``|cased``; ``|re`` is a search.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sigma.collection import SigmaCollection
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
)

from agent.events import AuditEvent, Event, NetConnect, ProcessExec
from agent.findings import Severity
from agent.resources import data_dir

DEFAULT_SIGMA_DIR = data_dir("config", "rules", "sigma")

FieldValue = str | int | float | bool | None | tuple[Any, ...]
Getter = Callable[[Any], FieldValue]


def _audit_field(name: str) -> Getter:
    def get(e: AuditEvent) -> FieldValue:
        return e.fields.get(name)

    return get


def _audit_arg(i: int) -> Getter:
    def get(e: AuditEvent) -> FieldValue:
        v = e.fields.get(f"a{i}")
        if v is None and i < len(e.argv):
            return e.argv[i]
        return v

    return get


PROCESS_FIELDS: dict[str, Getter] = {
    "Image": lambda e: e.filename,
    "CommandLine": lambda e: " ".join(e.argv) if e.argv else e.filename,
    "ParentImage": lambda e: e.parent_comm,
    "ProcessId": lambda e: e.pid,
    "ParentProcessId": lambda e: e.ppid,
    "User": lambda e: str(e.uid),
    "Comm": lambda e: e.comm,
}
AUDIT_FIELDS: dict[str, Getter] = {
    "type": lambda e: tuple(e.record_types),
    "key": lambda e: e.key or e.fields.get("key"),
    "SYSCALL": lambda e: e.syscall,
    "syscall": lambda e: e.syscall,
    "exe": lambda e: e.exe,
    "comm": lambda e: e.comm,
    "uid": lambda e: str(e.uid),
    "auid": lambda e: str(e.auid),
    "pid": lambda e: e.pid,
    "ppid": lambda e: e.ppid,
    "success": lambda e: None if e.success is None else ("yes" if e.success else "no"),
    "exit": lambda e: e.exit,
    "name": lambda e: tuple(e.paths),
    "cwd": lambda e: e.cwd,
    "proctitle": lambda e: e.proctitle,
    "argc": lambda e: str(len(e.argv)),
}
for _i in range(16):
    AUDIT_FIELDS[f"a{_i}"] = _audit_arg(_i)
for _name in (
    "euid",
    "suid",
    "fsuid",
    "gid",
    "egid",
    "tty",
    "ses",
    "nametype",
    "mode",
    "ouid",
    "saddr",
    "res",
    "op",
    "acct",
    "terminal",
    "addr",
    "hostname",
    "subj",
    "items",
    "arch",
):
    AUDIT_FIELDS.setdefault(_name, _audit_field(_name))
NETWORK_FIELDS: dict[str, Getter] = {
    "Image": lambda e: e.comm,
    "DestinationIp": lambda e: e.daddr,
    "DestinationPort": lambda e: e.dport,
    "SourceIp": lambda e: e.saddr,
    "SourcePort": lambda e: e.sport,
    "Protocol": lambda e: e.protocol,
    "Initiated": lambda e: "true" if e.op == "connect" else "false",
}

LOGSOURCES: dict[str, tuple[type[Event], dict[str, Getter]]] = {
    "process_creation": (ProcessExec, PROCESS_FIELDS),
    "auditd": (AuditEvent, AUDIT_FIELDS),
    "network_connection": (NetConnect, NETWORK_FIELDS),
}

_LEVELS = {
    "informational": Severity.INFO,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}


class Unsupported(Exception):
    """A rule construct this evaluator does not implement."""


Matcher = Callable[[Any], bool]


@dataclass(frozen=True)
class LoadedRule:
    id: str
    title: str
    logsource: str
    event_type: type[Event]
    severity: Severity
    mitre: str
    matcher: Matcher
    source_file: str


@dataclass(frozen=True)
class SigmaMatch:
    rule: LoadedRule
    event: Event


def _mitre(tags: Iterable[Any]) -> str:
    for t in tags:
        ns, name = getattr(t, "namespace", ""), getattr(t, "name", "")
        if ns == "attack" and re.fullmatch(r"t\d{4}(\.\d{3})?", name):
            return name.upper()
    return ""


def _values(v: FieldValue) -> tuple[Any, ...]:
    if isinstance(v, tuple):
        return v
    return (v,)


def _value_matcher(value: Any) -> Callable[[FieldValue], bool]:
    """A predicate over one field value for a pySigma value type (raises ``Unsupported``)."""
    if isinstance(value, SigmaString):
        if value.contains_placeholder():
            raise Unsupported("placeholders (%name%) need a processing pipeline")
        flags = 0 if isinstance(value, SigmaCasedString) else re.IGNORECASE
        rx = re.compile(str(value.to_regex().regexp), flags | re.DOTALL)

        def m_str(v: FieldValue) -> bool:
            return any(x is not None and rx.fullmatch(str(x)) is not None for x in _values(v))

        return m_str
    if isinstance(value, SigmaRegularExpression):
        flags = 0
        for f in value.flags:
            flags |= SigmaRegularExpression.sigma_to_python_flags.get(f, 0)
        if value.flags - set(SigmaRegularExpression.sigma_to_python_flags):
            raise Unsupported(f"regex flags {value.flags}")
        rx = re.compile(str(value.regexp), flags)

        def m_re(v: FieldValue) -> bool:
            return any(x is not None and rx.search(str(x)) is not None for x in _values(v))

        return m_re
    if isinstance(value, SigmaBool):
        want = value.boolean

        def m_bool(v: FieldValue) -> bool:
            return any(str(x).lower() in (("true", "1", "yes") if want else ("false", "0", "no")) for x in _values(v))

        return m_bool
    if isinstance(value, SigmaNumber):
        num = value.number

        def m_num(v: FieldValue) -> bool:
            for x in _values(v):
                try:
                    if x is not None and float(str(x)) == float(num):
                        return True
                except ValueError:
                    continue
            return False

        return m_num
    if isinstance(value, SigmaCompareExpression):
        n = float(value.number.number)
        ops: dict[CompareOperators, Callable[[float], bool]] = {
            CompareOperators.LT: lambda x: x < n,
            CompareOperators.LTE: lambda x: x <= n,
            CompareOperators.GT: lambda x: x > n,
            CompareOperators.GTE: lambda x: x >= n,
            CompareOperators.NEQ: lambda x: x != n,
        }
        op = ops[value.op]

        def m_cmp(v: FieldValue) -> bool:
            for x in _values(v):
                try:
                    if x is not None and op(float(str(x))):
                        return True
                except ValueError:
                    continue
            return False

        return m_cmp
    if isinstance(value, SigmaCIDRExpression):
        net = value.network

        def m_cidr(v: FieldValue) -> bool:
            for x in _values(v):
                try:
                    if x is not None and ipaddress.ip_address(str(x)) in net:
                        return True
                except ValueError:
                    continue
            return False

        return m_cidr
    if isinstance(value, SigmaNull):
        return lambda v: all(x in (None, "") for x in _values(v))
    if isinstance(value, SigmaExists):
        want_exists = value.exists
        return lambda v: (v not in (None, "", ())) == want_exists
    raise Unsupported(f"value type {type(value).__name__}")


def _compile(node: Any, fields: Mapping[str, Getter]) -> Matcher:
    if isinstance(node, ConditionAND):
        parts = [_compile(a, fields) for a in node.args]
        return lambda e: all(p(e) for p in parts)
    if isinstance(node, ConditionOR):
        parts = [_compile(a, fields) for a in node.args]
        return lambda e: any(p(e) for p in parts)
    if isinstance(node, ConditionNOT):
        inner = _compile(node.args[0], fields)
        return lambda e: not inner(e)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        getter = fields.get(node.field)
        if getter is None:
            raise Unsupported(f"field {node.field!r} has no equivalent in our events")
        vm = _value_matcher(node.value)
        return lambda e: vm(getter(e))
    if isinstance(node, ConditionValueExpression):
        # A keyword: matches when any field value matches.
        vm = _value_matcher(node.value)
        getters = list(fields.values())
        return lambda e: any(vm(g(e)) for g in getters)
    raise Unsupported(f"condition node {type(node).__name__}")


def _logsource_key(rule: SigmaRule) -> str:
    ls = rule.logsource
    if (ls.product or "").lower() != "linux":
        raise Unsupported(f"logsource product {ls.product!r} (only linux)")
    if ls.service and ls.service.lower() == "auditd":
        return "auditd"
    if ls.category and ls.category.lower() in LOGSOURCES:
        return ls.category.lower()
    raise Unsupported(f"logsource category={ls.category!r} service={ls.service!r}")


class SigmaEngine:
    """Loaded rules by event type; ``unsupported`` names every rule that was not loaded, and why."""

    def __init__(self) -> None:
        self.rules: list[LoadedRule] = []
        self.unsupported: dict[str, str] = {}
        self._by_type: dict[type[Event], list[LoadedRule]] = {}

    @classmethod
    def load(cls, dirs: Iterable[Path] = (DEFAULT_SIGMA_DIR,)) -> SigmaEngine:
        eng = cls()
        for d in dirs:
            d = Path(d)
            files = sorted([*d.rglob("*.yml"), *d.rglob("*.yaml")]) if d.is_dir() else [d]
            for f in files:
                eng.add_file(f)
        return eng

    def add_file(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
            collection = SigmaCollection.from_yaml(text, collect_errors=True)
        except Exception as exc:
            self.unsupported[str(path)] = f"cannot parse: {str(exc)[:300]}"
            return
        for rule in collection.rules:
            label = f"{path.name}:{rule.id or rule.title}"
            if not isinstance(rule, SigmaRule):
                self.unsupported[label] = f"{type(rule).__name__} (correlation/filter rules are not evaluated)"
                continue
            errors = getattr(rule, "errors", None)
            if errors:
                self.unsupported[label] = "; ".join(str(e) for e in errors)[:500]
                continue
            try:
                self.add_rule(rule, str(path))
            except Unsupported as exc:
                self.unsupported[label] = str(exc)
            except SigmaError as exc:
                self.unsupported[label] = f"invalid: {exc}"

    def add_rule(self, rule: SigmaRule, source_file: str = "") -> LoadedRule:
        key = _logsource_key(rule)
        event_type, fields = LOGSOURCES[key]
        matchers = [_compile(c.parsed, fields) for c in rule.detection.parsed_condition]
        if len(matchers) == 1:
            matcher = matchers[0]
        else:

            def matcher(e: Any, ms: list[Matcher] = matchers) -> bool:
                return any(m(e) for m in ms)

        level = str(rule.level.name).lower() if rule.level else "medium"
        loaded = LoadedRule(
            id=str(rule.id or rule.title),
            title=str(rule.title),
            logsource=key,
            event_type=event_type,
            severity=_LEVELS.get(level, Severity.MEDIUM),
            mitre=_mitre(rule.tags or ()),
            matcher=matcher,
            source_file=source_file,
        )
        self.rules.append(loaded)
        self._by_type.setdefault(event_type, []).append(loaded)
        return loaded

    def evaluate(self, event: Event) -> list[SigmaMatch]:
        """Rules that ``event`` matches."""
        out: list[SigmaMatch] = []
        for r in self._by_type.get(type(event), ()):
            try:
                if r.matcher(event):
                    out.append(SigmaMatch(r, event))
            except Exception:  # a rule must never break the event stream
                continue
        return out

    def report(self) -> dict[str, Any]:
        """What loaded and what did not (with reasons)."""
        return {
            "loaded": [
                {"id": r.id, "title": r.title, "logsource": r.logsource, "file": r.source_file} for r in self.rules
            ],
            "unsupported": dict(self.unsupported),
        }
