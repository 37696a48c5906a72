# SPDX-License-Identifier: Apache-2.0
"""The ``patch`` action: a stored patch plan for a vulnerable container (``agent.response.patch``);
one-shot, nothing to release."""

from __future__ import annotations

from agent.findings import Action, ActionResult
from agent.response.handlers.base import BaseHandler, Outcome, Request


class PatchHandler(BaseHandler):
    """Builds, dry-runs (or applies, when configured) and stores the container's patch plan."""

    name = str(Action.PATCH)

    def apply(self, req: Request) -> Outcome:
        from agent.response.patch import plan_for

        c = req.container
        plan = plan_for(self.ctx, c, [req.finding] if req.finding else [], kube=self.deps.kube)
        d = plan.to_dict()
        return ActionResult(
            action=Action.PATCH,
            container_id=c.id,
            ok=True,
            detail=f"patch plan {d.get('id', '')}: {d.get('status', '')}",
            state={"method": "plan", "plan_id": d.get("id", "")},
        )
