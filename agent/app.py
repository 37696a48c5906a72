# SPDX-License-Identifier: Apache-2.0
"""The daemon: start-up and teardown as ordered steps over one ``AppState``.

Each step is a small function of the state (testable on a bare state); teardown runs the undo of
every step that completed, in reverse. The components come from ``agent.wiring``. SIGTERM/SIGINT
stop cleanly; SIGHUP reloads the config as a transaction (``reload_config``: a config that cannot
be loaded, built or started keeps the old one running and says why).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import structlog

from agent import __version__
from agent.config import AgentConfig, ConfigError, load_config
from agent.context import AgentContext, Component
from agent.control import ControlServer
from agent.events import Event
from agent.findings import Finding
from agent.hostfs import HostPaths
from agent.pipeline import Bus
from agent.resources import HEAP_TRIMS, release_free_heap
from agent.runtime.discovery import Discovery
from agent.runtime.enrich import Enricher
from agent.runtime.model import ContainerRegistry
from agent.sdnotify import notify, watchdog_interval
from agent.store import Store
from agent.wiring import BuildError, Generation, Live, install, live_for, wire

log = structlog.get_logger("agent.app")

# Keys that cannot change on SIGHUP: they name resources the running process already holds.
RESTART_ONLY = (("state", "dir"), ("control", "socket"), ("host", "root"))


def host_paths(config: AgentConfig) -> HostPaths:
    """The host paths for ``config``: re-rooted under ``host.root``, agent dirs from config."""
    base = HostPaths() if config.host.root == Path("/") else HostPaths.under(config.host.root)
    return base.with_state(config.state.dir, run=config.control.socket.parent)


@dataclass
class AppState:
    """Everything one running agent holds; the start-up steps fill it in, teardown empties it."""

    config: AgentConfig
    config_source: str
    config_path: Path | None = None
    paths: HostPaths | None = None
    store: Store | None = None
    registry: ContainerRegistry = field(default_factory=ContainerRegistry)
    ctx: AgentContext | None = None
    enricher: Enricher | None = None
    discovery: Discovery | None = None
    live: Live | None = None
    generation: Generation | None = None  # the running components, their subscriptions
    components: list[Component] = field(default_factory=list)  # those that started
    component_errors: dict[str, str] = field(default_factory=dict)
    control: ControlServer | None = None
    started_at: float = field(default_factory=time.time)
    undo: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    reloads: int = 0
    # What builds the components (tests of the start-up steps pass one that builds none).
    wiring: Callable[[Generation], None] = wire


# --- start-up steps ---------------------------------------------------------------------------
def step_prepare_dirs(state: AppState) -> None:
    state.paths = host_paths(state.config)
    for d in (state.config.state.dir, state.config.control.socket.parent):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o700)


def step_open_store(state: AppState) -> None:
    state.store = Store(state.config.state.dir / "agent.db")
    store = state.store
    state.undo.append(("store", store.close))


def step_context(state: AppState) -> None:
    assert state.paths is not None and state.store is not None
    events: Bus[Event] = Bus("events", maxsize=65536)
    findings: Bus[Finding] = Bus("findings", maxsize=8192)
    state.enricher = Enricher(state.paths, state.registry, state.config.runtime.include_host)
    events.add_prepare(state.enricher)
    state.ctx = AgentContext(
        config=state.config,
        paths=state.paths,
        store=state.store,
        registry=state.registry,
        events=events,
        findings=findings,
    )
    state.ctx.control("status", lambda _p: status(state))
    state.ctx.control("containers", lambda _p: [c.to_dict() for c in state.registry.all()])
    state.live = live_for(state.ctx)


def step_discovery(state: AppState) -> None:
    assert state.paths is not None
    state.discovery = Discovery(state.paths, state.config.runtime, state.registry)
    state.discovery.start()
    state.undo.append(("discovery", state.discovery.stop))


def build_generation(state: AppState, config: AgentConfig, strict: bool) -> Generation:
    """Build (not start) every enabled component from ``config``; raises ``BuildError`` if strict."""
    assert state.ctx is not None
    gen = Generation(state.ctx, config, strict=strict)
    state.wiring(gen)
    return gen


def _stop(components: list[Component]) -> None:
    for comp in reversed(components):
        t0 = time.monotonic()
        try:
            comp.stop()
        except Exception as exc:
            log.error("component_stop_failed", component=comp.name, error=repr(exc))
        if time.monotonic() - t0 > 1.0:
            log.warning("component_stop_slow", component=comp.name, seconds=round(time.monotonic() - t0, 2))


def switch_to(state: AppState, gen: Generation) -> None:
    """Stop the running components, start ``gen``'s and make it live, with both buses held so
    no event or finding is lost or seen by a half-started component."""
    ctx, live = state.ctx, state.live
    assert ctx is not None and live is not None
    with live.lock:
        ctx.events.pause()
        ctx.findings.pause()
        try:
            _stop(state.components)
            started: list[Component] = []
            errors = dict(gen.build_errors)
            for stage in gen.stages:
                try:
                    stage.component.start(stage.ctx)
                except Exception as exc:
                    errors[stage.name] = f"{type(exc).__name__}: {exc}"
                    log.error("component_failed", component=stage.name, error=errors[stage.name][:500])
                    continue
                started.append(stage.component)
                log.info("component_started", component=stage.name)
            running = {s.name for s in gen.stages if s.component in started}
            install(ctx, live, gen, running)
            if state.control is not None:
                state.control.methods = ctx.control_methods
            state.generation, state.components, state.component_errors = gen, started, errors
        finally:
            ctx.findings.resume()
            ctx.events.resume()


def step_components(state: AppState) -> None:
    """Build and start every enabled subsystem; one that fails is reported, not fatal."""
    assert state.ctx is not None
    switch_to(state, build_generation(state, state.config, strict=False))
    state.undo.append(("components", lambda: _stop(state.components)))


def step_buses(state: AppState) -> None:
    ctx = state.ctx
    assert ctx is not None
    ctx.findings.start()
    ctx.events.start()

    def stop() -> None:
        ctx.events.stop(2)
        ctx.findings.stop(5)

    state.undo.append(("buses", stop))


def step_control(state: AppState) -> None:
    ctx = state.ctx
    assert ctx is not None
    state.control = ControlServer(state.config.control.socket, ctx.control_methods)
    state.control.start()
    state.undo.append(("control", state.control.stop))


STARTUP_STEPS: tuple[Callable[[AppState], None], ...] = (
    step_prepare_dirs,
    step_open_store,
    step_context,
    step_buses,
    step_discovery,
    step_components,
    step_control,
)


def startup(state: AppState) -> None:
    for step in STARTUP_STEPS:
        step(state)


def teardown(state: AppState) -> None:
    while state.undo:
        name, fn = state.undo.pop()
        t0 = time.monotonic()
        try:
            fn()
        except Exception as exc:
            log.error("teardown_step_failed", step=name, error=repr(exc))
        took = time.monotonic() - t0
        if took > 1.0:  # systemd's TimeoutStopSec is 30 s: say what makes a stop slow
            log.warning("teardown_step_slow", step=name, seconds=round(took, 2))


# Libraries the daemon loads only where a feature needs them (3-100 MiB resident each):
# the Kubernetes and GVM clients (kubernetes.enabled, vuln.gmp.enabled), pyroute2 (a container
# wired by the agent), scikit-learn and scipy (only in the behaviour fit child, unless
# behavior.fit_in_subprocess is off), paramiko (never: ssh:// Docker hosts are refused), scapy and
# tqdm (tests and the CLI), rich (the CLI's tables; structlog is imported without it) and pySigma
# (the Sigma rule files are read in a child process). ``status`` lists those loaded.
OPTIONAL_LIBRARIES = ("kubernetes", "gvm", "pyroute2", "sklearn", "scipy", "paramiko", "scapy", "tqdm", "rich", "sigma")


# How often the main loop gives the heap that was freed back to the kernel.
TRIM_SECONDS = 60.0


def process_status() -> dict[str, Any]:
    """The daemon's own footprint: resident memory, threads, optional libraries loaded."""
    return {
        "rss_mib": round(psutil.Process().memory_info().rss / 2**20, 1),
        "threads": threading.active_count(),
        "optional_libraries": sorted(m for m in OPTIONAL_LIBRARIES if m in sys.modules),
        "heap_trims": int(HEAP_TRIMS["count"]),
        "heap_trim_last_ms": HEAP_TRIMS["last_ms"],
    }


def status(state: AppState) -> dict[str, Any]:
    """The answer to ``riskguardctl status``."""
    ctx = state.ctx
    comps: dict[str, Any] = {}
    for comp in state.components:
        try:
            comps[comp.name] = {"state": "running", **dict(comp.status())}
        except Exception as exc:
            comps[comp.name] = {"state": "error", "error": repr(exc)}
    for label, err in state.component_errors.items():
        comps[label] = {"state": "failed", "error": err}
    return {
        "version": __version__,
        "pid": os.getpid(),
        "uptime_seconds": round(time.time() - state.started_at, 1),
        "config": state.config_source,
        "reloads": state.reloads,
        "response_mode": state.config.response.mode,
        "containers": len(state.registry),
        "runtime": state.discovery.status() if state.discovery else None,
        "components": comps,
        "events": ctx.events.status() if ctx else None,
        "findings": ctx.findings.status() if ctx else None,
        "unattributed_events": state.enricher.unattributed if state.enricher else 0,
        "process": process_status(),
    }


def reload_config(state: AppState) -> bool:
    """SIGHUP as a transaction: load and validate the file, build every component from it, then
    stop the running ones and start the new; any error before the swap keeps everything running,
    and a component that ran before but cannot start on the new file brings the old config back."""
    try:
        new, source = load_config(state.config_path)
    except ConfigError as exc:
        log.error("config_reload_rejected", config=exc.source, problems=exc.problems, kept="previous config")
        return False
    except Exception as exc:  # never let a reload take the daemon down
        log.error(
            "config_reload_rejected", config=str(state.config_path), problems=[repr(exc)[:500]], kept="previous config"
        )
        return False
    for section, key in RESTART_ONLY:
        if getattr(getattr(new, section), key) != getattr(getattr(state.config, section), key):
            log.error(
                "config_reload_rejected",
                config=source,
                problems=[f"{section}.{key}: cannot change while running; restart the agent"],
                kept="previous config",
            )
            return False
    if new == state.config:
        log.info("config_reload_unchanged", config=source)
        return True
    ctx = state.ctx
    assert ctx is not None
    try:
        gen = build_generation(state, new, strict=True)
    except Exception as exc:  # BuildError names the stage: "logs: UnicodeDecodeError: ..."
        log.error(
            "config_reload_failed",
            config=source,
            error=(str(exc) if isinstance(exc, BuildError) else f"{type(exc).__name__}: {exc}")[:500],
            kept="previous config and components",
        )
        return False
    was_running = {c.name for c in state.components}
    old, old_source = state.config, state.config_source
    _use_config(state, new, source)
    switch_to(state, gen)
    broken = sorted(name for name in state.component_errors if name in was_running)
    if broken:
        # A component that ran on the old config cannot start on the new one (a path it opens,
        # say): go back to the old config, on fresh instances of its components.
        log.error(
            "config_reload_failed",
            config=source,
            error="; ".join(f"{name}: {state.component_errors[name]}" for name in broken)[:500],
            kept="previous config (its components restarted)",
        )
        _use_config(state, old, old_source)
        switch_to(state, build_generation(state, old, strict=False))
        return False
    state.reloads += 1
    log.info(
        "config_reloaded",
        config=source,
        components=[c.name for c in state.components],
        failed=sorted(state.component_errors),
    )
    return True


def _use_config(state: AppState, config: AgentConfig, source: str) -> None:
    state.config, state.config_source = config, source
    assert state.ctx is not None
    state.ctx.config = config
    if state.enricher is not None:
        state.enricher.include_host = config.runtime.include_host


def run(config: AgentConfig, config_source: str, config_path: Path | None) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT; return the exit code."""
    state = AppState(config=config, config_source=config_source, config_path=config_path)
    stop = threading.Event()
    hup = threading.Event()

    def on_stop(signum: int, _frame: Any) -> None:
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        stop.set()

    def on_hup(_signum: int, _frame: Any) -> None:
        hup.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)

    log.info("agent_starting", version=__version__, config=config_source, pid=os.getpid(), euid=os.geteuid())
    if os.geteuid() != 0:
        log.warning(
            "agent_not_root",
            detail="eBPF, audit, cgroup writes and nftables need root; those parts will report as unavailable",
        )
    try:
        startup(state)
    except Exception as exc:
        log.error("agent_start_failed", error=f"{type(exc).__name__}: {exc}")
        teardown(state)
        return 1
    s = status(state)
    log.info(
        "agent_started",
        containers=s["containers"],
        components=sorted(s["components"]),
        control_socket=str(config.control.socket),
        response_mode=config.response.mode,
        findings_to=_findings_destinations(state),
    )
    notify(f"READY=1\nSTATUS=watching {len(state.registry)} containers")
    wd = watchdog_interval()
    tick = min(wd or 1.0, 1.0)
    last_status = ""
    last_trim = time.monotonic()
    while not stop.wait(tick):
        if time.monotonic() - last_trim >= TRIM_SECONDS:
            release_free_heap()
            last_trim = time.monotonic()
        if hup.is_set():
            hup.clear()
            notify("RELOADING=1")
            reload_config(state)
            notify("READY=1")
        if wd is not None:
            notify("WATCHDOG=1")
        line = f"STATUS=watching {len(state.registry)} containers"
        if line != last_status:
            notify(line)
            last_status = line
    notify("STOPPING=1")
    teardown(state)
    log.info("agent_stopped")
    return 0


def _findings_destinations(state: AppState) -> list[str]:
    out = ["journal/stdout", f"store:{state.config.state.dir / 'agent.db'}"]
    alerts = getattr(state.config.outputs, "alerts_file", None)
    if alerts:
        out.append(f"alerts:{host_paths(state.config).in_state(alerts)}")
    return out
