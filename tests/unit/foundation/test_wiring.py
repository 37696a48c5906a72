# SPDX-License-Identifier: Apache-2.0
"""``agent/wiring.py`` and ``docs/architecture.md`` draw the same pipeline: the docs' stage and
subscription tables are generated from the wiring (``make config``) and kept equal here; nothing
outside the wiring subscribes; ``attach`` wires like the agent."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import ContainerRef, FileOpen
from agent.findings import Finding
from agent.wiring import Generation, attach, wire
from agent.wiringdoc import begin, blocks, end, every_stage_on, generated_text, splice, tables
from tests.support import REPO

DOC = REPO / "docs" / "architecture.md"


def everything(tmp_path: Path, **extra: dict[str, object]) -> AgentConfig:
    """A config that turns every stage on (the privileged ones are built, never started)."""
    return every_stage_on(tmp_path / "state", **extra)


def built(make_ctx: Callable[..., AgentContext], config: AgentConfig) -> Generation:
    ctx = make_ctx(config)
    gen = Generation(ctx, config)
    wire(gen)
    return gen


def test_docs_tables_are_generated_from_the_wiring(tmp_path: Path) -> None:
    doc = DOC.read_text(encoding="utf-8")
    for name, text in blocks(tmp_path).items():
        assert generated_text(doc, name) == text, f"docs/architecture.md's {name} table is stale: run `make config`"


def test_generated_stage_table_is_the_wiring_order(make_ctx: Callable[..., AgentContext], tmp_path: Path) -> None:
    gen = built(make_ctx, everything(tmp_path, vuln={"db": {"path": str(tmp_path / "vulndb.sqlite")}}))
    rows, _subs = tables(tmp_path)
    assert [r[1] for r in rows] == [s.name for s in gen.stages]
    assert {"outputs", "response", "ebpf", "capture", "vuln"} <= {s.name for s in gen.stages}
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    assert [s.component.name for s in gen.stages] == [s.name for s in gen.stages]
    for r in rows:  # each module column names a path that exists, and says what the stage produces
        assert r[4], r
        for path in re.findall(r"agent/[\w/.]+", r[2]):
            assert (REPO / path).exists(), path


def test_generated_subscription_table_is_the_wiring(make_ctx: Callable[..., AgentContext], tmp_path: Path) -> None:
    # The outputs subscribe to the findings bus only when no response component reports to them.
    full = built(make_ctx, everything(tmp_path))
    no_response = built(make_ctx, everything(tmp_path, response={"enabled": False}))
    assert ("outputs", "findings", "outputs", "Finding", "response disabled") in no_response.rows()
    assert not [r for r in full.rows() if r[0] == "outputs"]
    union = list(dict.fromkeys([*no_response.rows()[:1], *full.rows(), *no_response.rows()]))
    assert tables(tmp_path)[1] == union
    for sub in full.subscriptions:  # every handler is a bound method of its stage's component
        owner = getattr(sub.handler, "__self__", None)
        stage = next(s for s in full.stages if s.name == sub.stage)
        assert owner is stage.component or owner is getattr(stage.component, "engine", None), sub


def test_make_config_rewrites_only_between_the_markers() -> None:
    stages = f"{begin('stages')}\n| old |\n{end('stages')}"
    doc = f"intro\n{stages}\nmiddle\n{begin('subscriptions')}\n{end('subscriptions')}\n"
    new = splice(doc, {"stages": "| a |\n| b |", "subscriptions": "| c |"})
    assert new == (
        f"intro\n{begin('stages')}\n| a |\n| b |\n{end('stages')}\nmiddle\n"
        f"{begin('subscriptions')}\n| c |\n{end('subscriptions')}\n"
    )
    assert generated_text(new, "stages") == "| a |\n| b |"
    with pytest.raises(ValueError, match="markers"):
        splice("no markers here", {"stages": "| a |"})


def test_only_the_wiring_subscribes() -> None:
    calls = {"subscribe", "add_listener", "set_subscribers"}
    found = []
    for path in sorted((REPO / "agent").rglob("*.py")):
        if path.name == "wiring.py" and path.parent.name == "agent":
            continue
        found.extend(
            f"{path.relative_to(REPO)}:{node.lineno} {node.func.attr}"
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in calls
        )
    assert found == []


def test_attach_wires_a_component_as_the_agent_does(make_ctx: Callable[..., AgentContext]) -> None:
    from agent.detectors.component import build

    ctx = make_ctx()
    comp = build(ctx)
    assert comp is not None
    gen = attach(ctx, comp)
    assert [s.name for s in gen.stages] == ["detectors"]
    assert {name for _k, name, _h in ctx.events.subscribers()} == {"detectors", "detectors.forget"}
    got: list[Finding] = []
    ctx.findings.subscribe(got.append)
    ref = ContainerRef(id="ab" * 32, name="web", image="nginx")
    ctx.events.process(FileOpen(ts=1.0, pid=7, container=ref, comm="cat", path="/etc/shadow", flags=0, write=False))
    ctx.findings.process(ctx.findings.queue.get(1))  # type: ignore[arg-type]
    assert [f.detector_id for f in got] == ["RG-0002"]
