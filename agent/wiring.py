# SPDX-License-Identifier: Apache-2.0
"""The pipeline in one function: ``wire`` builds every stage in start order, hands each stage the
stages it uses as arguments, and lists every subscription (events bus, findings bus, container
registry) by name; nothing else in the agent subscribes or looks a component up.

A ``Generation`` is what one config builds: its components (each with a Prometheus registry of
its own), its control methods and its subscriptions. ``agent.app`` starts a generation, makes it
live (``install``) and, on SIGHUP, builds the next one before stopping this one. A subsystem this
build leaves out (its module is absent) is skipped through ``agent.commands.import_optional``.
``docs/architecture.md``'s stage and subscription tables are generated from it
(``riskguard-agent pipeline --update docs/architecture.md``, run by ``make config``;
``agent/wiringdoc.py``) and ``tests/unit/foundation/test_wiring.py`` keeps them equal.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from agent.commands import import_optional
from agent.config import AgentConfig
from agent.context import AgentContext, Component
from agent.events import (
    AuditEvent,
    BehaviorWindow,
    Event,
    LogEntry,
    NetConnect,
    ProcessExec,
    ProcessExit,
)
from agent.findings import Finding
from agent.runtime.model import Container

if TYPE_CHECKING:
    from agent.behavior.component import BehaviorComponent
    from agent.detectors.component import DetectorsComponent
    from agent.logs.component import LogsComponent
    from agent.network.component import NetpolicyComponent
    from agent.outputs.component import Outputs
    from agent.response.component import ResponseComponent
    from agent.sources.capture import CaptureSource
    from agent.sources.ebpf import EbpfSource
    from agent.sources.window import WindowAggregator
    from agent.vuln.component import VulnComponent

log = structlog.get_logger("agent.wiring")

Topic = Literal["events", "findings", "containers"]
C = TypeVar("C")
E = TypeVar("E", bound=Event)
ContainerHandler = Callable[[str, Container], object]


@dataclass(frozen=True)
class Subscription:
    """One handler of one stage on one topic; ``kinds`` empty means every value."""

    stage: str
    topic: Topic
    name: str
    handler: Callable[..., object]
    kinds: tuple[type, ...] = ()
    # How the docs name ``kinds`` when config decides them (the detectors' event types).
    kinds_doc: str = ""
    # The condition under which the wiring makes this subscription ("" = whenever the stage runs).
    when: str = ""

    def row(self) -> tuple[str, str, str, str, str]:
        """(stage, topic, name, kinds, when) as ``docs/architecture.md`` shows it."""
        kinds = self.kinds_doc or (", ".join(k.__name__ for k in self.kinds) if self.kinds else "every")
        return (self.stage, self.topic, self.name, kinds, self.when)


@dataclass
class Stage:
    """One built component and the context it was built with (``ctx.metrics`` is its own registry);
    ``module``, ``given`` and ``produces`` are its row in the docs' stage table."""

    name: str
    component: Component
    ctx: AgentContext
    module: str = ""
    given: str = ""
    produces: str = ""


class Generation:
    """The components, subscriptions and control methods built from one config."""

    def __init__(
        self,
        base: AgentContext,
        config: AgentConfig,
        strict: bool = True,
        prebuilt: Mapping[str, object] | None = None,
    ) -> None:
        # Control methods the agent itself answers (status, containers) carry over; each
        # component's go into this generation's own table, live once ``install`` runs.
        core = {k: v for k, v in base.control_methods.items() if k in CORE_CONTROL}
        self.ctx = dataclasses.replace(base, config=config, control_methods=core) if prebuilt is None else base
        # ``attach``: these components, already built, are the only stages.
        self.prebuilt = prebuilt
        self.exposition = base.metrics  # served on /metrics; each stage registers on its own
        self.strict = strict
        self.stages: list[Stage] = []
        self.subscriptions: list[Subscription] = []
        self.build_errors: dict[str, str] = {}

    # --- building ------------------------------------------------------------------------
    def build(
        self,
        name: str,
        module: str,
        make: Callable[[ModuleType, AgentContext], C | None],
        *,
        given: str = "",
        produces: str = "",
        also: str = "",
    ) -> C | None:
        """Build stage ``name`` with ``make(module, ctx)``; ``None`` when disabled or left out.

        ``given`` (what it is handed besides ``ctx``), ``produces`` and ``also`` (more modules
        it spans) are its row in the docs' stage table. A builder that raises aborts the
        generation when ``strict`` (a reload keeps the running one); at start-up the stage is
        reported failed and the others go on.
        """
        where = ", ".join(f"`{m}`" for m in (module_path(module), also) if m)
        if self.prebuilt is not None:
            comp = self.prebuilt.get(name)
            if comp is not None:
                self.stages.append(Stage(name, cast(Component, comp), self.ctx, where, given, produces))
            return cast("C | None", comp)
        mod = import_optional(module)
        if mod is None:
            return None  # subsystem not part of this build
        ctx = dataclasses.replace(self.ctx, metrics=CollectorRegistry(auto_describe=True))
        try:
            comp = make(mod, ctx)
        except Exception as exc:
            if self.strict:
                raise BuildError(name, exc) from exc
            self.build_errors[name] = f"{type(exc).__name__}: {exc}"
            log.error("component_failed", component=name, error=self.build_errors[name][:500])
            return None
        if comp is None:
            log.info("component_disabled", component=name)
            return None
        self.stages.append(Stage(name, cast(Component, comp), ctx, where, given, produces))
        return comp

    def on_event(self, stage: str, name: str, kind: type[E], handler: Callable[[E], object], when: str = "") -> None:
        """Subscribe ``handler`` to events of type ``kind``."""
        self.subscriptions.append(Subscription(stage, "events", name, handler, (kind,), when=when))

    def on_events(
        self,
        stage: str,
        name: str,
        kinds: tuple[type[Event], ...],
        handler: Callable[[Event], object],
        kinds_doc: str = "",
    ) -> None:
        """Subscribe ``handler`` to events of any of ``kinds`` (``()``: every event)."""
        self.subscriptions.append(Subscription(stage, "events", name, handler, kinds, kinds_doc))

    def on_finding(self, stage: str, name: str, handler: Callable[[Finding], object], when: str = "") -> None:
        """Subscribe ``handler`` to every finding."""
        self.subscriptions.append(Subscription(stage, "findings", name, handler, (Finding,), when=when))

    def on_container(self, stage: str, name: str, handler: ContainerHandler, when: str = "") -> None:
        """Call ``handler(what, container)`` when the registry adds, updates or removes a container."""
        self.subscriptions.append(Subscription(stage, "containers", name, handler, when=when))

    # --- reading ----------------------------------------------------------------------------
    @property
    def components(self) -> list[Component]:
        """The built components in start order."""
        return [s.component for s in self.stages]

    def statuses(self) -> dict[str, Mapping[str, Any]]:
        """Each component's ``status()`` (one that raises is left out): read by the outputs' metrics."""
        out: dict[str, Mapping[str, Any]] = {}
        for s in self.stages:
            try:
                out[s.name] = s.component.status()
            except Exception:  # a component's status must never break a scrape
                continue
        return out

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """Every subscription as the docs table shows it, in subscription order."""
        return [s.row() for s in self.subscriptions]


class BuildError(Exception):
    """A stage's builder raised while building a generation."""

    def __init__(self, stage: str, cause: Exception) -> None:
        super().__init__(f"{stage}: {type(cause).__name__}: {cause}")
        self.stage = stage


CORE_CONTROL = ("status", "containers")


def module_path(module: str) -> str:
    """How the docs name a stage's module: its package for ``agent.x.component`` or a package
    (``agent/outputs/``), else its file (``agent/sources/window.py``)."""
    parts = module.split(".")
    if parts[-1] == "component":
        parts.pop()
    elif not (Path(__file__).parent.parent.joinpath(*parts) / "__init__.py").exists():
        return "/".join(parts) + ".py"
    return "/".join(parts) + "/"


def wire(gen: Generation) -> None:
    """Build every stage from ``gen.ctx.config`` in start order and make every subscription.

    Consumers of findings first, then the analysers, then the sources that feed them (stopped in
    reverse). Each stage receives the stages it calls as constructor arguments.
    """
    # 1. outputs: journal lines, alerts file, webhook, ECS, Prometheus.
    outputs: Outputs | None = gen.build(
        "outputs",
        "agent.outputs.component",
        lambda m, ctx: m.build(ctx, peers=gen.statuses, exposition=gen.exposition),
        given="the exposition registry, every stage's status",
        produces="journal lines, alerts JSONL, webhook, ECS, Prometheus",
    )
    # 2. response: findings -> verdicts -> actions; hands each finding with its verdict and
    #    action to the outputs itself.
    response: ResponseComponent | None = gen.build(
        "response",
        "agent.response.component",
        lambda m, ctx: m.build(ctx, outputs=outputs),
        given="the outputs",
        produces="verdicts, recorded actions (freeze, quarantine, patch plans); findings with verdicts to the outputs",
    )
    if outputs is not None and response is None:
        gen.on_finding("outputs", "outputs", outputs.emit_finding, when="response disabled")
    if response is not None:
        gen.on_finding("response", "response", response.on_finding)
        gen.on_events("response", "response.evidence", (), response.engine.on_event)
        gen.on_container("response", "response.reconcile", response.on_container)
    # 3. detectors: rule detectors on the event types they declare.
    detectors: DetectorsComponent | None = gen.build(
        "detectors", "agent.detectors.component", lambda m, ctx: m.build(ctx), produces="`rule` findings (RG-NNNN)"
    )
    if detectors is not None:
        gen.on_events(
            "detectors",
            "detectors",
            detectors.kinds(),
            detectors.handle,
            kinds_doc="each enabled detector's, ProcessExec",
        )
        gen.on_event("detectors", "detectors.forget", ProcessExit, detectors.forget)
        gen.on_container("detectors", "detectors.forget_container", detectors.on_container)
    # 4. behaviour: per-image baselines, scores windows.
    behavior: BehaviorComponent | None = gen.build(
        "behavior",
        "agent.behavior.component",
        lambda m, ctx: m.build(ctx),
        produces="`behavior`, `syscall_chain` findings",
    )
    if behavior is not None:
        gen.on_event("behavior", "behavior", BehaviorWindow, behavior.on_window)
        gen.on_container("behavior", "behavior.forget", behavior.on_container)
    # 5. logs: tails container logs (publishes LogEntry), sessions, Sigma.
    logs: LogsComponent | None = gen.build(
        "logs",
        "agent.logs.component",
        lambda m, ctx: m.build(ctx),
        also="agent/sources/logs.py",
        produces="`LogEntry`; `logs`, `audit`/`rule` findings",
    )
    if logs is not None:
        gen.on_event("logs", "logs.sessions", LogEntry, logs.on_log)
        gen.on_events("logs", "logs.sigma", (AuditEvent, ProcessExec, NetConnect), logs.on_event)
    # 6. window: every source's events -> one BehaviorWindow per container per window.
    window: WindowAggregator | None = gen.build(
        "window",
        "agent.sources.window",
        lambda m, ctx: m.build(ctx),
        produces="`BehaviorWindow` per container per window",
    )
    if window is not None:
        gen.on_events("window", "window", window.consumed(), window.on_event)
    # 7. vuln: inventories and vulnerability findings on a schedule and for new containers.
    vuln: VulnComponent | None = gen.build(
        "vuln", "agent.vuln.component", lambda m, ctx: m.build(ctx), produces="`vuln` findings, inventories"
    )
    if vuln is not None and vuln.settings.on_start:
        gen.on_container("vuln", "vuln.scan_new", vuln.on_container, when="vuln.on_start")
    # 8. network: least-privilege network for managed containers; learns from NetConnect.
    network: NetpolicyComponent | None = gen.build(
        "netpolicy",
        "agent.network.component",
        lambda m, ctx: m.build(ctx),
        produces="posture findings, wiring, nft rules, `PacketsDenied`, CIL policies",
    )
    if network is not None:
        gen.on_event("netpolicy", "netpolicy.learn", NetConnect, network.on_connect)
        gen.on_container("netpolicy", "netpolicy.wire", network.on_registry)
    # 9-12. sources: the kernel and /proc -> typed events (``ctx.publish``).
    # The response's fast path takes the kernel's must-act records (probes/act.h) directly.
    acts = response.fast if response is not None else None
    ebpf: EbpfSource | None = gen.build(
        "ebpf",
        "agent.sources.ebpf",
        lambda m, ctx: m.build(ctx, acts=acts),
        given="the response's kernel-stop fast path",
        produces="`ProcessExec`, `NetConnect`, `FileOpen`, `FileChange`, `PrivilegeEvent`, `SyscallWindow`, "
        "`ProcessExit`, `KnownActivity` (execs and connects the image already knew, counted in the kernel); "
        "must-act records straight to the fast path (tasks stopped in the kernel)",
    )
    if ebpf is not None:
        gen.on_container("ebpf", "ebpf.cgroups", ebpf.on_container)
        # A finding about a container takes back what it taught the known-event filter while learning.
        gen.on_finding("ebpf", "ebpf.known_taint", ebpf.on_finding)
        if window is not None:  # the kernel's known-activity counts join the window they happened in
            window.add_drain(ebpf.drain_known)
    # Sources that only publish (``ctx.publish``) are one line; nothing subscribes them.
    gen.build("audit", "agent.sources.auditd", lambda m, ctx: m.build(ctx), produces="`AuditEvent`")
    gen.build("procfs", "agent.sources.procfs", lambda m, ctx: m.build(ctx), produces="`ProcSnapshot`")
    capture: CaptureSource | None = gen.build(
        "capture", "agent.sources.capture", lambda m, ctx: m.build(ctx), produces="`FlowWindow`"
    )
    if capture is not None:
        gen.on_container("capture", "capture.attach", capture.on_registry)


# --- the live generation --------------------------------------------------------------------
class LiveMetrics:
    """The collector on the exposition registry that yields the live generation's registries."""

    def __init__(self) -> None:
        self.generation: Generation | None = None

    def describe(self) -> list[Metric]:
        return []  # names change with the generation: never checked against the root registry

    def collect(self) -> Iterator[Metric]:
        gen = self.generation
        if gen is None:
            return
        for s in gen.stages:
            yield from s.ctx.metrics.collect()


class ContainerFanout:
    """The registry's one listener: calls the live generation's container subscriptions."""

    def __init__(self) -> None:
        self.handlers: list[tuple[str, ContainerHandler]] = []

    def __call__(self, what: str, c: Container) -> None:
        for name, handler in self.handlers:
            try:
                handler(what, c)
            except Exception as exc:  # one subscriber must not break discovery or the others
                log.error("container_subscriber_failed", subscriber=name, container_id=c.id[:12], error=repr(exc))


@dataclass
class Live:
    """What ``install`` swaps: the exposition collector and the registry fan-out."""

    metrics: LiveMetrics
    containers: ContainerFanout
    lock: threading.Lock


def live_for(base: AgentContext) -> Live:
    """Register the live collector and the container fan-out on ``base`` (once per agent)."""
    live = Live(LiveMetrics(), ContainerFanout(), threading.Lock())
    base.metrics.register(live.metrics)
    base.registry.add_listener(live.containers)
    return live


def install(base: AgentContext, live: Live, gen: Generation, running: set[str]) -> None:
    """Make ``gen`` live: its subscriptions (of the stages in ``running``), control methods and
    metrics replace the previous generation's at once."""
    subs = [s for s in gen.subscriptions if s.stage in running]
    base.events.set_subscribers([(s.kinds or None, s.name, s.handler) for s in subs if s.topic == "events"])
    base.findings.set_subscribers([(s.kinds or None, s.name, s.handler) for s in subs if s.topic == "findings"])
    live.containers.handlers = [(s.name, s.handler) for s in subs if s.topic == "containers"]
    live.metrics.generation = gen
    base.control_methods = gen.ctx.control_methods


def attach(ctx: AgentContext, *components: Component, start: bool = True) -> Generation:
    """Wire already-built ``components`` into ``ctx`` exactly as ``wire`` would (tests, recipes):
    start each (unless ``start`` is false) and add its subscriptions to ``ctx``'s buses and registry."""
    gen = Generation(ctx, ctx.config, prebuilt={c.name: c for c in components})
    wire(gen)
    if start:
        for stage in gen.stages:
            stage.component.start(ctx)
    for s in gen.subscriptions:
        if s.topic == "events":
            ctx.events.subscribe(s.handler, s.kinds or None, s.name)
        elif s.topic == "findings":
            ctx.findings.subscribe(s.handler, s.kinds or None, s.name)
        else:
            ctx.registry.add_listener(cast("Callable[[str, Container], None]", s.handler))
    return gen
