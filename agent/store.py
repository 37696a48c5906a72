# SPDX-License-Identifier: Apache-2.0
"""The state database: sqlite in WAL mode under the state directory (``/var/lib/riskguard``).

Schemas are versioned per component: each component owns an ordered list of migrations and calls
``Store.migrate(component, migrations)``; the version reached is kept in ``schema_versions``.
Connections are per thread; writes are serialised by sqlite (``busy_timeout``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# The store's own tables: findings, verdicts/actions (response records), and a small key/value
# table for components that need a few persistent values (offsets, model blobs).
CORE_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE findings (
        id TEXT PRIMARY KEY,
        ts REAL NOT NULL,
        container_id TEXT NOT NULL,
        container_name TEXT NOT NULL,
        image TEXT NOT NULL,
        source TEXT NOT NULL,
        detector_id TEXT NOT NULL,
        severity INTEGER NOT NULL,
        summary TEXT NOT NULL,
        evidence TEXT NOT NULL,
        mitre TEXT NOT NULL DEFAULT '',
        verdict TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'open'
    );
    CREATE INDEX findings_container ON findings(container_id, ts);
    CREATE INDEX findings_ts ON findings(ts);
    CREATE TABLE kv (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB,
        updated REAL NOT NULL,
        PRIMARY KEY (namespace, key)
    );
    """,
)


class Store:
    """A thread-safe handle on the agent's sqlite database."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._local = threading.local()
        self._lock = threading.Lock()
        conn = self.connection()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        self.migrate("core", CORE_MIGRATIONS)

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE … COMMIT, rolled back on error)."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.connection().execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return list(self.connection().execute(sql, params))

    # --- schema versions -----------------------------------------------------------------
    def schema_version(self, component: str) -> int:
        row = (
            self.connection()
            .execute("SELECT version FROM schema_versions WHERE component = ?", (component,))
            .fetchone()
        )
        return int(row[0]) if row else 0

    def migrate(self, component: str, migrations: Sequence[str]) -> int:
        """Apply ``migrations[current:]`` for ``component``; return the version reached.

        A database newer than this code (more versions than migrations) is refused, so an older
        agent never writes into a schema it does not understand.
        """
        with self._lock, self.transaction() as conn:
            row = conn.execute("SELECT version FROM schema_versions WHERE component = ?", (component,)).fetchone()
            current = int(row[0]) if row else 0
            if current > len(migrations):
                raise RuntimeError(
                    f"state database {self.path} has {component} schema v{current}, "
                    f"newer than this agent (v{len(migrations)})"
                )
            for sql in migrations[current:]:
                for statement in _split_sql(sql):
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_versions(component, version) VALUES (?, ?) "
                "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                (component, len(migrations)),
            )
        return len(migrations)

    # --- key/value ---------------------------------------------------------------------
    def kv_get(self, namespace: str, key: str) -> bytes | None:
        row = (
            self.connection()
            .execute("SELECT value FROM kv WHERE namespace = ? AND key = ?", (namespace, key))
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def kv_put(self, namespace: str, key: str, value: bytes) -> None:
        self.connection().execute(
            "INSERT INTO kv(namespace, key, value, updated) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(namespace, key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
            (namespace, key, value, time.time()),
        )

    def kv_get_json(self, namespace: str, key: str) -> Any:
        raw = self.kv_get(namespace, key)
        return None if raw is None else json.loads(raw)

    def kv_put_json(self, namespace: str, key: str, value: Any) -> None:
        self.kv_put(namespace, key, json.dumps(value, sort_keys=True).encode())

    def kv_items(self, namespace: str) -> list[tuple[str, bytes]]:
        return [
            (str(r[0]), bytes(r[1]))
            for r in self.connection().execute("SELECT key, value FROM kv WHERE namespace = ?", (namespace,))
        ]

    def kv_delete(self, namespace: str, key: str) -> None:
        self.connection().execute("DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (our migrations contain no literal ';')."""
    return [s.strip() for s in script.split(";") if s.strip()]
