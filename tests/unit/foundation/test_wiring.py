# SPDX-License-Identifier: Apache-2.0
"""``agent/wiring.py`` and ``docs/architecture.md`` draw the same pipeline: the stage order and
every subscription; nothing outside the wiring subscribes; ``attach`` wires like the agent."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import ContainerRef, FileOpen
from agent.findings import Finding
from agent.wiring import Generation, attach, wire
from tests.support import REPO

DOC = REPO / "docs" / "architecture.md"


def table(header: str) -> list[list[str]]:
    """The rows of the markdown table whose header row is ``header``."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(header) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().strip("`") for cell in line.strip().strip("|").split("|")])
    return rows


def everything(tmp_path: Path, **extra: object) -> AgentConfig:
    """A config that turns every stage on (the privileged ones are built, never started)."""
    return AgentConfig.model_validate(
        {
            "vuln": {"enabled": True, "db": {"path": str(tmp_path / "vulndb.sqlite")}},
            "capture": {"enabled": True},
            **extra,
        }
    )


def built(make_ctx: Callable[..., AgentContext], config: AgentConfig) -> Generation:
    ctx = make_ctx(config)
    gen = Generation(ctx, config)
    wire(gen)
    return gen


def test_docs_stage_table_is_the_wiring_order(make_ctx: Callable[..., AgentContext], tmp_path: Path) -> None:
    gen = built(make_ctx, everything(tmp_path))
    rows = table("| order | stage | module | given | produces |")
    assert [r[1] for r in rows] == [s.name for s in gen.stages]
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    assert [s.component.name for s in gen.stages] == [s.name for s in gen.stages]
    for r in rows:  # each module column names a path that exists
        for path in re.findall(r"agent/[\w/.]+", r[2]):
            assert (REPO / path).exists() or (REPO / f"{path}.py").exists(), path


def test_docs_subscription_table_is_the_wiring(make_ctx: Callable[..., AgentContext], tmp_path: Path) -> None:
    # The outputs subscribe to the findings bus only when no response component reports to them.
    full = built(make_ctx, everything(tmp_path))
    no_response = built(make_ctx, everything(tmp_path, response={"enabled": False}))
    assert ("outputs", "findings", "outputs", "Finding", "response disabled") in no_response.rows()
    assert not [r for r in full.rows() if r[0] == "outputs"]
    union = list(dict.fromkeys([*no_response.rows()[:1], *full.rows(), *no_response.rows()]))
    documented = [tuple(r) for r in table("| stage | topic | subscriber | kinds | when |")]
    assert documented == union
    for sub in full.subscriptions:  # every handler is a bound method of its stage's component
        owner = getattr(sub.handler, "__self__", None)
        stage = next(s for s in full.stages if s.name == sub.stage)
        assert owner is stage.component or owner is getattr(stage.component, "engine", None), sub


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
