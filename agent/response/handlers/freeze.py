# SPDX-License-Identifier: Apache-2.0
"""The ``freeze`` action: every process of the container stopped through its cgroup freezer
(``agent.response.freeze``), thawed on release, checked on every sweep (``docker unpause``
writes the same v1 freezer)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.findings import Action
from agent.response import freeze as freezer
from agent.response.handlers.base import BaseHandler, HandlerDeps, Outcome, Request
from agent.response.model import ActionRecord


class FreezeHandler(BaseHandler):
    """Freeze / thaw through the v1 ``freezer.state`` or the v2 ``cgroup.freeze``."""

    name = str(Action.FREEZE)
    isolation = True
    check_every_sweep = True
    applied_event = "container_frozen"

    def __init__(self, deps: HandlerDeps) -> None:
        super().__init__(deps)
        self.default_method = self.settings.freezer
        self.evidence_after_apply = self.settings.evidence_connections == "after_freeze"

    def apply(self, req: Request) -> Outcome:
        return freezer.freeze(self.paths, req.container, req.method, self.settings.freeze_timeout_seconds, req.dry_run)

    def release(self, rec: ActionRecord) -> Outcome:
        return freezer.thaw(self.paths, rec.container_id, rec.state)

    def is_applied(self, rec: ActionRecord) -> bool | None:
        if freezer.current_state(self.paths, rec.state) != "frozen":
            return False
        # A frozen cgroup with no process left freezes nothing: the container is gone (the sweep
        # then asks ``gone``, which removes that leftover).
        return not freezer.holds_no_process(*freezer.recorded(rec.state))

    def gone(self, rec: ActionRecord) -> bool:
        if rec.state.get("cgroup"):
            return freezer.remove_leftover(rec.container_id, rec.state)
        return super().gone(rec)

    def method_used(self, state: Mapping[str, Any], requested: str) -> str:
        return str(state.get("method") or state.get("freezer") or requested)

    def view(self, rec: ActionRecord) -> dict[str, Any]:
        if not rec.state.get("cgroup"):
            return {}
        return {"freezer_state": freezer.current_state(self.paths, rec.state)}
