# SPDX-License-Identifier: Apache-2.0
"""Run by ``test_recipes`` in a copy of the tree to which the source recipe was applied (the
tiny source as ``agent/sources/tiny.py``, its section in ``agent/settings/sources.py``, its line
in ``agent/wiring.py``): checks the section parses and is refused as every section is, that
``make config``'s outputs show it, and that the wiring builds the stage and its events flow.
Prints one JSON object; any failed check raises (non-zero exit)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import agent
from agent.config import ConfigError, parse_config, read_yaml
from agent.configdoc import render_default_config
from agent.events import FileOpen
from agent.runtime.model import Container
from agent.wiringdoc import built, tables


def problems(text: str) -> list[str]:
    try:
        parse_config(read_yaml(text, "agent.yaml"), "agent.yaml")
    except ConfigError as exc:
        return exc.problems
    return []


def stages_and_event(state: Path, config_text: str) -> tuple[list[str], FileOpen | None]:
    """Wire a generation from ``config_text``; when the tiny stage is built, start it and return
    the event it publishes for one line of its file."""
    with built(parse_config(read_yaml(config_text, "agent.yaml")), state) as gen:
        names = [s.name for s in gen.stages]
        tiny = next((s.component for s in gen.stages if s.name == "tiny"), None)
        if tiny is None:
            return names, None
        ctx = gen.ctx
        web = Container(id="ab" * 32, name="web", image="nginx", image_id="", runtime="docker", init_pid=0)
        ctx.registry.upsert(web)
        (state / "mine.log").write_text(f"{web.id} 42 cat /etc/shadow\n")
        tiny.start(ctx)
        try:
            event = ctx.events.queue.get(timeout=5)
        finally:
            tiny.stop()
        assert isinstance(event, FileOpen), event
        return names, event


def main() -> int:
    quiet = sys.argv[1]  # test_recipes.QUIET: the stages the recipe does not need, off
    out: dict[str, object] = {"agent": agent.__file__}
    config = parse_config(read_yaml("tiny:\n  path: mine.log\n  poll_seconds: 0.02\n", "agent.yaml"))
    out["section"] = config.tiny.model_dump(mode="json")  # type: ignore[attr-defined]
    out["unknown_key"] = problems("tiny:\n  pth: mine.log\n")
    out["bad_value"] = problems("tiny:\n  poll_seconds: 0\n")
    out["default_config"] = render_default_config().split("\ntiny:\n", 1)[1]
    stages, _subs = tables()
    out["stage_row"] = list(stages[-1])
    with tempfile.TemporaryDirectory() as tmp:
        names, event = stages_and_event(Path(tmp) / "on", quiet + "tiny: {path: mine.log, poll_seconds: 0.02}\n")
        out["stages"] = names
        out["event"] = [event.container.name, event.pid, event.path] if event and event.container else None
        out["stages_when_off"] = stages_and_event(Path(tmp) / "off", quiet + "tiny: {enabled: false}\n")[0]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
