# SPDX-License-Identifier: Apache-2.0
"""Patch plans in observe mode: a verdict that would patch, but is not enforced, still gets its
plan stored (``riskguardctl plans`` shows it marked "not applied"), built from the findings'
package fixes only: no Kubernetes call, not even a dry run."""

from __future__ import annotations

import structlog

from agent.context import AgentContext
from agent.findings import Action, Finding, Verdict

log = structlog.get_logger("agent.response")


def plan_observed(ctx: AgentContext, finding: Finding, verdict: Verdict) -> str:
    """Store the observed plan for ``verdict`` when it is an unenforced patch; return the plan id
    (``""`` when no plan was due or the container is gone)."""
    if verdict.enforce or verdict.action != Action.PATCH:
        return ""
    c = ctx.registry.get(finding.container_id) if finding.container_id else None
    if c is None:
        return ""
    from agent.response.patch import plan_for

    try:
        plan = plan_for(ctx, c, [finding], observe=True)
    except Exception as exc:  # a plan is advice: never break the findings bus
        log.error("patch_plan_failed", container_id=c.short_id, error=repr(exc))
        return ""
    return plan.id
