# SPDX-License-Identifier: Apache-2.0
"""Structuring of one log line: sanitise, parse (JSON, logfmt or a grok pattern), mine a template
(on the parser's message, else on the raw line with its header detected by the miner).

Everything that comes out of here is data: field names are restricted to ``[A-Za-z0-9_.@-]``
and capped, values are capped strings/numbers/bools, so a container can never forge the keys of
the agent's own structlog lines (callers pass ``fields`` as one value, never as ``**kwargs``).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.logs.grok import DEFAULT_GROK_DIR, Grok, GrokError, GrokLibrary
from agent.logs.miner import line_shape
from agent.logs.sanitize import SanitizeStats, sanitize
from agent.logs.templates import TemplateCache
from agent.settings.log_patterns import DEFAULT_PATTERNS
from agent.textsafe import JSONLimitError, loads_json

_KEY_OK = re.compile(r"[^A-Za-z0-9_.@-]")
# Keys start only at the line start or after whitespace, so a long run without "=" costs O(n).
_LOGFMT = re.compile(r'(?<!\S)([A-Za-z_][\w.-]*)=("(?:\\.|[^"\\])*"|[^\s"]*)')

MAX_FIELDS = 64
MAX_KEY = 64
MAX_VALUE = 1024

# Canonical names the sequence rules and sessions use, from common grok / JSON names.
ALIASES: dict[str, str] = {
    "clientip": "client_ip",
    "remote_addr": "client_ip",
    "src_ip": "client_ip",
    "ip": "client_ip",
    "response": "status",
    "status_code": "status",
    "verb": "method",
    "request": "path",
    "url": "path",
    "uri": "path",
    "auth": "user",
    "username": "user",
    "request_id": "request_id",
    "msg": "message",
}

_ALIAS_RANK = {k: i for i, k in enumerate(ALIASES)}
_CLEAN_KEYS: dict[str, str] = {}  # raw field name → clean_key(name), for the names parsers repeat

# Patterns that begin with a literal and may sit anywhere in a line: searched, not anchored.
SEARCHED_PATTERNS = frozenset({"AUTHLINE"})
# Grok sees at most this much of a line (bounds the cost of any pattern on hostile input).
GROK_MAX_CHARS = 4096

_MONTH_INITIALS = frozenset("JjFfMmAaSsOoNnDd")  # of every alternative of the shipped MONTH
# Necessary conditions of the shipped patterns, checked before running their regex (each follows
# from the pattern text in config/grok/: a literal it must contain or the class of its first
# character); a line failing one cannot match, so skipping the regex changes no result.
_PREFILTERS: dict[str, Callable[[str], bool]] = {
    "LOGFMT": lambda s: "=" in s,
    "JSON": lambda s: s.lstrip()[:1] == "{",
    "AUTHLINE": lambda s: "Failed" in s or "Invalid" in s or "Accepted" in s,
    "BUSYBOXHTTPD": lambda s: s[:1] == "[",
    "HTTPD_ERRORLOG": lambda s: s[:1] == "[",
    "NGINXERROR": lambda s: s[:1].isdigit() and "#" in s,
    "COMBINEDAPACHELOG": lambda s: " [" in s and '] "' in s,
    "COMMONAPACHELOG": lambda s: " [" in s and '] "' in s,
    "NGINXACCESS": lambda s: " - " in s and " [" in s and '] "' in s,
    "SYSLOG5424LINE": lambda s: s[:1] == "<",
    # SYSLOGTIMESTAMP starts with a MONTH; TIMESTAMP_ISO8601 with a YEAR (``(?>\d\d){1,2}``) and "-".
    "SYSLOGLINE": lambda s: s[:1] in _MONTH_INITIALS or (s[:1].isdecimal() and (s[2:3] == "-" or s[4:5] == "-")),
}

_AUTH_FAIL = re.compile(
    r"(?i)\b(failed password|authentication fail(?:ure|ed)|invalid (?:user|password|credentials)|"
    r"login fail(?:ed|ure)|bad password|access denied)\b"
)
_AUTH_OK = re.compile(
    r"(?i)\b(accepted (?:password|publickey)|login succe(?:eded|ssful)|authenticated|session opened)\b"
)


def clean_key(key: str) -> str:
    """A field name as the agent may emit it: safe characters only, capped."""
    return _KEY_OK.sub("_", key)[:MAX_KEY] or "_"


def clean_value(value: Any) -> Any:
    """A field value as the agent may emit it: scalar, strings capped; containers as capped JSON."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if not isinstance(value, str):
        try:
            value = json.dumps(value, sort_keys=True, default=str)
        except (TypeError, ValueError):
            value = str(value)
    return value[:MAX_VALUE]


def clean_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    """At most ``MAX_FIELDS`` cleaned fields, plus canonical aliases (``client_ip``, ``status``…)."""
    out: dict[str, Any] = {}
    if not raw:
        return out
    names = tuple(raw)
    plan = _FIELD_PLANS.get(names)
    if plan is None:
        plan = _field_plan(names)
        if len(_FIELD_PLANS) >= 4096:
            _FIELD_PLANS.clear()
        _FIELD_PLANS[names] = plan
    keep, aliases = plan
    for k, ck in keep:
        v = raw[k]
        if type(v) is str:
            out[ck] = v if len(v) <= MAX_VALUE else v[:MAX_VALUE]
        else:
            out[ck] = clean_value(v)
    for canon, k in aliases:
        out[canon] = out[k]
    status = out.get("status")
    if isinstance(status, str) and status.isdigit():
        out["status"] = int(status)
    path = out.get("path")
    if isinstance(path, str) and "url_path" not in out:
        out["url_path"] = path.split("?", 1)[0]
    return out


_FieldPlan = tuple[tuple[tuple[Any, str], ...], tuple[tuple[str, str], ...]]
# Parser field names (in order) → (raw name, clean name) pairs kept (MAX_FIELDS distinct), aliases
# added: both depend on the names only, and a parser repeats a few name lists.
_FIELD_PLANS: dict[tuple[Any, ...], _FieldPlan] = {}


def _field_plan(names: tuple[Any, ...]) -> _FieldPlan:
    keep: list[tuple[Any, str]] = []
    held: dict[str, None] = {}  # clean names in first-assignment order, as clean_fields' dict
    for k in names:
        if len(held) >= MAX_FIELDS:
            break
        ck = _CLEAN_KEYS.get(k) if type(k) is str else None
        if ck is None:
            ck = clean_key(str(k))
            if type(k) is str and len(k) <= MAX_KEY:
                if len(_CLEAN_KEYS) >= 4096:
                    _CLEAN_KEYS.clear()
                _CLEAN_KEYS[k] = ck
        keep.append((k, ck))
        held[ck] = None
    aliases: list[tuple[str, str]] = []
    for k in sorted((k for k in held if k in ALIASES), key=_ALIAS_RANK.__getitem__):  # ALIASES order
        if ALIASES[k] not in held:
            aliases.append((ALIASES[k], k))
            held[ALIASES[k]] = None
    return tuple(keep), tuple(aliases)


def parse_json(line: str, stats: SanitizeStats | None = None) -> dict[str, Any] | None:
    """Top-level keys of a JSON object line, else None (also when nested too deep: counted)."""
    s = line.lstrip()
    if not s.startswith("{"):
        return None
    try:
        obj = loads_json(s)  # depth-limited, strings cleaned (docs/operations.md, "Limits")
    except JSONLimitError:
        if stats:
            stats.json_too_deep += 1
        return None
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def parse_logfmt(line: str) -> dict[str, Any] | None:
    """``key=value key2="quoted value"`` pairs; None unless at least two pairs cover the line."""
    pairs = _LOGFMT.findall(line)
    if len(pairs) < 2:
        return None
    covered = sum(len(k) + 1 + len(v) for k, v in pairs) + len(pairs) - 1
    if covered < 0.8 * len(line.strip()):
        return None
    out: dict[str, Any] = {}
    for k, v in pairs:
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            try:
                v = loads_json(v)
            except ValueError:
                v = v[1:-1]
        out[k] = v
    return out


# Words one of the two expressions above needs (their ASCII wording): a line without any cannot match.
_AUTH_HINT = re.compile(r"fail|invalid|denied|bad password|accepted|login succe|authenticated|session opened")


def auth_outcome(line: str) -> str:
    """``failure`` / ``success`` / "" from the wording of an authentication line."""
    if _AUTH_HINT.search(line.lower()) is None:
        return ""
    if _AUTH_FAIL.search(line):
        return "failure"
    if _AUTH_OK.search(line):
        return "success"
    return ""


@dataclass(slots=True)
class Structured:
    """One structured line."""

    line: str
    template_id: int
    template: str
    fields: dict[str, Any] = field(default_factory=dict)
    pattern: str = ""


class Structurer:
    """Parse lines with the first matching parser (per-stream preference learnt), then template them.

    Patterns are tried in order; the last pattern that matched for a ``key`` (an image or a
    container) is tried first next time, so a container's format is detected once.
    """

    def __init__(
        self,
        patterns: Sequence[str] = DEFAULT_PATTERNS,
        grok_dirs: Iterable[Path] = (DEFAULT_GROK_DIR,),
        templates: TemplateCache | None = None,
        max_line: int = 16384,
        image_patterns: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.library = GrokLibrary.load(grok_dirs)
        self.order: list[str] = list(patterns)
        self.image_patterns = {glob: list(names) for glob, names in (image_patterns or {}).items()}
        self._orders: dict[str, list[str]] = {}
        self._plans: dict[str, tuple[tuple[str, Callable[[str], bool] | None], ...]] = {}
        self.compiled: dict[str, Grok] = {}
        self.unsupported: dict[str, str] = {}
        every = list(dict.fromkeys([*self.order, *(n for ns in self.image_patterns.values() for n in ns)]))
        for name in every:
            if name in ("JSON", "LOGFMT"):
                continue
            try:
                if name not in self.library.patterns:
                    self.library.get(name)  # raises the "unknown grok pattern" error
                # Anchored at the line start: these formats begin there, and an unanchored search
                # of IPORHOST-led patterns is quadratic on hostile lines (a ReDoS lever).
                expr = "%{" + name + "}" if name in SEARCHED_PATTERNS else "^(?:%{" + name + "})"
                self.compiled[name] = self.library.compile(expr, name=name)
            except GrokError as exc:
                self.unsupported[name] = str(exc)
        self.templates = templates or TemplateCache()
        self.max_line = max_line
        self.preferred: dict[str, str] = {}
        self.matched: Counter[str] = Counter()
        self.sanitize_stats = SanitizeStats()
        # Servers that log the request and its answer on two lines (busybox httpd: "url:" then
        # "response:") are paired by client address and port, so the answer carries the path.
        self._pending_paths: dict[tuple[str, str, str], str] = {}
        # (key, line shape) no parser matched → the auth outcome of its message once structured
        # ("" none), None until then: such a line's next same-shaped line skips the parsers, and
        # once its outcome is known, the whole slow path (the miner answers from its shape cache).
        self._unparsed: dict[tuple[str, bytes], str | None] = {}
        self._auth: dict[bytes, str] = {}  # message digit shape → auth outcome

    def _parse_with(self, name: str, line: str) -> dict[str, Any] | None:
        pre = _PREFILTERS.get(name)
        if pre is not None and not pre(line):
            return None
        return self._parse_unfiltered(name, line)

    def _parse_unfiltered(self, name: str, line: str) -> dict[str, Any] | None:
        if name == "JSON":
            return parse_json(line, self.sanitize_stats)
        if name == "LOGFMT":
            return parse_logfmt(line)
        grok = self.compiled.get(name)
        return grok.match(line[:GROK_MAX_CHARS]) if grok else None

    def parse(self, line: str, key: str = "", shape: bytes | None = None) -> tuple[str, dict[str, Any]]:
        """``(pattern, raw fields)`` of the first parser that matches, ``("", {})`` if none.

        A line whose digit shape (digits → ``0``) no parser matched before, for the same key, is
        not tried again: parsers decide on characters, and on digit values only where a grok
        pattern checks a range (day of month, IP octet), so the cache can at worst keep a
        same-shaped in-range line unparsed after an out-of-range one (its template is mined anyway).
        ``shape``, when the caller has it, is ``line_shape(line)`` of a line of at most
        ``GROK_MAX_CHARS`` characters.
        """
        if shape is None or len(line) > GROK_MAX_CHARS:
            shape = line_shape(line[:GROK_MAX_CHARS])
        seen = (key, shape)
        if seen in self._unparsed:
            return "", {}
        first = self.preferred.get(key)
        if first:
            got = self._parse_with(first, line)
            if got is not None:
                return first, got
        for name, pre in self._plan_for(key):
            if name == first or (pre is not None and not pre(line)):
                continue
            got = self._parse_unfiltered(name, line)
            if got is not None:
                self.preferred[key] = name
                return name, got
        if len(self._unparsed) >= 100_000:
            self._unparsed.clear()
        self._unparsed[seen] = None
        return "", {}

    def _plan_for(self, key: str) -> tuple[tuple[str, Callable[[str], bool] | None], ...]:
        """The parsers to try for ``key``, in order, each with its prefilter (None: none)."""
        plan = self._plans.get(key)
        if plan is None:
            plan = tuple((n, _PREFILTERS.get(n)) for n in self._order_for(key) if n not in self.unsupported)
            if len(self._plans) < 10_000:
                self._plans[key] = plan
        return plan

    def _order_for(self, key: str) -> list[str]:
        order = self._orders.get(key)
        if order is None:
            order = self.order
            for glob, names in self.image_patterns.items():
                if fnmatch.fnmatchcase(key, glob):
                    order = names
                    break
            if len(self._orders) < 10_000:
                self._orders[key] = order
        return order

    def _pair_request(self, key: str, fields: dict[str, Any]) -> None:
        port = fields.get("clientport")
        ip = fields.get("client_ip")
        if port is None or ip is None:
            return
        k = (key, str(ip), str(port))
        if "path" in fields and "status" not in fields:
            if len(self._pending_paths) >= 10_000:
                self._pending_paths.clear()
            self._pending_paths[k] = str(fields["path"])
        elif "status" in fields and "path" not in fields:
            path = self._pending_paths.pop(k, None)
            if path is not None:
                fields["path"] = path
                fields["url_path"] = path.split("?", 1)[0]

    def structure(self, raw: bytes | str, key: str = "") -> Structured:
        """Sanitise, parse and template one line."""
        line = sanitize(raw, self.max_line, self.sanitize_stats)
        shape = line_shape(line) if len(line) <= GROK_MAX_CHARS else None  # computed once, used twice
        if shape is not None:
            # A shape no parser matched for this key, mined before: its auth outcome is memoised
            # here and the miner has its template and header split (unless it evicted them).
            outcome = self._unparsed.get((key, shape))
            if outcome is not None:
                got = self.templates.hit_line(shape) if len(line) <= self.templates.max_line else None
                if got is not None:
                    tpl, split = got
                    fields: dict[str, Any] = {}
                    split.add_fields(line, fields, MAX_VALUE)
                    if outcome:
                        fields["auth_outcome"] = outcome
                    self.matched["none"] += 1
                    return Structured(line, tpl.id, tpl.text, fields, "")
        if shape is not None and (key, shape) in self._unparsed:  # parse()'s first answer, inline
            pattern, fields = "", {}
        else:
            pattern, raw_fields = self.parse(line, key, shape)
            fields = clean_fields(raw_fields) if raw_fields else {}
        if pattern:
            self._pair_request(key, fields)
        self.matched[pattern or "none"] += 1
        # The free text to mine: the message of a structured line, else the whole line.
        text = fields.get("message")
        if isinstance(text, str) and text and not line.endswith(text):
            tpl = self.templates.add(text)  # a message that is not a suffix of the line (JSON)
        else:
            # The miner splits the header (timestamp, level, pid, host, component) off the raw
            # line itself; a parser's message only tells where the message starts at the earliest.
            at = len(line) - len(text) if isinstance(text, str) and text else 0
            tpl, split = self.templates.add_line(line, min_start=at, shape=shape)
            split.add_fields(line, fields, MAX_VALUE)
            if shape is not None:
                # The outcome depends on the message's letters only: one answer per message shape.
                memo = shape[split.start :] if line.isascii() else line_shape(line[split.start :])
                outcome = self._auth.get(memo)
                if outcome is None:
                    outcome = auth_outcome(line[split.start :])
                    if len(self._auth) >= 100_000:
                        self._auth.clear()
                    self._auth[memo] = outcome
                if outcome:
                    fields["auth_outcome"] = outcome
                if not pattern and len(line) <= self.templates.max_line:
                    self._unparsed[key, shape] = outcome  # parse() recorded the shape: now with its outcome
                return Structured(line, tpl.id, tpl.text, fields, pattern)
            text = line[split.start :]
        outcome = auth_outcome(text)
        if outcome:
            fields["auth_outcome"] = outcome
        return Structured(line, tpl.id, tpl.text, fields, pattern)
