# SPDX-License-Identifier: Apache-2.0
"""The engine SIGKILLed between intent and apply (and after a confirmed freeze), then
restarted: interrupted actions are completed, isolations in effect stay and are shown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.context import AgentContext
from agent.response.engine import ResponseEngine
from tests.privileged.response.response_helpers import read_in
from tests.support import REPO, wait_for

CHILD = Path(__file__).with_name("engine_child.py")
COUNTER = "i=0; while true; do i=$((i+1)); echo $i > /tmp/c.new; mv /tmp/c.new /tmp/c; sleep 0.01; done"


@pytest.fixture
def child() -> Iterator[Callable[..., tuple[subprocess.Popen[str], str]]]:
    procs: list[subprocess.Popen[str]] = []

    def _start(*args: str, expect: str) -> tuple[subprocess.Popen[str], str]:
        p = subprocess.Popen(
            [sys.executable, str(CHILD), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        procs.append(p)
        assert p.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if line.startswith(expect):
                return p, line.split()[1]
            if not line and p.poll() is not None:
                break
        raise AssertionError(f"the engine child never printed {expect}")

    yield _start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(5)


def counter(c: Any) -> int:
    text = read_in(c, "/tmp/c").strip()
    return int(text) if text.isdigit() else -1


def running(c: Any) -> bool:
    before = counter(c)
    time.sleep(0.4)
    return counter(c) > before


@pytest.mark.parametrize("action", ["freeze", "quarantine"])
def test_sigkill_between_intent_and_apply_is_completed_on_restart(
    action: str,
    child: Any,
    run_container: Callable[..., Any],
    container_record: Any,
    response_ctx: Callable[..., AgentContext],
) -> None:
    c = run_container("sh", "-c", COUNTER, network_mode="bridge")
    wait_for(lambda: counter(c) > 0, what="the counter loop to start")
    ctx = response_ctx(quarantine="netns")
    db = ctx.store.path
    proc, action_id = child(str(db), c.id, action, "--hang-after-intent", expect="INTENT")
    os.kill(proc.pid, signal.SIGKILL)  # the crash: intent recorded, nothing applied
    proc.wait(5)
    engine = ResponseEngine(ctx)  # the restarted agent, on the same store
    rec = engine.records.get(action_id)
    assert rec is not None and rec.phase == "intended" and rec.active
    assert running(c), "nothing may have been applied before the crash"
    ctx.registry.upsert(container_record(c))
    engine.reconcile()
    rec = engine.records.get(action_id)
    assert rec is not None and rec.phase == "confirmed", rec.detail
    phases = [h.phase for h in engine.records.history(action_id)]
    assert phases == ["intended", "applied", "confirmed"]
    if action == "freeze":
        assert not running(c)
    else:
        assert rec.state["table"] in subprocess.run(
            ["nsenter", "-t", str(c.attrs["State"]["Pid"]), "-n", "nft", "list", "tables"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    [released] = engine.release(c.id)
    assert released.phase == "released"
    assert running(c)


def test_frozen_before_a_crash_stays_frozen_and_is_shown(
    child: Any, run_container: Callable[..., Any], container_record: Any, response_ctx: Callable[..., AgentContext]
) -> None:
    c = run_container("sh", "-c", COUNTER)
    wait_for(lambda: counter(c) > 0, what="the counter loop to start")
    ctx = response_ctx()
    proc, phase = child(str(ctx.store.path), c.id, "freeze", expect="DONE")
    assert phase == "confirmed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(5)
    assert not running(c)
    ctx.registry.upsert(container_record(c))
    engine = ResponseEngine(ctx)
    engine.reconcile()
    assert not running(c), "the restart thawed the container"
    [shown] = engine.isolations()
    assert shown["container_id"] == c.id and shown["freezer_state"] == "frozen" and shown["phase"] == "confirmed"
    # Released only by an operator.
    engine.release(c.id)
    assert running(c)
