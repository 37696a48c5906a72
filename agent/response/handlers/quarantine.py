# SPDX-License-Identifier: Apache-2.0
"""The ``quarantine`` action: the container cut off the network by one of the quarantine methods
(``agent.response.quarantine``: cgroup, netns, docker, kubernetes), released exactly as recorded.
Its tables are re-checked every 10th sweep (each check enters a netns)."""

from __future__ import annotations

import structlog

from agent.findings import Action
from agent.response import quarantine
from agent.response.handlers.base import BaseHandler, HandlerDeps, Outcome, Request
from agent.response.model import ActionRecord
from agent.runtime.model import Container

log = structlog.get_logger("agent.response")


class QuarantineHandler(BaseHandler):
    """Network quarantine through the method the settings (or the operator) name."""

    name = str(Action.QUARANTINE)
    isolation = True

    def __init__(self, deps: HandlerDeps) -> None:
        super().__init__(deps)
        self.default_method = self.settings.quarantine
        # the ``docker`` method disconnects through the dockerd the agent watches
        self.docker_url = deps.ctx.config.runtime.docker_url

    def apply(self, req: Request) -> Outcome:
        return quarantine.apply(
            self.paths,
            req.container,
            req.method,
            self.settings.quarantine_cgroup,
            req.dry_run,
            kube=self.deps.kube,
            reason=req.reason,
            docker_url=self.docker_url,
        )

    def release(self, rec: ActionRecord) -> Outcome:
        return quarantine.release(
            self.paths, rec.container_id, rec.init_pid, rec.state, kube=self.deps.kube, docker_url=self.docker_url
        )

    def is_applied(self, rec: ActionRecord) -> bool | None:
        try:
            return quarantine.is_applied(self.paths, rec.init_pid, rec.state)
        except Exception:
            return None

    def reconcile(self, rec: ActionRecord, container: Container) -> None:
        try:
            quarantine.reconcile(self.paths, container, rec.state)
        except OSError as exc:
            log.warning("netcls_sweep_failed", container_id=container.id, error=str(exc))
