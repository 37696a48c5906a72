# SPDX-License-Identifier: Apache-2.0
"""The state database: WAL, per-component migrations, refusal of a newer schema, key/value."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.store import Store


def test_wal_and_core_schema(store: Store) -> None:
    assert store.query("PRAGMA journal_mode")[0][0] == "wal"
    assert store.schema_version("core") >= 1
    names = {r[0] for r in store.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"findings", "kv", "schema_versions"} <= names


def test_component_migrations_apply_once_and_in_order(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    s = Store(db)
    assert s.migrate("widget", ["CREATE TABLE w (a INTEGER)"]) == 1
    s.execute("INSERT INTO w VALUES (1)")
    s.close()
    s = Store(db)
    # a second release adds a column: only the new migration runs, data survives
    assert s.migrate("widget", ["CREATE TABLE w (a INTEGER)", "ALTER TABLE w ADD COLUMN b TEXT DEFAULT 'x'"]) == 2
    assert [tuple(r) for r in s.query("SELECT a, b FROM w")] == [(1, "x")]
    assert s.schema_version("widget") == 2
    s.close()


def test_newer_database_is_refused(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db")
    s.migrate("widget", ["CREATE TABLE w (a)", "CREATE TABLE w2 (a)"])
    with pytest.raises(RuntimeError, match="newer than this agent"):
        s.migrate("widget", ["CREATE TABLE w (a)"])


def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db")
    with pytest.raises(sqlite3.OperationalError):
        s.migrate("bad", ["CREATE TABLE ok1 (a); CREATE TABLE broken ("])
    assert s.schema_version("bad") == 0
    assert not s.query("SELECT name FROM sqlite_master WHERE name='ok1'")


def test_kv_roundtrip(store: Store) -> None:
    assert store.kv_get("ns", "k") is None
    store.kv_put_json("ns", "k", {"offset": 3})
    store.kv_put_json("ns", "k", {"offset": 4})
    assert store.kv_get_json("ns", "k") == {"offset": 4}
    assert store.kv_items("ns") == [("k", b'{"offset": 4}')]
    store.kv_delete("ns", "k")
    assert store.kv_get("ns", "k") is None
