# SPDX-License-Identifier: Apache-2.0
"""Response records: every action written to the store before it touches the host.

An action row moves through phases, each transition stored (with its time) before the next step:

    intended → applied → confirmed → release_intended → released
           ↘ failed        ↘ failed            ↘ (release failed: stays confirmed)
    intended / applied at start-up → completed (applied + confirmed) or rolled_back

``active`` is 1 while an isolation is (or may be) in effect: from ``intended`` until
``released``/``rolled_back``/``failed``/``gone``. Evidence snapshots are stored next to the action
that they justify. Findings themselves live in the core ``findings`` table with their verdict.
Reads return typed records (``agent.response.model``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from agent.findings import Finding
from agent.response.model import ENDED, PENDING, ActionRecord, HistoryEntry, StoredFinding, VerdictRecord
from agent.store import Store

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE response_actions (
        id TEXT PRIMARY KEY,
        container_id TEXT NOT NULL,
        container_name TEXT NOT NULL DEFAULT '',
        image TEXT NOT NULL DEFAULT '',
        init_pid INTEGER NOT NULL DEFAULT 0,
        action TEXT NOT NULL,
        method TEXT NOT NULL DEFAULT '',
        phase TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1,
        dry_run INTEGER NOT NULL DEFAULT 0,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        finding_id TEXT NOT NULL DEFAULT '',
        verdict_id TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL DEFAULT '{}',
        detail TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE INDEX response_actions_container ON response_actions(container_id, active);
    CREATE INDEX response_actions_phase ON response_actions(phase);
    CREATE TABLE response_history (
        action_id TEXT NOT NULL,
        ts REAL NOT NULL,
        phase TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX response_history_action ON response_history(action_id, ts);
    CREATE TABLE response_evidence (
        action_id TEXT NOT NULL,
        ts REAL NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX response_evidence_action ON response_evidence(action_id)
    """,
)


def migrate(store: Store) -> None:
    store.migrate("response", MIGRATIONS)


class Records:
    """Reads and writes of ``response_actions``, ``response_history``, ``response_evidence`` and
    the verdict column of the core ``findings`` table."""

    def __init__(self, store: Store) -> None:
        self.store = store
        migrate(store)

    # --- findings ------------------------------------------------------------------------
    def save_finding(self, finding: Finding, verdict: VerdictRecord | None) -> None:
        """Store a finding with its verdict (JSON) in the core ``findings`` table (idempotent)."""
        d = finding.to_dict()
        v = verdict.to_dict() if verdict else {}
        self.store.execute(
            "INSERT INTO findings(id, ts, container_id, container_name, image, source, detector_id, severity,"
            " summary, evidence, mitre, verdict) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(id) DO UPDATE SET verdict = excluded.verdict",
            (
                d["id"],
                d["ts"],
                d["container_id"],
                d["container_name"],
                d["image"],
                d["source"],
                d["detector_id"],
                int(finding.severity),
                d["summary"],
                json.dumps(d["evidence"], default=str, sort_keys=True),
                d["mitre"],
                json.dumps(v, default=str, sort_keys=True) if v else "",
            ),
        )

    def set_finding_verdict(self, finding_id: str, verdict: VerdictRecord) -> None:
        """Replace the verdict stored with a finding."""
        self.store.execute(
            "UPDATE findings SET verdict = ? WHERE id = ?",
            (json.dumps(verdict.to_dict(), default=str, sort_keys=True), finding_id),
        )

    def findings(
        self,
        container: str = "",
        source: str = "",
        min_severity: int | None = None,
        limit: int = 100,
        since: float = 0.0,
    ) -> list[StoredFinding]:
        """Stored findings, newest first, filtered (container: id prefix or name)."""
        sql, args = self._where(container, source, min_severity, since)
        sql = "SELECT * FROM findings" + sql
        sql += " ORDER BY ts DESC LIMIT ?"
        args.append(max(1, min(limit, 10000)))
        return [StoredFinding.from_row(r) for r in self.store.query(sql, args)]

    def count_findings(
        self, container: str = "", source: str = "", min_severity: int | None = None, since: float = 0.0
    ) -> int:
        """How many stored findings the same filters as ``findings`` select, without a limit."""
        sql, args = self._where(container, source, min_severity, since)
        return int(self.store.query("SELECT COUNT(*) AS n FROM findings" + sql, args)[0]["n"])

    @staticmethod
    def _where(container: str, source: str, min_severity: int | None, since: float) -> tuple[str, list[Any]]:
        sql = " WHERE ts >= ?"
        args: list[Any] = [since]
        if container:
            sql += " AND (container_id LIKE ? OR container_name = ?)"
            args += [container.replace("%", "").replace("_", "\\_") + "%", container]
            sql = sql.replace("LIKE ?", "LIKE ? ESCAPE '\\'")
        if source:
            sql += " AND source = ?"
            args.append(source)
        if min_severity is not None:
            sql += " AND severity >= ?"
            args.append(min_severity)
        return sql, args

    # --- actions -------------------------------------------------------------------------
    def intend(
        self,
        *,
        container_id: str,
        container_name: str,
        image: str,
        init_pid: int,
        action: str,
        method: str,
        actor: str,
        reason: str,
        dry_run: bool,
        finding_id: str = "",
        verdict_id: str = "",
        evidence: Mapping[str, Any] | None = None,
    ) -> str:
        """Record an action about to be applied (and its evidence) in one transaction."""
        action_id = uuid.uuid4().hex
        now = time.time()
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO response_actions(id, container_id, container_name, image, init_pid, action,"
                " method, phase, active, dry_run, actor, reason, finding_id, verdict_id, created, updated)"
                " VALUES (?,?,?,?,?,?,?,'intended',?,?,?,?,?,?,?,?)",
                (
                    action_id,
                    container_id,
                    container_name,
                    image,
                    init_pid,
                    action,
                    method,
                    0 if dry_run else 1,
                    int(dry_run),
                    actor,
                    reason,
                    finding_id,
                    verdict_id,
                    now,
                    now,
                ),
            )
            conn.execute(
                "INSERT INTO response_history(action_id, ts, phase, detail) VALUES (?,?,?,?)",
                (action_id, now, "intended", reason),
            )
            if evidence is not None:
                conn.execute(
                    "INSERT INTO response_evidence(action_id, ts, data) VALUES (?,?,?)",
                    (action_id, now, json.dumps(evidence, default=str)),
                )
        return action_id

    def advance(
        self,
        action_id: str,
        phase: str,
        detail: str = "",
        state: Mapping[str, Any] | None = None,
        active: bool | None = None,
        method: str | None = None,
    ) -> None:
        """Move an action to ``phase`` (history kept); ``state`` replaces the stored state."""
        now = time.time()
        sets = ["phase = ?", "updated = ?", "detail = ?"]
        args: list[Any] = [phase, now, detail]
        if state is not None:
            sets.append("state = ?")
            args.append(json.dumps(dict(state), default=str, sort_keys=True))
        if active is None:
            active = phase not in ENDED
        sets.append("active = CASE WHEN dry_run = 1 THEN 0 ELSE ? END")
        args.append(int(active))
        if method is not None:
            sets.append("method = ?")
            args.append(method)
        with self.store.transaction() as conn:
            conn.execute(f"UPDATE response_actions SET {', '.join(sets)} WHERE id = ?", (*args, action_id))
            conn.execute(
                "INSERT INTO response_history(action_id, ts, phase, detail) VALUES (?,?,?,?)",
                (action_id, now, phase, detail),
            )

    def complete(
        self,
        action_id: str,
        detail: str,
        state: Mapping[str, Any],
        method: str,
        active: bool,
        evidence: Mapping[str, Any] | None = None,
        finding_id: str = "",
        verdict: VerdictRecord | None = None,
    ) -> None:
        """``applied`` then ``confirmed`` (the effect was read back) in one transaction, with the
        late part of the evidence and the finding's verdict: one commit on the hot path."""
        now = time.time()
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE response_actions SET phase = 'confirmed', updated = ?, detail = ?, state = ?, method = ?,"
                " active = CASE WHEN dry_run = 1 THEN 0 ELSE ? END WHERE id = ?",
                (now, detail, json.dumps(dict(state), default=str, sort_keys=True), method, int(active), action_id),
            )
            for phase in ("applied", "confirmed"):
                conn.execute(
                    "INSERT INTO response_history(action_id, ts, phase, detail) VALUES (?,?,?,?)",
                    (action_id, now, phase, detail),
                )
            if evidence is not None:
                conn.execute(
                    "INSERT INTO response_evidence(action_id, ts, data) VALUES (?,?,?)",
                    (action_id, now, json.dumps(evidence, default=str)),
                )
            if finding_id and verdict is not None:
                conn.execute(
                    "UPDATE findings SET verdict = ? WHERE id = ?",
                    (json.dumps(verdict.to_dict(), default=str, sort_keys=True), finding_id),
                )

    def get(self, action_id: str) -> ActionRecord | None:
        """One action record, or None."""
        rows = self.store.query("SELECT * FROM response_actions WHERE id = ?", (action_id,))
        return ActionRecord.from_row(rows[0]) if rows else None

    def must_get(self, action_id: str) -> ActionRecord:
        """One action record that must exist (the engine just wrote it)."""
        rec = self.get(action_id)
        if rec is None:
            raise LookupError(f"no action record {action_id}")
        return rec

    def active(self, container_id: str = "") -> list[ActionRecord]:
        """Isolations in effect (or pending), oldest first."""
        sql = "SELECT * FROM response_actions WHERE active = 1"
        args: list[Any] = []
        if container_id:
            sql += " AND container_id = ?"
            args.append(container_id)
        return [ActionRecord.from_row(r) for r in self.store.query(sql + " ORDER BY created", args)]

    def pending(self) -> list[ActionRecord]:
        """Actions a crash may have interrupted (see ``PENDING``), oldest first."""
        marks = ",".join("?" * len(PENDING))
        return [
            ActionRecord.from_row(r)
            for r in self.store.query(
                f"SELECT * FROM response_actions WHERE phase IN ({marks}) ORDER BY created", PENDING
            )
        ]

    def actions(self, container: str = "", limit: int = 100) -> list[ActionRecord]:
        """Action records, newest first (container: id prefix or name)."""
        sql = "SELECT * FROM response_actions"
        args: list[Any] = []
        if container:
            sql += " WHERE container_id LIKE ? OR container_name = ?"
            args += [container + "%", container]
        sql += " ORDER BY created DESC LIMIT ?"
        args.append(max(1, min(limit, 10000)))
        return [ActionRecord.from_row(r) for r in self.store.query(sql, args)]

    def history(self, action_id: str) -> list[HistoryEntry]:
        """The phases an action went through, in order."""
        return [
            HistoryEntry(ts=float(r["ts"]), phase=str(r["phase"]), detail=str(r["detail"]))
            for r in self.store.query(
                "SELECT ts, phase, detail FROM response_history WHERE action_id = ? ORDER BY ts, rowid",
                (action_id,),
            )
        ]

    def evidence(self, action_id: str) -> list[dict[str, Any]]:
        """Evidence rows of an action, in the order they were taken."""
        return [
            json.loads(r["data"])
            for r in self.store.query(
                "SELECT data FROM response_evidence WHERE action_id = ? ORDER BY ts, rowid", (action_id,)
            )
        ]
