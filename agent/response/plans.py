# SPDX-License-Identifier: Apache-2.0
"""Stored patch plans (table ``patch_plans``) and the control method ``plans`` that lists them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agent.context import AgentContext

if TYPE_CHECKING:
    from agent.response.patch import Plan

PLAN_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE patch_plans (
        id TEXT PRIMARY KEY,
        ts REAL NOT NULL,
        container_id TEXT NOT NULL,
        container_name TEXT NOT NULL,
        image TEXT NOT NULL,
        status TEXT NOT NULL,
        target TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX patch_plans_container ON patch_plans(container_id, ts)
    """,
)


def migrate(ctx: AgentContext) -> None:
    ctx.store.migrate("patch", PLAN_MIGRATIONS)


def save_plan(ctx: AgentContext, plan: Plan) -> None:
    """Store (or replace) a plan."""
    migrate(ctx)
    target = ""
    if plan.kubernetes and plan.kubernetes.get("target"):
        t = plan.kubernetes["target"]
        target = f"{t.get('kind', '')}/{plan.kubernetes.get('namespace', '')}/{t.get('name', '')}"
    ctx.store.execute(
        "INSERT OR REPLACE INTO patch_plans"
        "(id, ts, container_id, container_name, image, status, target, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            plan.id,
            plan.ts,
            plan.container_id,
            plan.container_name,
            plan.image,
            plan.status,
            target,
            json.dumps(plan.to_dict(), sort_keys=True, default=str),
        ),
    )


def list_plans(ctx: AgentContext, container: str = "", plan_id: str = "", limit: int = 50) -> list[dict[str, Any]]:
    """Stored plans, newest first; ``container`` matches an id prefix or a name."""
    migrate(ctx)
    where, params = _where(container, plan_id)
    sql = "SELECT body FROM patch_plans" + where
    sql += " ORDER BY ts DESC LIMIT ?"
    params.append(max(1, min(int(limit), 10_000)))
    return [json.loads(r[0]) for r in ctx.store.query(sql, params)]


def count_plans(ctx: AgentContext, container: str = "", plan_id: str = "") -> int:
    """How many stored plans ``list_plans`` would select without a limit."""
    migrate(ctx)
    where, params = _where(container, plan_id)
    return int(ctx.store.query("SELECT COUNT(*) FROM patch_plans" + where, params)[0][0])


def _where(container: str, plan_id: str) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if plan_id:
        where.append("id LIKE ?")
        params.append(plan_id + "%")
    if container:
        where.append("(container_id LIKE ? OR container_name = ?)")
        params += [container + "%", container]
    return (" WHERE " + " AND ".join(where) if where else ""), params


def register_control(ctx: AgentContext) -> None:
    """Register the control method ``plans`` (params: container, id, limit); idempotent."""
    migrate(ctx)
    if "plans" in ctx.control_methods:
        return

    def _plans(params: Mapping[str, Any]) -> list[dict[str, Any]] | dict[str, Any]:
        try:
            limit = int(params.get("limit", 50))
        except (TypeError, ValueError):
            raise ValueError("limit must be an integer") from None
        container, plan_id = str(params.get("container") or ""), str(params.get("id") or "")
        plans = list_plans(ctx, container, plan_id, limit)
        if not params.get("with_total"):
            return plans
        total = len(plans) if len(plans) < limit else count_plans(ctx, container, plan_id)
        return {"plans": plans, "total": total}

    ctx.control("plans", _plans)
