# SPDX-License-Identifier: Apache-2.0
"""Per-image allowances: what an image does normally, learned while its baseline learns.

While an image's baseline is in its learning period (``behavior.learning_seconds`` from its
first window, not frozen), the detectors record per baseline key what its containers do:

- ``exec``: parent program → child program pairs (``python3>sh``, from process lineage);
- ``exe``: executables run;
- ``path``: sensitive paths opened;
- ``dest``: network destinations connected to (``tcp/10.0.0.5:5432``).

A finding of a process-exec rule whose pattern was learned is lowered to LOW (to INFO when an
operator allowed it), with the reason in its evidence; a rule flagged ``always`` is never
lowered, nor is a pattern an operator denied. During the learning period itself such findings
are at most MEDIUM: an alert, not an action (``always`` rules still act). A lowered finding
describes the image's normal behaviour, so it never keeps windows out of behaviour training.

Table ``behavior_allowances`` (``store.migrate("behavior_allowances", MIGRATIONS)``): one row
per (key, kind, pattern) with its verdict (allow | deny) and origin (learned | operator |
import). Readers cache each key for ``REFRESH_SECONDS``, so an operator's edit through one
process-wide instance reaches the others within that time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import structlog

from agent.behavior.baseline import BaselineRow, BaselineStore
from agent.events import ContainerRef
from agent.findings import Severity
from agent.settings.behavior import BehaviorSettings
from agent.store import Store

log = structlog.get_logger("agent.behavior")

MIGRATIONS: list[str] = [
    """
    CREATE TABLE behavior_allowances (
        image TEXT NOT NULL,
        kind TEXT NOT NULL,
        pattern TEXT NOT NULL,
        verdict TEXT NOT NULL,
        origin TEXT NOT NULL,
        first_seen REAL NOT NULL,
        updated REAL NOT NULL,
        PRIMARY KEY (image, kind, pattern)
    );
    """,
]

KINDS = ("exec", "exe", "path", "dest")
VERDICTS = ("allow", "deny")
REFRESH_SECONDS = 5.0
MAX_PATTERNS = 4096  # learned patterns per key and kind; beyond, nothing more is learned
MAX_PATTERN_LEN = 512


class AllowanceError(ValueError):
    """An operator's allowance request is malformed (unknown kind, empty pattern …)."""


@dataclass(frozen=True, slots=True)
class Judgement:
    """What the allowances say about one pattern of one container's image."""

    state: str  # learning | learned | allowed | denied | unseen
    key: str
    kind: str
    pattern: str
    severity: Severity | None  # the severity to lower a finding to; None: keep it

    def evidence(self) -> dict[str, Any]:
        reasons = {
            "learning": "first seen while the image's baseline was learning",
            "learned": "seen while the image's baseline was learning",
            "allowed": "allowed by an operator for this image",
            "denied": "denied by an operator for this image",
            "unseen": "never seen for this image",
        }
        return {
            "state": self.state,
            "baseline": self.key,
            "kind": self.kind,
            "pattern": self.pattern,
            "reason": reasons[self.state],
        }


def baseline_key(c: ContainerRef, group_label: str) -> str:
    """The baseline a container belongs to: its ``group_label`` label's value, else its image."""
    if group_label and c.labels.get(group_label):
        return f"group:{c.labels[group_label]}"
    return c.image or c.image_id or "unknown"


def check_pattern(kind: str, pattern: str) -> str:
    """``pattern`` validated for ``kind``; raises ``AllowanceError``."""
    if kind not in KINDS:
        raise AllowanceError(f"unknown kind {kind!r} (one of {', '.join(KINDS)})")
    pattern = pattern.strip()
    if not pattern or len(pattern) > MAX_PATTERN_LEN or any(ord(ch) < 32 for ch in pattern):
        raise AllowanceError(f"pattern must be 1..{MAX_PATTERN_LEN} printable characters")
    if kind == "exec" and ">" not in pattern:
        raise AllowanceError("an exec pattern is PARENT>CHILD (program names, e.g. python3>sh)")
    return pattern


class Allowances:
    """Learned and operator allowances per baseline key, cached for the hot path."""

    def __init__(self, store: Store, settings: BehaviorSettings, *, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.store = store
        self.settings = settings
        self.baselines = BaselineStore(store)
        store.migrate("behavior_allowances", MIGRATIONS)
        self.refresh_seconds = refresh_seconds
        # key -> (loaded at (monotonic), {(kind, pattern): (verdict, origin)}, learned count per kind)
        self._cache: dict[str, tuple[float, dict[tuple[str, str], tuple[str, str]], dict[str, int]]] = {}
        self._rows: dict[str, tuple[float, BaselineRow]] = {}
        self.learned = 0

    # --- learning state ---------------------------------------------------------------
    def key_of(self, c: ContainerRef) -> str:
        return baseline_key(c, self.settings.group_label)

    def _row(self, key: str, now: float) -> BaselineRow:
        mono = time.monotonic()
        hit = self._rows.get(key)
        if hit is not None and mono - hit[0] < self.refresh_seconds:
            return hit[1]
        row = self.baselines.get(key) or self.baselines.create(key, now)
        self._rows[key] = (mono, row)
        return row

    def learning(self, key: str, now: float) -> bool:
        """The key is in its learning period (from its first window or event) and not frozen."""
        row = self._row(key, now)
        return not row.frozen and now - row.first_seen < self.settings.learning_seconds

    def _patterns(self, key: str) -> tuple[dict[tuple[str, str], tuple[str, str]], dict[str, int]]:
        mono = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and mono - hit[0] < self.refresh_seconds:
            return hit[1], hit[2]
        table: dict[tuple[str, str], tuple[str, str]] = {}
        learned: dict[str, int] = {}
        for r in self.store.query(
            "SELECT kind, pattern, verdict, origin FROM behavior_allowances WHERE image = ?", (key,)
        ):
            table[(str(r[0]), str(r[1]))] = (str(r[2]), str(r[3]))
            if r[3] == "learned":
                learned[str(r[0])] = learned.get(str(r[0]), 0) + 1
        self._cache[key] = (mono, table, learned)
        return table, learned

    # --- hot path ---------------------------------------------------------------------
    def observe(self, c: ContainerRef, kind: str, pattern: str, now: float) -> bool:
        """Record ``pattern`` as normal for ``c``'s image while it learns; True when new."""
        key = self.key_of(c)
        if not pattern or not self.learning(key, now):
            return False
        table, learned = self._patterns(key)
        pattern = pattern[:MAX_PATTERN_LEN]
        if (kind, pattern) in table or learned.get(kind, 0) >= MAX_PATTERNS:
            return False
        self.store.execute(
            "INSERT OR IGNORE INTO behavior_allowances(image, kind, pattern, verdict, origin, first_seen, updated) "
            "VALUES (?, ?, ?, 'allow', 'learned', ?, ?)",
            (key, kind, pattern, now, now),
        )
        table[(kind, pattern)] = ("allow", "learned")
        learned[kind] = learned.get(kind, 0) + 1
        self.learned += 1
        return True

    def judge(self, c: ContainerRef, kind: str, pattern: str, now: float) -> Judgement:
        """How a finding about ``pattern`` in ``c`` should be weighed (see the module doc)."""
        key = self.key_of(c)
        table, _ = self._patterns(key)
        hit = table.get((kind, pattern[:MAX_PATTERN_LEN]))
        if hit is not None and hit[0] == "deny":
            return Judgement("denied", key, kind, pattern, None)
        if hit is not None and hit[1] != "learned":
            return Judgement("allowed", key, kind, pattern, Severity.INFO)
        if hit is not None:
            return Judgement("learned", key, kind, pattern, Severity.LOW)
        if self.learning(key, now):
            return Judgement("learning", key, kind, pattern, Severity.MEDIUM)
        return Judgement("unseen", key, kind, pattern, None)

    # --- operator ---------------------------------------------------------------------
    def set(self, key: str, kind: str, pattern: str, verdict: str, origin: str = "operator") -> dict[str, Any]:
        """Allow or deny ``pattern`` for ``key`` (replacing a learned or earlier entry)."""
        pattern = check_pattern(kind, pattern)
        if verdict not in VERDICTS:
            raise AllowanceError(f"verdict must be one of {VERDICTS}")
        now = time.time()
        self.store.execute(
            "INSERT INTO behavior_allowances(image, kind, pattern, verdict, origin, first_seen, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(image, kind, pattern) DO UPDATE SET "
            "verdict = excluded.verdict, origin = excluded.origin, updated = excluded.updated",
            (key, kind, pattern, verdict, origin, now, now),
        )
        self._cache.pop(key, None)
        log.info("allowance_set", baseline=key, kind=kind, pattern=pattern, verdict=verdict, origin=origin)
        return {"baseline": key, "kind": kind, "pattern": pattern, "verdict": verdict, "origin": origin}

    def load(self, key: str, entries: list[tuple[str, str, str, str]]) -> int:
        """Install ``(kind, pattern, verdict, origin)`` entries for ``key`` (an import)."""
        now = time.time()
        with self.store.transaction() as conn:
            for kind, pattern, verdict, origin in entries:
                conn.execute(
                    "INSERT INTO behavior_allowances(image, kind, pattern, verdict, origin, first_seen, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(image, kind, pattern) DO UPDATE SET "
                    "verdict = excluded.verdict, origin = excluded.origin, updated = excluded.updated",
                    (key, kind, pattern, verdict, origin, now, now),
                )
        self._cache.pop(key, None)
        return len(entries)

    def remove(self, key: str, kind: str, pattern: str) -> bool:
        cur = self.store.execute(
            "DELETE FROM behavior_allowances WHERE image = ? AND kind = ? AND pattern = ?", (key, kind, pattern)
        )
        self._cache.pop(key, None)
        return cur.rowcount > 0

    def forget_learned(self, key: str) -> int:
        """Drop what ``key`` learned (operator entries stay): called when it relearns."""
        cur = self.store.execute("DELETE FROM behavior_allowances WHERE image = ? AND origin = 'learned'", (key,))
        self._cache.pop(key, None)
        self._rows.pop(key, None)
        return cur.rowcount

    def entries(self, key: str) -> list[dict[str, Any]]:
        return [
            {
                "kind": str(r[0]),
                "pattern": str(r[1]),
                "verdict": str(r[2]),
                "origin": str(r[3]),
                "first_seen": float(r[4]),
                "updated": float(r[5]),
            }
            for r in self.store.query(
                "SELECT kind, pattern, verdict, origin, first_seen, updated FROM behavior_allowances "
                "WHERE image = ? ORDER BY kind, pattern",
                (key,),
            )
        ]

    def counts(self) -> dict[str, dict[str, int]]:
        """key -> {kind: allowed patterns, "denied": n}."""
        out: dict[str, dict[str, int]] = {}
        for r in self.store.query(
            "SELECT image, kind, verdict, COUNT(*) FROM behavior_allowances GROUP BY image, kind, verdict"
        ):
            d = out.setdefault(str(r[0]), {})
            name = str(r[1]) if r[2] == "allow" else "denied"
            d[name] = d.get(name, 0) + int(r[3])
        return out

    def show(self, key: str, now: float | None = None) -> dict[str, Any]:
        """One baseline's learning state and allowances, as ``riskguardctl baseline show`` prints."""
        now = time.time() if now is None else now
        row = self.baselines.get(key)
        if row is None:
            raise AllowanceError(f"no baseline {key!r} (see 'riskguardctl baseline list')")
        learning_left = max(0.0, row.first_seen + self.settings.learning_seconds - now)
        return {
            **row.to_dict(),
            "allowances_learning": not row.frozen and learning_left > 0,
            "learning_seconds_left": round(learning_left, 1),
            "allowances": self.entries(key),
        }
