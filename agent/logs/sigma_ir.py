# SPDX-License-Identifier: Apache-2.0
"""Sigma rule files → plain data (parsed with pySigma), in a child process for the daemon.

pySigma (with pyparsing, unittest and re2 it imports) is needed only to read the rule files:
about 5.5 MiB resident that would stay in the daemon for its lifetime. The daemon therefore
reads them in a short-lived child (``python -c "…main()"``: the rule directories as JSON on
stdin, this module's plain-data form of the rules as JSON on stdout) and builds the matchers
from that (``agent.logs.sigma``); an offline tool or a test may parse in-process (``parse_dirs``).

The plain-data form of a rule: ``{"id", "title", "logsource", "level", "mitre", "source_file",
"conditions": [node, …]}`` where a node is ``{"and": [node, …]}``, ``{"or": [node, …]}``,
``{"not": node}``, ``{"field": name, "value": value}`` or ``{"keyword": value}``, and a value is
``{"type": "str", "regex": …, "cased": bool}`` (full match), ``{"type": "re", "regex": …,
"flags": int}`` (search), ``{"type": "bool", "value": bool}``, ``{"type": "num", "value": n}``,
``{"type": "cmp", "op": "lt|lte|gt|gte|neq", "value": n}``, ``{"type": "cidr", "network": …}``,
``{"type": "null"}`` or ``{"type": "exists", "value": bool}``. Every construct the evaluator does
not implement is refused here, with the same reasons as before the split.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
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

from agent.logs.sigma import LOGSOURCES, Unsupported

_CMP = {
    CompareOperators.LT: "lt",
    CompareOperators.LTE: "lte",
    CompareOperators.GT: "gt",
    CompareOperators.GTE: "gte",
    CompareOperators.NEQ: "neq",
}


def _mitre(tags: Iterable[Any]) -> str:
    for t in tags:
        ns, name = getattr(t, "namespace", ""), getattr(t, "name", "")
        if ns == "attack" and re.fullmatch(r"t\d{4}(\.\d{3})?", name):
            return str(name).upper()
    return ""


def value_data(value: Any) -> dict[str, Any]:
    """The plain form of one pySigma value (raises ``Unsupported``); regexes are compiled here
    once so that a rule the evaluator cannot compile fails where it always did."""
    if isinstance(value, SigmaString):
        if value.contains_placeholder():
            raise Unsupported("placeholders (%name%) need a processing pipeline")
        cased = isinstance(value, SigmaCasedString)
        regex = str(value.to_regex().regexp)
        re.compile(regex, (0 if cased else re.IGNORECASE) | re.DOTALL)
        return {"type": "str", "regex": regex, "cased": cased}
    if isinstance(value, SigmaRegularExpression):
        flags = 0
        for f in value.flags:
            flags |= SigmaRegularExpression.sigma_to_python_flags.get(f, 0)
        if value.flags - set(SigmaRegularExpression.sigma_to_python_flags):
            raise Unsupported(f"regex flags {value.flags}")
        re.compile(str(value.regexp), flags)
        return {"type": "re", "regex": str(value.regexp), "flags": int(flags)}
    if isinstance(value, SigmaBool):
        return {"type": "bool", "value": bool(value.boolean)}
    if isinstance(value, SigmaNumber):
        return {"type": "num", "value": value.number}
    if isinstance(value, SigmaCompareExpression):
        return {"type": "cmp", "op": _CMP[value.op], "value": float(value.number.number)}
    if isinstance(value, SigmaCIDRExpression):
        return {"type": "cidr", "network": str(value.network)}
    if isinstance(value, SigmaNull):
        return {"type": "null"}
    if isinstance(value, SigmaExists):
        return {"type": "exists", "value": bool(value.exists)}
    raise Unsupported(f"value type {type(value).__name__}")


def node_data(node: Any, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The plain form of one parsed condition (raises ``Unsupported``)."""
    if isinstance(node, ConditionAND):
        return {"and": [node_data(a, fields) for a in node.args]}
    if isinstance(node, ConditionOR):
        return {"or": [node_data(a, fields) for a in node.args]}
    if isinstance(node, ConditionNOT):
        return {"not": node_data(node.args[0], fields)}
    if isinstance(node, ConditionFieldEqualsValueExpression):
        if node.field not in fields:
            raise Unsupported(f"field {node.field!r} has no equivalent in our events")
        return {"field": node.field, "value": value_data(node.value)}
    if isinstance(node, ConditionValueExpression):  # a keyword: any field value matches
        return {"keyword": value_data(node.value)}
    raise Unsupported(f"condition node {type(node).__name__}")


def _logsource_key(rule: SigmaRule) -> str:
    ls = rule.logsource
    if (ls.product or "").lower() != "linux":
        raise Unsupported(f"logsource product {ls.product!r} (only linux)")
    if ls.service and ls.service.lower() == "auditd":
        return "auditd"
    if ls.category and ls.category.lower() in LOGSOURCES:
        return str(ls.category.lower())
    raise Unsupported(f"logsource category={ls.category!r} service={ls.service!r}")


def rule_data(rule: SigmaRule, source_file: str = "") -> dict[str, Any]:
    """The plain form of one rule (raises ``Unsupported`` or ``SigmaError``)."""
    key = _logsource_key(rule)
    fields = LOGSOURCES[key][1]
    return {
        "id": str(rule.id or rule.title),
        "title": str(rule.title),
        "logsource": key,
        "level": str(rule.level.name).lower() if rule.level else "medium",
        "mitre": _mitre(rule.tags or ()),
        "source_file": source_file,
        "conditions": [node_data(c.parsed, fields) for c in rule.detection.parsed_condition],
    }


def parse_file(path: Path, rules: list[dict[str, Any]], unsupported: dict[str, str]) -> None:
    """Append the rules of one file to ``rules``, and what cannot be loaded (why) to ``unsupported``."""
    try:
        text = path.read_text(encoding="utf-8")
        collection = SigmaCollection.from_yaml(text, collect_errors=True)
    except Exception as exc:
        unsupported[str(path)] = f"cannot parse: {str(exc)[:300]}"
        return
    for rule in collection.rules:
        label = f"{path.name}:{rule.id or rule.title}"
        if not isinstance(rule, SigmaRule):
            unsupported[label] = f"{type(rule).__name__} (correlation/filter rules are not evaluated)"
            continue
        errors = getattr(rule, "errors", None)
        if errors:
            unsupported[label] = "; ".join(str(e) for e in errors)[:500]
            continue
        try:
            rules.append(rule_data(rule, str(path)))
        except Unsupported as exc:
            unsupported[label] = str(exc)
        except SigmaError as exc:
            unsupported[label] = f"invalid: {exc}"


def parse_dirs(dirs: Iterable[Path | str]) -> dict[str, Any]:
    """Every rule file under ``dirs`` (a file stands for itself), in name order."""
    rules: list[dict[str, Any]] = []
    unsupported: dict[str, str] = {}
    for d in dirs:
        d = Path(d)
        files = sorted([*d.rglob("*.yml"), *d.rglob("*.yaml")]) if d.is_dir() else [d]
        for f in files:
            parse_file(f, rules, unsupported)
    return {"rules": rules, "unsupported": unsupported}


def main() -> None:
    """The child: rule directories (a JSON list) on stdin, ``parse_dirs``' result on stdout."""
    dirs = json.loads(sys.stdin.read())
    json.dump(parse_dirs(dirs), sys.stdout)
    sys.stdout.flush()
