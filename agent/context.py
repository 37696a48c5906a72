# SPDX-License-Identifier: Apache-2.0
"""What every component receives: config, host paths, store, registry, buses, its own metrics.

A component is any object with ``name``, ``start(ctx)``, ``stop()`` and ``status()``. Each
subsystem exposes ``build(ctx, ...) -> Component | None`` (``None`` when disabled in config);
``agent.wiring`` builds them in order, hands each the components it uses as arguments and
subscribes their handlers; ``agent.app`` starts them in order and stops them in reverse.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from agent.config import AgentConfig
from agent.events import Event
from agent.findings import ActionResult, Finding, Verdict
from agent.hostfs import HostPaths
from agent.pipeline import Bus
from agent.runtime.model import ContainerRegistry
from agent.store import Store

ControlHandler = Callable[[Mapping[str, Any]], Any]


class FindingSink(Protocol):
    """Where the response reports each finding with its verdict and action, and each action
    result (``agent.outputs.component.Outputs``)."""

    def emit_finding(
        self,
        finding: Finding | Mapping[str, Any],
        verdict: Verdict | Mapping[str, Any] | str | None = None,
        action: ActionResult | Mapping[str, Any] | str | None = None,
    ) -> dict[str, Any]: ...

    def emit_action(self, result: ActionResult | Mapping[str, Any]) -> dict[str, Any]: ...


class Component(Protocol):
    name: str

    def start(self, ctx: AgentContext) -> None: ...

    def stop(self) -> None: ...

    def status(self) -> Mapping[str, Any]: ...


@dataclass
class AgentContext:
    """Shared services of one running agent (or of one test)."""

    config: AgentConfig
    paths: HostPaths
    store: Store
    registry: ContainerRegistry
    events: Bus[Event]
    findings: Bus[Finding]
    # Prometheus collectors: the wiring gives each component a registry of its own, dropped
    # with the component (a reload registers the new component's collectors afresh).
    metrics: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))
    stopping: threading.Event = field(default_factory=threading.Event)
    # Control-socket methods: name -> handler(params) -> JSON-serialisable result.
    control_methods: dict[str, ControlHandler] = field(default_factory=dict)

    @classmethod
    def in_state(cls, state: Path, config: AgentConfig | None = None, paths: HostPaths | None = None) -> AgentContext:
        """A context of its own below ``state`` (offline tools, tests): the state and run
        directories and the store there, a fresh registry and buses; ``paths`` (default: the
        host's) for everything else."""
        return cls(
            config=config or AgentConfig(),
            paths=(paths or HostPaths()).with_state(state, run=state / "run"),
            store=Store(state / "agent.db"),
            registry=ContainerRegistry(),
            events=Bus[Event]("events"),
            findings=Bus[Finding]("findings"),
        )

    def publish(self, event: Event) -> bool:
        """Hand an event to the dispatcher; never blocks (a full queue counts a drop)."""
        return self.events.publish(event)

    def report(self, finding: Finding) -> bool:
        """Hand a finding to the response; never blocks."""
        return self.findings.publish(finding)

    def control(self, method: str, handler: ControlHandler) -> None:
        """Register a control-socket method (``riskguardctl`` talks to these)."""
        if method in self.control_methods:
            raise ValueError(f"control method {method!r} registered twice")
        self.control_methods[method] = handler
