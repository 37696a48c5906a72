# SPDX-License-Identifier: Apache-2.0
"""Baselines per image in the state database: training windows and versioned model blobs.

Tables (``store.migrate("behavior", MIGRATIONS)``):

- ``behavior_baselines``: one row per baseline key (the image, or the value of the
  ``behavior.group_label`` label): learning/scoring state, frozen flag, current model version.
- ``behavior_models``: versioned blobs per key and kind (``deviation``: the ``.npz`` of
  ``DeviationModel``; ``chain``: the JSON of the bigram ``NgramModel``), with the feature version,
  algorithm, window count and metadata; the newest ``KEEP_VERSIONS`` are kept.
- ``behavior_training``: the feature rows (float64 bytes) of the windows a baseline learned from,
  and their syscall transition counts (``seqlive.encode_transitions``; schema v2), so learning
  survives a restart and refits see the same data.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.behavior.features import FEATURE_VERSION, N_FEATURES
from agent.findings import TAINTING_SQL
from agent.store import Store

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MIGRATIONS: list[str] = [
    """
    CREATE TABLE behavior_baselines (
        image TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        frozen INTEGER NOT NULL DEFAULT 0,
        first_seen REAL NOT NULL,
        version INTEGER NOT NULL DEFAULT 0,
        fitted REAL NOT NULL DEFAULT 0,
        updated REAL NOT NULL
    );
    CREATE TABLE behavior_models (
        image TEXT NOT NULL,
        kind TEXT NOT NULL,
        version INTEGER NOT NULL,
        created REAL NOT NULL,
        feature_version INTEGER NOT NULL,
        algorithm TEXT NOT NULL,
        windows INTEGER NOT NULL,
        meta TEXT NOT NULL,
        blob BLOB NOT NULL,
        PRIMARY KEY (image, kind, version)
    );
    CREATE TABLE behavior_training (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        image TEXT NOT NULL,
        ts REAL NOT NULL,
        container_id TEXT NOT NULL,
        features BLOB NOT NULL
    );
    CREATE INDEX behavior_training_image ON behavior_training(image, id);
    """,
    "ALTER TABLE behavior_training ADD COLUMN transitions BLOB;",
]

KEEP_VERSIONS = 3
_SELECT = "SELECT image, state, frozen, first_seen, version, fitted FROM behavior_baselines"


@dataclass
class TrainingSet:
    """A baseline's training windows: feature rows, transition blobs and container ids, aligned."""

    rows: npt.NDArray[np.float64]
    transitions: list[bytes]
    containers: list[str]


@dataclass
class BaselineRow:
    """The persistent state of one baseline."""

    image: str
    state: str  # learning | scoring
    frozen: bool
    first_seen: float
    version: int
    fitted: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "state": self.state,
            "frozen": self.frozen,
            "first_seen": self.first_seen,
            "version": self.version,
            "fitted": self.fitted,
        }


class BaselineStore:
    """Reads and writes baselines, models and training rows in the agent's store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate("behavior", MIGRATIONS)

    # --- baselines --------------------------------------------------------------------
    def get(self, image: str) -> BaselineRow | None:
        rows = self.store.query(
            _SELECT + " WHERE image = ?",
            (image,),
        )
        return _row(rows[0]) if rows else None

    def all(self) -> list[BaselineRow]:
        return [_row(r) for r in self.store.query(_SELECT + " ORDER BY image")]

    def create(self, image: str, now: float) -> BaselineRow:
        self.store.execute(
            "INSERT OR IGNORE INTO behavior_baselines"
            "(image, state, frozen, first_seen, version, fitted, updated) "
            "VALUES (?, 'learning', 0, ?, 0, 0, ?)",
            (image, now, now),
        )
        row = self.get(image)
        assert row is not None
        return row

    def set_frozen(self, image: str, frozen: bool) -> bool:
        cur = self.store.execute(
            "UPDATE behavior_baselines SET frozen = ?, updated = ? WHERE image = ?",
            (int(frozen), time.time(), image),
        )
        return cur.rowcount > 0

    def reset(self, image: str, now: float) -> None:
        """Forget a baseline's training windows and models: it learns again from now."""
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM behavior_training WHERE image = ?", (image,))
            conn.execute("DELETE FROM behavior_models WHERE image = ?", (image,))
            conn.execute(
                "UPDATE behavior_baselines SET state = 'learning', version = 0, fitted = 0, first_seen = ?, "
                "updated = ? WHERE image = ?",
                (now, now, image),
            )

    # --- training rows ----------------------------------------------------------------
    def add_training(
        self, image: str, container_id: str, ts: float, row: list[float], transitions: bytes | None = None
    ) -> None:
        import numpy as np

        self.store.execute(
            "INSERT INTO behavior_training(image, ts, container_id, features, transitions) VALUES (?, ?, ?, ?, ?)",
            (image, ts, container_id, np.asarray(row, dtype="<f8").tobytes(), transitions),
        )

    def training_set(self, image: str, limit: int) -> TrainingSet:
        """The newest ``limit`` training windows of ``image`` (oldest first): feature rows, their
        transition blobs and containers; rows of another feature length are skipped."""
        import numpy as np

        rows = self.store.query(
            "SELECT features, transitions, container_id FROM behavior_training WHERE image = ? "
            "ORDER BY id DESC LIMIT ?",
            (image, limit),
        )
        vecs, trans, containers = [], [], []
        for features, blob, cid in reversed(rows):
            v = np.frombuffer(bytes(features), dtype="<f8")
            if v.shape == (N_FEATURES,):
                vecs.append(v)
                trans.append(bytes(blob) if blob else b"")
                containers.append(str(cid))
        return TrainingSet(np.vstack(vecs) if vecs else np.zeros((0, N_FEATURES)), trans, containers)

    def training(self, image: str, limit: int) -> npt.NDArray[np.float64]:
        """The newest ``limit`` training rows of ``image`` (oldest first); malformed rows skipped."""
        import numpy as np

        rows = self.store.query(
            "SELECT features FROM behavior_training WHERE image = ? ORDER BY id DESC LIMIT ?", (image, limit)
        )
        vecs = [np.frombuffer(bytes(r[0]), dtype="<f8") for r in reversed(rows)]
        vecs = [v for v in vecs if v.shape == (N_FEATURES,)]
        return np.vstack(vecs) if vecs else np.zeros((0, N_FEATURES))

    def training_count(self, image: str) -> int:
        rows = self.store.query("SELECT COUNT(*) FROM behavior_training WHERE image = ?", (image,))
        return int(rows[0][0])

    def trim_training(self, image: str, keep: int) -> None:
        self.store.execute(
            "DELETE FROM behavior_training WHERE image = ? AND id NOT IN "
            "(SELECT id FROM behavior_training WHERE image = ? ORDER BY id DESC LIMIT ?)",
            (image, image, keep),
        )

    # --- models -----------------------------------------------------------------------
    def save_models(
        self,
        image: str,
        blobs: dict[str, bytes],
        algorithm: str,
        windows: int,
        meta: dict[str, Any],
        now: float,
    ) -> int:
        """Store a new version of every blob in ``blobs`` (kind → bytes); return the version."""
        with self.store.transaction() as conn:
            row = conn.execute("SELECT version FROM behavior_baselines WHERE image = ?", (image,)).fetchone()
            version = (int(row[0]) if row else 0) + 1
            for kind, blob in blobs.items():
                conn.execute(
                    "INSERT INTO behavior_models(image, kind, version, created, feature_version, algorithm, "
                    "windows, meta, blob) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (image, kind, version, now, FEATURE_VERSION, algorithm, windows, json.dumps(meta), blob),
                )
            conn.execute(
                "UPDATE behavior_baselines SET state = 'scoring', version = ?, fitted = ?, updated = ? WHERE image = ?",
                (version, now, now, image),
            )
            conn.execute(
                "DELETE FROM behavior_models WHERE image = ? AND version <= ?",
                (image, version - KEEP_VERSIONS),
            )
        return version

    def load_model(self, image: str, kind: str, version: int | None = None) -> tuple[int, bytes] | None:
        """The blob of ``kind`` at ``version`` (newest when None) for the current feature version."""
        if version is None:
            rows = self.store.query(
                "SELECT version, blob FROM behavior_models "
                "WHERE image = ? AND kind = ? AND feature_version = ? ORDER BY version DESC LIMIT 1",
                (image, kind, FEATURE_VERSION),
            )
        else:
            rows = self.store.query(
                "SELECT version, blob FROM behavior_models WHERE image = ? AND kind = ? AND version = ? "
                "AND feature_version = ?",
                (image, kind, version, FEATURE_VERSION),
            )
        return (int(rows[0][0]), bytes(rows[0][1])) if rows else None

    def model_versions(self, image: str) -> list[dict[str, Any]]:
        return [
            {
                "version": int(r[0]),
                "kind": str(r[1]),
                "created": float(r[2]),
                "algorithm": str(r[3]),
                "windows": int(r[4]),
                "bytes": int(r[5]),
            }
            for r in self.store.query(
                "SELECT version, kind, created, algorithm, windows, length(blob) FROM behavior_models "
                "WHERE image = ? ORDER BY version, kind",
                (image,),
            )
        ]

    # --- findings guard ---------------------------------------------------------------
    def has_open_finding(self, container_id: str) -> bool:
        rows = self.store.query(
            "SELECT 1 FROM findings WHERE container_id = ? AND status = 'open' LIMIT 1", (container_id,)
        )
        return bool(rows)

    def behaviour_finding_near(self, container_id: str, start: float, end: float) -> bool:
        """An open finding about what the container did (``TAINTING_SQL``) has its time in
        [start, end]."""
        rows = self.store.query(
            "SELECT 1 FROM findings WHERE container_id = ? AND status = 'open' AND ts >= ? AND ts <= ? AND "
            + TAINTING_SQL
            + " LIMIT 1",
            (container_id, start, end),
        )
        return bool(rows)

    def known_finding_ids(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` the store has recorded (in any status)."""
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        return {str(r[0]) for r in self.store.query(f"SELECT id FROM findings WHERE id IN ({marks})", ids)}


def _row(r: Any) -> BaselineRow:
    return BaselineRow(
        image=str(r[0]),
        state=str(r[1]),
        frozen=bool(r[2]),
        first_seen=float(r[3]),
        version=int(r[4]),
        fitted=float(r[5]),
    )
