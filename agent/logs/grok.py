# SPDX-License-Identifier: Apache-2.0
"""A grok compiler for Logstash pattern files: ``%{PATTERN}``, ``%{PATTERN:field}``,
``%{PATTERN:field:int|float}`` and Oniguruma named groups ``(?<field>...)``.

Pattern files hold one ``NAME regex`` per line (``#`` comments), as in logstash-patterns-core.
Expressions compile to Python ``re`` patterns: every capture becomes an anonymous ``_gN`` group
mapped back to its field name, so duplicate field names (Logstash allows them) and bracketed
ECS names (``[source][address]``) both work; the first non-empty capture of a name wins.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.resources import data_dir

_REF = re.compile(r"%\{(\w+)(?::([^:}]+))?(?::(\w+))?\}")
# Oniguruma named group "(?<name>" (not the look-behinds "(?<=" / "(?<!").
_ONIG_NAMED = re.compile(r"\(\?<([A-Za-z_][\w.\[\]@-]*)>")
_MAX_DEPTH = 64

DEFAULT_GROK_DIR = data_dir("config", "grok")

# Necessary-condition look-aheads put in front of known pattern texts (by SHA-256 of the text):
# every alternative of the logstash-patterns-core IPV6 starts with 1-4 hex digits and a colon, or
# a colon, so a position where ``[0-9A-Fa-f]{0,4}:`` does not match cannot start an IPv6 address.
# The guard changes no match; it spares Python's engine trying each IPv6 alternative on a host
# name or a word (SYSLOGLINE: 6.3 → 2.4 µs per line). Any other text (an override) is used as is.
_GUARDS: dict[str, tuple[str, str]] = {
    "IPV6": ("aa2cd616f47a27af353d1acd8c785d4cf671cd3ff065968070e148e986df89cd", "(?=[0-9A-Fa-f]{0,4}:)"),
}


def _guarded(name: str, body: str) -> str:
    """``body`` behind its look-ahead guard when it is the known text of ``name``."""
    guard = _GUARDS.get(name)
    if guard is None or hashlib.sha256(body.encode("utf-8")).hexdigest() != guard[0]:
        return body
    return f"{guard[1]}(?:{body})"


class GrokError(ValueError):
    """A grok expression that references an unknown pattern, recurses, or is not a valid regex."""


def _field_name(raw: str) -> str:
    """``[source][address]`` → ``source.address``; plain names unchanged."""
    if raw.startswith("["):
        parts = re.findall(r"\[([^\]]+)\]", raw)
        return ".".join(parts) if parts else raw
    return raw


@dataclass(frozen=True, slots=True)
class Grok:
    """One compiled grok expression."""

    name: str
    regex: re.Pattern[str]
    groups: tuple[tuple[str, str, str], ...]  # (group name, field, type "" | int | float)
    anchored: bool = False  # the expression starts with "^": one match attempt, not a search
    _plan: tuple[tuple[int, str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = self.regex.groupindex
        plan = tuple((index[group] - 1, name, kind) for group, name, kind in self.groups)
        object.__setattr__(self, "_plan", plan)

    def match(self, line: str) -> dict[str, Any] | None:
        """Fields of ``line`` if the whole expression matches at its start (Logstash semantics:
        the expression is searched, not anchored, unless it anchors itself)."""
        m = self.regex.match(line) if self.anchored else self.regex.search(line)
        if m is None:
            return None
        out: dict[str, Any] = {}
        values = m.groups()  # one call for every group; indexed through the plan below
        for index, name, kind in self._plan:
            value = values[index]
            if value is None or name in out:
                continue
            if not kind:
                out[name] = value
            elif kind in ("int", "integer"):
                try:
                    out[name] = int(value)
                except ValueError:
                    out[name] = value
            elif kind == "float":
                try:
                    out[name] = float(value)
                except ValueError:
                    out[name] = value
            else:
                out[name] = value
        return out


class GrokLibrary:
    """Named patterns loaded from Logstash-style files, compiled on demand."""

    def __init__(self, patterns: Mapping[str, str] | None = None) -> None:
        self.patterns: dict[str, str] = dict(patterns or {})
        self._compiled: dict[str, Grok] = {}

    @classmethod
    def load(cls, dirs: Iterable[Path] = (DEFAULT_GROK_DIR,)) -> GrokLibrary:
        """Load every file of each directory (later files override earlier names)."""
        lib = cls()
        for d in dirs:
            d = Path(d)
            files = sorted(p for p in d.iterdir() if p.is_file()) if d.is_dir() else [d]
            for f in files:
                lib.add_text(f.read_text(encoding="utf-8"))
        return lib

    def add_text(self, text: str) -> None:
        """Add the ``NAME regex`` lines of one pattern file."""
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, _, regex = line.partition(" ")
            if not regex:
                raise GrokError(f"pattern line without a regex: {line[:80]!r}")
            self.patterns[name] = regex.strip()
        self._compiled.clear()

    def compile(self, expr: str, name: str = "") -> Grok:
        """Compile a grok expression (``%{COMBINEDAPACHELOG}`` or any text with references)."""
        key = name or expr
        cached = self._compiled.get(key)
        if cached is not None:
            return cached
        groups: list[tuple[str, str, str]] = []
        regex = self._expand(expr, groups, 0, ())
        try:
            compiled = re.compile(regex)
        except re.error as exc:
            raise GrokError(f"{name or expr[:60]}: not a valid regex after expansion: {exc}") from None
        grok = Grok(name=name or expr, regex=compiled, groups=tuple(groups), anchored=expr.startswith("^"))
        self._compiled[key] = grok
        return grok

    def get(self, pattern_name: str) -> Grok:
        """Compile the library pattern ``pattern_name``."""
        if pattern_name not in self.patterns:
            raise GrokError(f"unknown grok pattern {pattern_name}")
        return self.compile("%{" + pattern_name + "}", name=pattern_name)

    def _expand(self, expr: str, groups: list[tuple[str, str, str]], depth: int, stack: tuple[str, ...]) -> str:
        if depth > _MAX_DEPTH:
            raise GrokError(f"grok expansion deeper than {_MAX_DEPTH}: {' > '.join(stack[-5:])}")

        def onig(m: re.Match[str]) -> str:
            group = f"_g{len(groups)}"
            groups.append((group, _field_name(m.group(1)), ""))
            return f"(?P<{group}>"

        expr = _ONIG_NAMED.sub(onig, expr)

        def ref(m: re.Match[str]) -> str:
            pname, field, kind = m.group(1), m.group(2), m.group(3) or ""
            if pname in stack:
                raise GrokError(f"recursive grok pattern {pname}")
            body = self.patterns.get(pname)
            if body is None:
                raise GrokError(f"unknown grok pattern {pname}")
            body = _guarded(pname, body)
            if field:
                # Reserve the outer group first so its field wins over same-named inner ones.
                group = f"_g{len(groups)}"
                groups.append((group, _field_name(field), kind))
                inner = self._expand(body, groups, depth + 1, (*stack, pname))
                return f"(?P<{group}>{inner})"
            return f"(?:{self._expand(body, groups, depth + 1, (*stack, pname))})"

        return _REF.sub(ref, expr)
