# SPDX-License-Identifier: Apache-2.0
"""Fixtures for every tier; markers come from the test's folder (unit / privileged / e2e)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.hostfs import HostPaths
from agent.store import Store
from tests.support import IN_CI, TEST_IMAGE, TEST_LABEL, need, need_root, remove_container


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in ("unit", "privileged", "e2e"):
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    """In CI a privileged or e2e test may not skip, whoever called skip: it is reported failed."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    privileged = item.get_closest_marker("privileged") or item.get_closest_marker("e2e")
    if IN_CI and privileged and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"privileged test skipped in CI (CI=true): {reason}"


@pytest.fixture
def host_tree(tmp_path: Path) -> HostPaths:
    """An empty captured-host tree under a temp dir (fill it from tests/fixtures)."""
    return HostPaths.under(tmp_path / "host")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state" / "agent.db")
    yield s
    s.close()


@pytest.fixture
def make_ctx(tmp_path: Path) -> Iterator[Callable[..., AgentContext]]:
    """Build an ``AgentContext`` with a temp store; ``paths`` defaults to the real host."""
    made: list[AgentContext] = []

    def _make(config: AgentConfig | None = None, paths: HostPaths | None = None) -> AgentContext:
        state = tmp_path / f"state-{len(made)}"
        ctx = AgentContext.in_state(state, config, paths)
        made.append(ctx)
        return ctx

    yield _make
    for ctx in made:
        ctx.events.stop(1)
        ctx.findings.stop(1)
        ctx.store.close()


# --- Docker -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def docker_client() -> Any:
    need_root()
    import docker

    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # docker.errors.DockerException and socket errors
        need(False, f"This test needs a running dockerd (scripts/setup-host.sh starts one): {exc}")
        raise
    try:
        client.images.get(TEST_IMAGE)
    except Exception:
        need(False, f"This test needs the local image {TEST_IMAGE} (scripts/setup-host.sh builds it).")
    return client


@pytest.fixture
def run_container(docker_client: Any) -> Iterator[Callable[..., Any]]:
    """Start containers from the local busybox image; all are removed at teardown.

    ``run_container("sleep", "300", network_mode="none")`` → a started ``docker`` Container.
    """
    started: list[Any] = []

    def _run(*command: str, **kwargs: Any) -> Any:
        labels = {TEST_LABEL: "1", **kwargs.pop("labels", {})}
        kwargs.setdefault("network_mode", "none")
        kwargs.setdefault("name", f"rgtest-{uuid.uuid4().hex[:8]}")
        image = kwargs.pop("image", TEST_IMAGE)
        c = docker_client.containers.run(image, list(command) or ["sleep", "600"], detach=True, labels=labels, **kwargs)
        started.append(c)
        c.reload()
        return c

    yield _run
    for c in started:
        remove_container(c)  # thawed first; no frozen cgroup of it left behind


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    # A CLI test configures structlog onto a captured stream that pytest closes afterwards.
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The daemon reads these; a developer's shell must not leak them into tests.
    for var in ("RISKGUARD_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def container_record() -> Callable[[Any], Any]:
    """``container_record(docker_container)`` → our ``Container`` record (cgroups, cgroup id…)."""
    from agent.runtime.docker import container_from_inspect

    def _record(c: Any) -> Any:
        c.reload()
        rec = container_from_inspect(HostPaths(), c.attrs)
        assert rec is not None, f"container {c.name} is not running"
        return rec

    return _record
