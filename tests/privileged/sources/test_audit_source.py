# SPDX-License-Identifier: Apache-2.0
"""The audit source against the real kernel: an execve rule installed by the test, one
``docker exec … ls``, exactly one assembled event attributed to that container."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.context import AgentContext
from agent.events import AuditEvent
from agent.hostfs import HostPaths
from agent.runtime.model import ContainerRegistry
from agent.settings.sources import AuditSettings
from agent.sources import auditd, window
from agent.sources.auditd import AuditRules, AuditSource, AuditUnavailable, open_netlink
from agent.wiring import attach
from tests.support import need, need_root, need_tool, run, wait_for


@pytest.fixture
def audit_key() -> Iterator[str]:
    """A unique rule key; every rule with it is deleted at teardown, pass or fail."""
    need_root()
    need_tool("auditctl")
    key = f"rgt{uuid.uuid4().hex[:10]}"
    yield key
    run(["auditctl", "-D", "-k", key], check=False)
    assert key not in run(["auditctl", "-l"], check=False).stdout


def _need_netlink() -> None:
    try:
        open_netlink().close()
    except AuditUnavailable as exc:
        need(False, f"This test needs the audit netlink multicast group: {exc}")


def test_execve_rule_yields_one_event_attributed_to_the_container(
    audit_key: str,
    run_container: Callable[..., Any],
    container_record: Callable[[Any], Any],
    make_ctx: Callable[..., AgentContext],
) -> None:
    """Through the real bus: audit source → AuditEvent → window aggregator → BehaviorWindow."""
    _need_netlink()
    c = run_container("sleep", "300")
    other = run_container("sleep", "300")
    ctx = make_ctx()
    registry = ctx.registry
    registry.upsert(container_record(c))
    registry.upsert(container_record(other))
    got: list[AuditEvent] = []
    ctx.events.subscribe(got.append, kind=AuditEvent)
    src = auditd.build(ctx)
    agg = window.build(ctx)
    assert src is not None and agg is not None
    attach(ctx, src, agg, start=False)  # subscribed as the agent does; the test flushes the window
    ctx.events.start()
    src.start(ctx)
    try:
        run(["auditctl", "-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-k", audit_key])
        c.exec_run(["ls", "/"])

        def mine() -> list[AuditEvent]:
            return [e for e in got if e.key == audit_key and e.container is not None and e.container.id == c.id]

        wait_for(mine, timeout=10, what="the assembled execve event of `ls` in the container")
        time.sleep(1.0)  # anything else would have arrived by now
        ctx.events.drain()
    finally:
        run(["auditctl", "-D", "-k", audit_key], check=False)
        src.stop()
    events = mine()
    assert len(events) == 1, events
    ev = events[0]
    assert ev.argv == ("ls", "/")
    assert ev.syscall == "execve" and ev.success is True
    assert {"SYSCALL", "EXECVE", "CWD", "PATH", "PROCTITLE"} <= set(ev.record_types)
    assert ev.cgroup_id == registry.get(c.id).cgroup_id  # type: ignore[union-attr]
    assert not [e for e in got if e.container is not None and e.container.id == other.id]
    assert src.status()["malformed"] == 0
    windows = {w.container.id: w for w in agg.flush(time.time()) if w.container is not None}
    assert windows[c.id].execs == 1 and "audit" in windows[c.id].sources
    assert windows[c.id].binaries == {ev.exe}
    assert windows[other.id].execs == 0
    # The fallback for processes gone before we read their cgroup: the container's root device.
    st = Path(f"/proc/{registry.get(c.id).init_pid}/root").stat()  # type: ignore[union-attr]
    found = src.container_of_dev(f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}")
    assert found is not None and found.id == c.id
    assert src.container_of_dev("00:00") is None


def test_managed_rules_are_installed_and_removed(audit_key: str) -> None:
    _need_netlink()
    settings = AuditSettings(manage_rules=True, rule_key=audit_key)
    src = AuditSource(settings, HostPaths(), ContainerRegistry(), lambda e: None)
    src.start()
    try:
        listed = AuditRules(audit_key).listed()
        assert len(listed) == 1 and "execve" in listed[0], listed
    finally:
        src.stop()
    assert AuditRules(audit_key).listed() == []
