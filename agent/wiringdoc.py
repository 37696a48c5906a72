# SPDX-License-Identifier: Apache-2.0
"""``riskguard-agent pipeline``: the stage and subscription tables of ``docs/architecture.md``,
generated from ``agent/wiring.py``.

The wiring is built for real (never started) in a scratch state directory with every stage
turned on, once more with the response off (the outputs then take the findings themselves), and
its stages and subscriptions are rendered as the docs show them. ``make config`` writes them
between the ``<!-- generated: … -->`` markers (``--update docs/architecture.md``);
``tests/unit/foundation/test_wiring.py`` keeps the docs equal to the output.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.wiring import Generation, wire

# Sections with an ``enabled`` key that are no stage of their own: the docs' pipeline leaves them
# as they are (turning Kubernetes on would reach for a cluster).
NOT_STAGES = ("kubernetes",)
STAGES_HEADER = "| order | stage | module | given | produces |"
SUBSCRIPTIONS_HEADER = "| stage | topic | subscriber | kinds | when |"
Row = tuple[str, str, str, str, str]


def every_stage_on(state: Path, **overrides: Any) -> AgentConfig:
    """The default config with every section that has an ``enabled`` key turned on (but
    ``NOT_STAGES``), the state under ``state``, and ``overrides`` (section -> keys) on top."""
    data: dict[str, Any] = {"state": {"dir": str(state)}}
    defaults = AgentConfig()
    for name in AgentConfig.model_fields:
        if name not in NOT_STAGES and "enabled" in type(getattr(defaults, name)).model_fields:
            data[name] = {"enabled": True}
    for name, keys in overrides.items():
        data[name] = {**data.get(name, {}), **keys}
    return AgentConfig.model_validate(data)


@contextmanager
def built(config: AgentConfig, state: Path) -> Iterator[Generation]:
    """``wire`` over a context of its own in ``state`` (nothing is started)."""
    state.mkdir(parents=True, exist_ok=True)
    ctx = AgentContext.in_state(state, config)
    try:
        gen = Generation(ctx, config)
        wire(gen)
        yield gen
    finally:
        ctx.store.close()


def tables(workdir: Path | None = None) -> tuple[list[Row], list[Row]]:
    """(stage rows, subscription rows) of the whole pipeline, as the docs show them."""
    with tempfile.TemporaryDirectory(prefix="riskguard-pipeline-", dir=workdir) as tmp:
        full_state, bare_state = Path(tmp) / "full", Path(tmp) / "no-response"
        with built(every_stage_on(full_state), full_state) as full:
            stages = [(str(i), s.name, s.module, s.given, s.produces) for i, s in enumerate(full.stages, 1)]
            full_rows = full.rows()
        with built(every_stage_on(bare_state, response={"enabled": False}), bare_state) as bare:
            bare_rows = bare.rows()
    # The outputs' own subscription (response disabled) first, as the bus would call it.
    subscriptions = list(dict.fromkeys([*bare_rows[:1], *full_rows, *bare_rows]))
    return stages, subscriptions


def markdown(header: str, rows: list[Row]) -> str:
    """A markdown table (an empty cell is ``| |``)."""
    cols = header.count("|") - 1
    lines = [header, "|" + " --- |" * cols]
    lines.extend("|" + "".join(f" {cell} |" if cell else " |" for cell in row) for row in rows)
    return "\n".join(lines)


def blocks(workdir: Path | None = None) -> dict[str, str]:
    """The generated blocks by marker name: ``stages`` and ``subscriptions``."""
    stages, subscriptions = tables(workdir)
    return {"stages": markdown(STAGES_HEADER, stages), "subscriptions": markdown(SUBSCRIPTIONS_HEADER, subscriptions)}


def begin(name: str) -> str:
    return f"<!-- generated: {name} (make config; edit agent/wiring.py, not this table) -->"


def end(name: str) -> str:
    return f"<!-- end generated: {name} -->"


def splice(doc: str, generated: dict[str, str]) -> str:
    """``doc`` with the text between each block's markers replaced; a missing marker is an error."""
    for name, text in generated.items():
        pattern = re.compile(re.escape(begin(name)) + r"\n.*?" + re.escape(end(name)), re.S)
        m = pattern.search(doc)
        if m is None:
            raise ValueError(f"no {begin(name)!r} … {end(name)!r} markers")
        doc = f"{doc[: m.start()]}{begin(name)}\n{text}\n{end(name)}{doc[m.end() :]}"
    return doc


def generated_text(doc: str, name: str) -> str:
    """The text between ``name``'s markers in ``doc`` ("" when there are none)."""
    m = re.search(re.escape(begin(name)) + r"\n(.*?)\n" + re.escape(end(name)), doc, re.S)
    return m.group(1) if m else ""
