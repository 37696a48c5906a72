# SPDX-License-Identifier: Apache-2.0
"""Sigma rules (parsed with pySigma) evaluated directly over our events.

Supported log sources: ``product: linux`` with ``category: process_creation`` (``ProcessExec``),
``service: auditd`` (``AuditEvent``) and ``category: network_connection`` (``NetConnect``).
A rule is *loaded* only when every field it names maps to one of ours and every value type and
modifier is one this evaluator implements; anything else is listed as *unsupported* with the
reason — never dropped silently. Matching follows Sigma semantics: strings are
case-insensitive with ``*``/``?`` wildcards unless ``|cased``; ``|re`` is a search.

The rule files are read by pySigma in ``agent.logs.sigma_ir``, which turns them into plain data;
this module builds the matchers from that data and never imports pySigma itself. The daemon reads
the files in a short-lived child process (``SigmaEngine.load_isolated``): pySigma, pyparsing and
re2 stay out of its memory (about 5.5 MiB resident).
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from agent.events import AuditEvent, Event, NetConnect, ProcessExec
from agent.findings import Severity
from agent.resources import data_dir

DEFAULT_SIGMA_DIR = data_dir("config", "rules", "sigma")
PARSE_TIMEOUT = 120.0  # seconds the rule-reading child may take
_CHILD = "from agent.logs.sigma_ir import main; main()"

log = structlog.get_logger("agent.logs")

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


def _values(v: FieldValue) -> tuple[Any, ...]:
    if isinstance(v, tuple):
        return v
    return (v,)


def _number_matcher(want: float, op: Callable[[float], bool] | None = None) -> Callable[[FieldValue], bool]:
    def m_num(v: FieldValue) -> bool:
        for x in _values(v):
            try:
                if x is not None and (op(float(str(x))) if op is not None else float(str(x)) == want):
                    return True
            except ValueError:
                continue
        return False

    return m_num


def _value_matcher(value: Mapping[str, Any]) -> Callable[[FieldValue], bool]:
    """A predicate over one field value for a value in ``sigma_ir``'s plain form."""
    kind = value["type"]
    if kind in ("str", "re"):
        if kind == "str":
            rx = re.compile(value["regex"], (0 if value["cased"] else re.IGNORECASE) | re.DOTALL)
            return lambda v: any(x is not None and rx.fullmatch(str(x)) is not None for x in _values(v))
        rx = re.compile(value["regex"], value["flags"])
        return lambda v: any(x is not None and rx.search(str(x)) is not None for x in _values(v))
    if kind == "bool":
        accepted = ("true", "1", "yes") if value["value"] else ("false", "0", "no")
        return lambda v: any(str(x).lower() in accepted for x in _values(v))
    if kind == "num":
        return _number_matcher(float(value["value"]))
    if kind == "cmp":
        n = float(value["value"])
        ops: dict[str, Callable[[float], bool]] = {
            "lt": lambda x: x < n,
            "lte": lambda x: x <= n,
            "gt": lambda x: x > n,
            "gte": lambda x: x >= n,
            "neq": lambda x: x != n,
        }
        return _number_matcher(n, ops[value["op"]])
    if kind == "cidr":
        net = ipaddress.ip_network(value["network"])

        def m_cidr(v: FieldValue) -> bool:
            for x in _values(v):
                try:
                    if x is not None and ipaddress.ip_address(str(x)) in net:
                        return True
                except ValueError:
                    continue
            return False

        return m_cidr
    if kind == "null":
        return lambda v: all(x in (None, "") for x in _values(v))
    if kind == "exists":
        want_exists = bool(value["value"])
        return lambda v: (v not in (None, "", ())) == want_exists
    raise Unsupported(f"value type {kind}")


def _compile(node: Mapping[str, Any], fields: Mapping[str, Getter]) -> Matcher:
    if "and" in node:
        parts = [_compile(a, fields) for a in node["and"]]
        return lambda e: all(p(e) for p in parts)
    if "or" in node:
        parts = [_compile(a, fields) for a in node["or"]]
        return lambda e: any(p(e) for p in parts)
    if "not" in node:
        inner = _compile(node["not"], fields)
        return lambda e: not inner(e)
    if "field" in node:
        getter = fields[node["field"]]
        vm = _value_matcher(node["value"])
        return lambda e: vm(getter(e))
    vm = _value_matcher(node["keyword"])  # a keyword: matches when any field value matches
    getters = list(fields.values())
    return lambda e: any(vm(g(e)) for g in getters)


class SigmaEngine:
    """Loaded rules by event type; ``unsupported`` names every rule that was not loaded, and why."""

    def __init__(self) -> None:
        self.rules: list[LoadedRule] = []
        self.unsupported: dict[str, str] = {}
        self._by_type: dict[type[Event], list[LoadedRule]] = {}

    @classmethod
    def load(cls, dirs: Iterable[Path] = (DEFAULT_SIGMA_DIR,)) -> SigmaEngine:
        """Parse the rule files in this process (imports pySigma)."""
        from agent.logs.sigma_ir import parse_dirs

        return cls.from_data(parse_dirs(dirs))

    @classmethod
    def load_isolated(cls, dirs: Iterable[Path] = (DEFAULT_SIGMA_DIR,), timeout: float = PARSE_TIMEOUT) -> SigmaEngine:
        """Parse the rule files in a short-lived child process, so that pySigma never stays in
        this one (the daemon); if the child cannot do it, parse here (and say why)."""
        names = [str(d) for d in dirs]
        try:
            proc = subprocess.run(
                [sys.executable, "-B", "-c", _CHILD],
                input=json.dumps(names),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
            return cls.from_data(json.loads(proc.stdout))
        except (OSError, subprocess.SubprocessError, RuntimeError, ValueError, KeyError, TypeError) as exc:
            log.warning("sigma_child_failed", error=str(exc)[:300], fallback="in-process")
            return cls.load([Path(d) for d in names])

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> SigmaEngine:
        """The engine for ``sigma_ir.parse_dirs``' result."""
        eng = cls()
        for rule in data["rules"]:
            eng._add(rule)
        eng.unsupported.update(data["unsupported"])
        return eng

    def add_file(self, path: Path) -> None:
        from agent.logs.sigma_ir import parse_file

        rules: list[dict[str, Any]] = []
        parse_file(path, rules, self.unsupported)
        for rule in rules:
            self._add(rule)

    def add_rule(self, rule: Any, source_file: str = "") -> LoadedRule:
        """Load one pySigma ``SigmaRule`` (raises ``Unsupported`` or pySigma's ``SigmaError``)."""
        from agent.logs.sigma_ir import rule_data

        return self._add(rule_data(rule, source_file))

    def _add(self, rule: Mapping[str, Any]) -> LoadedRule:
        event_type, fields = LOGSOURCES[rule["logsource"]]
        matchers = [_compile(c, fields) for c in rule["conditions"]]
        if len(matchers) == 1:
            matcher = matchers[0]
        else:

            def matcher(e: Any, ms: list[Matcher] = matchers) -> bool:
                return any(m(e) for m in ms)

        loaded = LoadedRule(
            id=rule["id"],
            title=rule["title"],
            logsource=rule["logsource"],
            event_type=event_type,
            severity=_LEVELS.get(rule["level"], Severity.MEDIUM),
            mitre=rule["mitre"],
            matcher=matcher,
            source_file=rule["source_file"],
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
