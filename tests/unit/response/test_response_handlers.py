# SPDX-License-Identifier: Apache-2.0
"""Response actions as handlers: the recipe "add an action" proved with a tiny example action
registered through the table, carried through isolate, sweep, release and crash recovery by the
unchanged engine; and the engine knowing no action by name."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog.testing

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.findings import Action
from agent.response import engine as engine_module
from agent.response import handlers
from agent.response.engine import ResponseEngine
from agent.response.handlers import BaseHandler, Done, Outcome, Request
from agent.response.model import ActionRecord
from agent.runtime.model import Container
from tests.unit.response.test_response_engine import CID, fake_host


class MarkHandler(BaseHandler):
    """The example action: a marker file per container under ``<state>/marks`` (an isolation that
    stays until released, re-asserted when someone deletes the file)."""

    name = "mark"
    isolation = True
    check_every_sweep = True

    def _file(self, container_id: str) -> Path:
        return self.paths.state / "marks" / container_id

    def apply(self, req: Request) -> Outcome:
        f = self._file(req.container.id)
        if not req.dry_run:
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(req.reason)
        return Done(ok=req.dry_run or f.exists(), detail=f"marked {req.container.short_id}", state={"file": str(f)})

    def release(self, rec: ActionRecord) -> Outcome:
        Path(rec.state["file"]).unlink(missing_ok=True)
        return Done(ok=True, detail="unmarked")

    def is_applied(self, rec: ActionRecord) -> bool | None:
        return Path(rec.state["file"]).exists()


@pytest.fixture
def mark() -> Iterator[None]:
    """Step 2 of the recipe: the action's line in the table (here registered for one test)."""
    handlers.register("mark", MarkHandler)
    yield
    handlers.unregister("mark")


@pytest.fixture
def env(tmp_path: Path, make_ctx: Callable[..., AgentContext]) -> tuple[AgentContext, Container]:
    paths, c = fake_host(tmp_path / "host")
    ctx = make_ctx(config=AgentConfig.model_validate({"response": {"mode": "enforce"}}), paths=paths)
    ctx.registry.upsert(c)
    return ctx, c


def marker(ctx: AgentContext) -> Path:
    return ctx.paths.state / "marks" / CID


def test_the_built_in_table_and_its_refusals() -> None:
    assert set(handlers.HANDLERS) == {Action.FREEZE, Action.QUARANTINE, Action.PATCH}
    with pytest.raises(ValueError, match="already registered"):
        handlers.register("freeze", MarkHandler)


def test_without_its_line_in_the_table_the_action_does_not_exist(env: tuple[AgentContext, Container]) -> None:
    ctx, c = env
    engine = ResponseEngine(ctx)
    assert engine.isolation_actions() == ["freeze", "quarantine"]
    with pytest.raises(ValueError, match="must be freeze or quarantine, not 'mark'"):
        engine.isolate(c.id, "mark")
    assert not marker(ctx).exists() and engine.records.actions() == []


def test_an_example_action_registered_in_the_table_runs_through_the_whole_engine(
    mark: None, env: tuple[AgentContext, Container]
) -> None:
    ctx, c = env
    engine = ResponseEngine(ctx)
    assert engine.isolation_actions() == ["freeze", "quarantine", "mark"]
    with structlog.testing.capture_logs() as logs:
        rec = engine.isolate(c.id, "mark", actor="alice")
    assert rec.action == "mark" and rec.phase == "confirmed" and rec.active and rec.actor == "alice"
    assert marker(ctx).read_text() == "mark requested by alice"
    assert [h.phase for h in engine.records.history(rec.id)] == ["intended", "applied", "confirmed"]
    [evidence] = engine.records.evidence(rec.id)  # an isolation gets an evidence snapshot
    assert evidence["container_id"] == c.id
    assert any(e["event"] == "container_mark_applied" for e in logs)
    assert engine.counters["mark_confirmed"] == 1
    [stored] = engine.records.findings()
    assert stored.verdict is not None and stored.verdict.action == "mark" and stored.verdict.action_id == rec.id
    assert engine.isolate(c.id, "mark").id == rec.id  # idempotent while in place
    assert [i["action"] for i in engine.isolations()] == ["mark"]

    marker(ctx).unlink()  # undone behind the agent's back
    engine.sweep()
    assert marker(ctx).exists()
    assert engine.records.must_get(rec.id).phase == "confirmed"

    [released] = engine.release("web", actor="alice")
    assert released.phase == "released" and not released.active
    assert not marker(ctx).exists()
    assert engine.isolations() == []


def test_an_example_action_interrupted_by_a_crash_is_completed_at_start_up(
    mark: None, env: tuple[AgentContext, Container]
) -> None:
    ctx, c = env
    aid = ResponseEngine(ctx).records.intend(
        container_id=c.id, container_name=c.name, image=c.image, init_pid=c.init_pid, action="mark",
        method="", actor="operator", reason="test", dry_run=False,
    )  # fmt: skip
    assert not marker(ctx).exists()
    restarted = ResponseEngine(ctx)
    assert aid in {r.id for r in restarted.reconcile()}
    rec = restarted.records.must_get(aid)
    assert rec.phase == "confirmed" and rec.active
    assert [h.phase for h in restarted.records.history(aid)] == ["intended", "applied", "confirmed"]
    assert marker(ctx).exists()


def test_the_engine_names_no_action() -> None:
    source = Path(engine_module.__file__).read_text()
    assert not re.search(r"Action\.[A-Z]|Action\(|action == \"|import (freeze|quarantine|patch)\b", source)
