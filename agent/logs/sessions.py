# SPDX-License-Identifier: Apache-2.0
"""Sessions: a container's entries grouped per key (request id, client ip, user or a regex
capture) and cut by a time gap; each entry becomes one symbol for the sequence models."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_KEY_FIELDS: tuple[str, ...] = ("request_id", "trace_id", "session_id", "client_ip", "user")


def session_key(
    fields: Mapping[str, Any],
    line: str,
    key_fields: Sequence[str] = DEFAULT_KEY_FIELDS,
    key_regex: re.Pattern[str] | None = None,
) -> str:
    """The session key of an entry: the regex's first group (or whole match) when a regex is
    given, else the first present field of ``key_fields``; "" when none applies."""
    if key_regex is not None:
        m = key_regex.search(line)
        if m is None:
            return ""
        return str(m.group(1) if m.groups() else m.group(0))[:256]
    for name in key_fields:
        value = fields.get(name)
        if value not in (None, "", "-"):
            return str(value)[:256]
    return ""


def event_symbol(template_id: int, fields: Mapping[str, Any]) -> str:
    """The symbol of one entry: its template, refined by HTTP status class and auth outcome
    (masks turn ``200`` and ``401`` into the same ``<NUM>``, the class keeps them apart)."""
    sym = f"T{template_id}"
    status = fields.get("status")
    if isinstance(status, int) and 100 <= status < 600:
        sym += f"/{status // 100}xx"
    outcome = fields.get("auth_outcome")
    if outcome:
        sym += f"/{outcome}"
    return sym


@dataclass
class Session:
    """Consecutive entries of one key in one container, no gap longer than the tracker's."""

    group: str  # what models are kept per: the image (or container) name
    container_id: str
    key: str
    start: float
    end: float
    symbols: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # a capped sample for evidence

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "container_id": self.container_id,
            "key": self.key,
            "start": self.start,
            "end": self.end,
            "events": len(self.symbols),
        }


class SessionTracker:
    """Open sessions per (container, key); ``add`` returns sessions closed by a gap or length."""

    def __init__(self, gap_seconds: float = 300.0, max_events: int = 200, max_open: int = 50_000) -> None:
        self.gap = gap_seconds
        self.max_events = max_events
        self.max_open = max_open
        self.open: dict[tuple[str, str], Session] = {}
        self.evicted = 0

    def add(self, group: str, container_id: str, key: str, ts: float, symbol: str, line: str) -> list[Session]:
        closed: list[Session] = []
        k = (container_id, key)
        s = self.open.get(k)
        if s is not None and ts - s.end > self.gap:
            closed.append(self.open.pop(k))
            s = None
        if s is None:
            if len(self.open) >= self.max_open:
                # Evict the stalest session rather than grow without bound.
                oldest = min(self.open, key=lambda kk: self.open[kk].end)
                closed.append(self.open.pop(oldest))
                self.evicted += 1
            s = Session(group=group, container_id=container_id, key=key, start=ts, end=ts)
            self.open[k] = s
        s.symbols.append(symbol)
        if len(s.lines) < 20:
            s.lines.append(line[:300])
        s.end = max(s.end, ts)
        if len(s.symbols) >= self.max_events:
            closed.append(self.open.pop(k))
        return closed

    def expire(self, now: float) -> list[Session]:
        """Close every session idle for longer than the gap."""
        done = [k for k, s in self.open.items() if now - s.end > self.gap]
        return [self.open.pop(k) for k in done]

    def flush(self) -> list[Session]:
        """Close every open session (end of a file, shutdown)."""
        out = list(self.open.values())
        self.open.clear()
        return out
