# SPDX-License-Identifier: Apache-2.0
"""The in-kernel first response under test: real probes, the response with its fast path, and
busybox containers whose shell session reads commands from a FIFO (``/tmp/in``), the way an
attacker types into a shell they already hold. Probes compile once per module."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import Event
from agent.hostfs import HostPaths
from agent.response.component import ResponseComponent
from agent.runtime.docker import container_from_inspect
from agent.runtime.model import Container
from agent.sources.ebpf import EbpfSource, build
from agent.wiring import attach
from tests.privileged.harness import agent_context, run_container
from tests.support import TEST_IMAGE, need_root, remove_container

# A shell session on stdin: a sleeping writer holds the FIFO open, so the shell never reads EOF.
SESSION = "mkfifo /tmp/in; sleep 100000 > /tmp/in & exec sh -s < /tmp/in"
OBSERVE_LABEL = "h12.mode"


@dataclass
class KStop:
    ctx: AgentContext
    source: EbpfSource
    response: ResponseComponent
    containers: dict[str, Any] = field(default_factory=dict)
    records: dict[str, Container] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    def type_in(self, role: str, line: str) -> None:
        """Type one command line into the shell session of container ``role``."""
        fifo = Path(f"/proc/{self.records[role].init_pid}/root/tmp/in")
        with fifo.open("w") as f:
            f.write(line + "\n")

    def file_in(self, role: str, path: str) -> Path:
        return Path(f"/proc/{self.records[role].init_pid}/root") / path.lstrip("/")

    def freezer_state(self, role: str) -> str:
        return Path(f"/sys/fs/cgroup/freezer/docker/{self.records[role].id}/freezer.state").read_text().strip()


def start_container(
    client: Any, role: str, labels: dict[str, str] | None = None, image: str = TEST_IMAGE, **extra: Any
) -> tuple[Any, Container]:
    c = run_container(client, f"rgtest-kstop-{role}", ["sh", "-c", SESSION], image, labels, **extra)
    c.reload()
    rec = container_from_inspect(HostPaths(), c.attrs)
    assert rec is not None and rec.cgroup_id, "test container has no cgroup id"
    return c, rec


@contextlib.contextmanager
def running_kstop(
    client: Any, response: dict[str, Any], roles: dict[str, dict[str, Any]], **sections: Any
) -> Iterator[KStop]:
    """Probes, the response (``response`` settings over enforce mode; other config ``sections``)
    and one session container per role (``{"labels": {...}, "image": ..., "run": {docker run
    keyword arguments}}``), all torn down after."""
    need_root()
    state = Path(tempfile.mkdtemp(prefix="rg-kstop-"))
    config = AgentConfig.model_validate(
        {
            "behavior": {"window_seconds": 3600},
            "ebpf": {"probes": ["exec", "files", "priv"]},
            "response": {"mode": "enforce", **response},
            **sections,
        }
    )
    ctx = agent_context(state, config)
    started: list[Any] = []
    source: EbpfSource | None = None
    comp: ResponseComponent | None = None
    try:
        recs: dict[str, Container] = {}
        for role, spec in roles.items():
            c, rec = start_container(
                client, role, spec.get("labels"), image=spec.get("image", TEST_IMAGE), **spec.get("run", {})
            )
            started.append(c)
            recs[role] = rec
            ctx.registry.upsert(rec)
        comp = ResponseComponent(ctx)
        source = build(ctx, acts=comp.fast)
        assert source is not None
        k = KStop(ctx=ctx, source=source, response=comp, containers=dict(zip(roles, started, strict=True)))
        k.records = recs
        ctx.events.subscribe(k.events.append, name="test-collect")
        attach(ctx, comp, source)
        ctx.events.start()
        ctx.findings.start()
        st = source.status()
        assert st["kernel_stop"]["available"], st
        yield k
    finally:
        # Each step on its own: one that raises must not leave the response sweeping (it would
        # freeze the containers again while docker removes them) or a container behind.
        for stop in (source, comp):
            if stop is not None:
                with contextlib.suppress(Exception):
                    stop.stop()
        ctx.events.stop(1)
        ctx.findings.stop(1)
        for c in started:
            remove_container(c)
        ctx.store.close()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def kstop(docker_client: Any) -> Iterator[KStop]:
    """An enforce container and an observe one (by override on its label)."""
    response = {"overrides": [{"labels": {OBSERVE_LABEL: "observe"}, "mode": "observe"}]}
    roles: dict[str, dict[str, Any]] = {"enforce": {}, "observe": {"labels": {OBSERVE_LABEL: "observe"}}}
    with running_kstop(docker_client, response, roles) as k:
        yield k
