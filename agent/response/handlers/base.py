# SPDX-License-Identifier: Apache-2.0
"""The protocol every response action implements, and a base class with its defaults.

The engine records an action, asks its handler to ``apply`` it, and later to ``release`` it,
whether it ``is_applied`` still, and to ``reconcile`` it (periodic upkeep of an isolation in
place). It never branches on the action's name: what differs between actions is said here, by
the handler's attributes (``isolation``, ``default_method``, ``check_every_sweep`` …).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from agent.context import AgentContext
from agent.findings import Finding
from agent.response.model import ActionRecord
from agent.runtime.model import Container

if TYPE_CHECKING:
    from agent.response.kube import KubeClient


@dataclass(frozen=True, slots=True)
class HandlerDeps:
    """What handlers are built with: the agent's context and the optional Kubernetes client."""

    ctx: AgentContext
    kube: KubeClient | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """One action to apply to one container."""

    container: Container
    method: str  # the handler's default_method unless the operator asked for another
    dry_run: bool
    reason: str
    finding: Finding | None = None  # the finding that led to it (operator requests have one too)


class Outcome(Protocol):
    """What ``apply``/``release`` return (``agent.findings.ActionResult`` is one)."""

    @property
    def ok(self) -> bool: ...

    @property
    def detail(self) -> str: ...

    @property
    def state(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Done:
    """A plain ``Outcome`` for handlers that have no ``ActionResult`` of their own."""

    ok: bool
    detail: str
    state: Mapping[str, Any] = field(default_factory=dict)


class ActionHandler(Protocol):
    """One response action: apply / release / is_applied / reconcile, and what sets it apart."""

    name: str
    # Stays in effect until released: recorded active, idempotent, with an evidence snapshot,
    # re-asserted when undone behind the agent's back; the operator's ``isolate`` may request it.
    isolation: bool
    default_method: str  # recorded when the request names none
    check_every_sweep: bool  # is_applied is cheap enough for every sweep (else every 10th)
    evidence_after_apply: bool  # the netns sockets are read after apply, not in the first snapshot
    applied_event: str  # the log event of a confirmed apply

    def apply(self, req: Request) -> Outcome:
        """Carry the action out and read its effect back; ``state`` is all ``release`` needs."""
        ...

    def release(self, rec: ActionRecord) -> Outcome:
        """Undo what ``rec.state`` says was done: exactly that."""
        ...

    def is_applied(self, rec: ActionRecord) -> bool | None:
        """Whether the effect is still in place (None: cannot tell)."""
        ...

    def reconcile(self, rec: ActionRecord, container: Container) -> None:
        """Periodic upkeep of an action in place, beyond re-asserting it."""
        ...

    def gone(self, rec: ActionRecord) -> bool:
        """Whether the action's target no longer exists (the container exited)."""
        ...

    def view(self, rec: ActionRecord) -> dict[str, Any]:
        """Extra fields read back now for the ``status`` listing of isolations."""
        ...

    def method_used(self, state: Mapping[str, Any], requested: str) -> str:
        """The method an ``apply`` actually used (as its ``state`` says), else ``requested``."""
        ...


class BaseHandler:
    """Defaults of ``ActionHandler``: a one-shot action (not an isolation) that has nothing to
    release and cannot be read back. Subclasses set ``name`` and implement ``apply``."""

    name = ""
    isolation = False
    default_method = ""
    check_every_sweep = False
    evidence_after_apply = False
    applied_event = ""  # default: container_<name>_applied

    def __init__(self, deps: HandlerDeps) -> None:
        self.deps = deps
        self.ctx = deps.ctx
        self.paths = deps.ctx.paths
        self.settings = deps.ctx.config.response
        if not self.applied_event:
            self.applied_event = f"container_{self.name}_applied"

    def apply(self, req: Request) -> Outcome:
        raise NotImplementedError

    def release(self, rec: ActionRecord) -> Outcome:
        return Done(ok=False, detail=f"{self.name} cannot be released")

    def is_applied(self, rec: ActionRecord) -> bool | None:
        return None

    def reconcile(self, rec: ActionRecord, container: Container) -> None:
        return None

    def gone(self, rec: ActionRecord) -> bool:
        return not self.paths.pid_dir(rec.init_pid).exists() if rec.init_pid else True

    def view(self, rec: ActionRecord) -> dict[str, Any]:
        return {}

    def method_used(self, state: Mapping[str, Any], requested: str) -> str:
        return str(state.get("method") or requested)
