# SPDX-License-Identifier: Apache-2.0
"""What the netpolicy component holds per container, and its rows in the store.

``Tracked`` is the in-memory view of one container (wiring, allowlist, learning, counters);
``StateStore`` keeps the part that must survive an agent restart in ``netpolicy_state`` and the
memory of reported posture findings in ``netpolicy_reported``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.network.allowlist import Allowlist
from agent.runtime.model import Container
from agent.store import Store


@dataclass
class Tracked:
    """What the component holds about one container."""

    container: Container
    managed: dict[str, Any] = field(default_factory=dict)
    allowlist: Allowlist | None = None
    proposal: Allowlist | None = None
    learning_until: float = 0.0
    rules: str = ""  # "" | enforce | observe | learning
    refused: str = ""  # why rules were not applied
    selinux: dict[str, Any] = field(default_factory=dict)
    last_counters: dict[str, dict[str, int]] = field(default_factory=dict)
    last_read: float = 0.0
    denied_packets: int = 0
    seen_egress: set[tuple[str, str, int]] = field(default_factory=set)
    seen_ingress: set[tuple[str, int]] = field(default_factory=set)

    def summary(self) -> dict[str, Any]:
        """One line of the component's status for this container."""
        return {
            "name": self.container.name,
            "managed": self.managed.get("address", ""),
            "rules": self.rules,
            "refused": self.refused,
            "allowlist": self.allowlist.source if self.allowlist else "",
            "learning": self.rules == "learning",
            "denied_packets": self.denied_packets,
        }

    def describe(self, table: Mapping[str, Any] | None, error: str = "") -> dict[str, Any]:
        """What the ``netpolicy`` control method shows: allowlist, proposal, rules as read back
        (``table``, from ``nft.read``), counters, SELinux policy."""
        c = self.container
        return {
            "container": {"id": c.id, "name": c.name, "image": c.image, "labels": dict(c.labels)},
            "managed": {k: v for k, v in self.managed.items() if k != "result"},
            "mode": self.rules or "none",
            "refused": self.refused,
            "allowlist": self.allowlist.to_dict() if self.allowlist else None,
            "proposal": self.proposal.to_dict() if self.proposal else None,
            "learning_until": self.learning_until,
            "rules": (table or {}).get("text", ""),
            "counters": (table or {}).get("counters", {}),
            "denied_packets": self.denied_packets,
            "selinux": self.selinux,
            "error": error,
        }


class StateStore:
    """Reads and writes of ``netpolicy_state`` and ``netpolicy_reported``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def save(self, t: Tracked) -> None:
        """Store the wiring, the learned allowlist, the proposal and the learning deadline."""
        self.store.execute(
            "INSERT INTO netpolicy_state(container_id, container_name, netns_inode, managed, allowlist, proposal, "
            "learning_until, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(container_id) DO UPDATE SET "
            "container_name = excluded.container_name, netns_inode = excluded.netns_inode, managed = excluded.managed, "
            "allowlist = excluded.allowlist, proposal = excluded.proposal, learning_until = excluded.learning_until, "
            "updated = excluded.updated",
            (
                t.container.id,
                t.container.name,
                t.container.netns_inode,
                json.dumps(t.managed),
                json.dumps(t.allowlist.to_dict() if t.allowlist and t.allowlist.source == "learned" else None),
                json.dumps(t.proposal.to_dict() if t.proposal else None),
                t.learning_until,
                time.time(),
            ),
        )

    def load(self, cid: str) -> dict[str, Any] | None:
        """The stored state of a container (``managed``, ``allowlist``, ``proposal`` decoded)."""
        rows = self.store.query("SELECT * FROM netpolicy_state WHERE container_id = ?", (cid,))
        if not rows:
            return None
        r = rows[0]
        out: dict[str, Any] = {"netns_inode": int(r["netns_inode"]), "learning_until": float(r["learning_until"])}
        for key in ("managed", "allowlist", "proposal"):
            try:
                out[key] = json.loads(r[key])
            except ValueError:
                out[key] = None
        return out

    def known(self) -> set[str]:
        """Ids of every container with stored state."""
        return {str(r[0]) for r in self.store.query("SELECT container_id FROM netpolicy_state")}

    def forget(self, cid: str) -> None:
        """Drop a stopped container's state and its reported-findings memory."""
        self.store.execute("DELETE FROM netpolicy_state WHERE container_id = ?", (cid,))
        self.store.execute("DELETE FROM netpolicy_reported WHERE container_id = ?", (cid,))

    def first_report(self, cid: str, detector_id: str) -> bool:
        """Remember that ``detector_id`` was reported for ``cid``; True the first time only."""
        cur = self.store.execute(
            "INSERT OR IGNORE INTO netpolicy_reported(container_id, detector_id, ts) VALUES (?, ?, ?)",
            (cid, detector_id, time.time()),
        )
        return bool(cur.rowcount)
