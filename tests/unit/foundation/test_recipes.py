# SPDX-License-Identifier: Apache-2.0
"""The "how to add …" recipes of docs/architecture.md, proved with tiny examples
(``tests/unit/foundation/recipes/``): a detector needs no wiring, a source is one stage line, and
a source with a config section of its own touches three files (applied to a copy of the tree)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml
from prometheus_client import generate_latest

from agent.app import AppState, reload_config, startup, status, teardown
from agent.config import parse_config
from agent.context import AgentContext
from agent.control import call
from agent.detectors.component import DetectorsComponent
from agent.detectors.registry import enabled
from agent.events import ContainerRef, PacketsDenied
from agent.findings import Finding
from agent.runtime.model import Container
from agent.settings.detectors import DetectorsSettings
from agent.wiring import Generation, attach, wire
from tests.support import REPO, wait_for
from tests.unit.foundation.recipes import tiny_detector, tiny_section
from tests.unit.foundation.test_app_steps import cfg

WEB = Container(id="ab" * 32, name="web", image="nginx", image_id="", runtime="docker", init_pid=0)


def denied(packets: int) -> PacketsDenied:
    ref = ContainerRef(id=WEB.id, name="web", image="nginx")
    return PacketsDenied(ts=10.0, container=ref, start=0.0, end=10.0, packets_in=packets, enforced=True)


def test_a_new_detector_needs_no_wiring(make_ctx: Callable[..., AgentContext]) -> None:
    ctx = make_ctx()
    before = DetectorsComponent(DetectorsSettings(), enabled(()))
    assert PacketsDenied not in before.kinds()  # nothing subscribed PacketsDenied for detectors
    # Step 2 of the recipe: the registry lists the new SPEC (here: the enabled tuple plus it).
    comp = DetectorsComponent(DetectorsSettings(), (*enabled(()), tiny_detector.SPEC))
    attach(ctx, comp)  # the wiring as the agent runs it, unchanged
    kinds = next(k for k, name, _h in ctx.events.subscribers() if name == "detectors")
    assert isinstance(kinds, tuple) and PacketsDenied in kinds
    got: list[Finding] = []
    ctx.findings.subscribe(got.append)
    ctx.events.process(denied(3))  # the benign twin: a few denied packets stay silent
    ctx.events.process(denied(250))
    while ctx.findings.queue.qsize():
        ctx.findings.process(ctx.findings.queue.get(1))  # type: ignore[arg-type]
    assert [(f.detector_id, f.evidence["packets"]) for f in got] == [("RG-9001", 250)]
    assert comp.status()["findings"] == {"RG-9001": 1}
    # Step 3: docs/detectors.md has a row per registered detector (test_component checks it).
    assert "| RG-0001 |" in (REPO / "docs" / "detectors.md").read_text(encoding="utf-8")


# Every stage a recipe does not need turned off (the privileged sources, network, behaviour,
# logs); the response only observes, the outputs write nothing.
QUIET = """
ebpf: {enabled: false}
audit: {enabled: false}
procfs: {enabled: false}
network: {enabled: false}
behavior: {enabled: false}
logs: {enabled: false}
response: {mode: observe}
outputs: {alerts_file: null, log_findings: false, metrics: {enabled: false}}
"""


def config(tmp_path: Path, extra: str = "") -> Path:
    """``test_app_steps``' config with ``QUIET`` and ``extra``."""
    return cfg(tmp_path, QUIET + extra)


def wire_with_tiny_source(gen: Generation) -> None:
    """``agent.wiring.wire`` plus the one line step 2 of the source recipe adds to it."""
    wire(gen)
    gen.build("tiny", "tests.unit.foundation.recipes.tiny_source", lambda m, ctx: m.build(ctx))


def test_a_new_source_is_one_stage_in_the_wiring(tmp_path: Path) -> None:
    p = config(tmp_path)
    state = AppState(
        config=parse_config(yaml.safe_load(p.read_text())),
        config_source=str(p),
        config_path=p,
        wiring=wire_with_tiny_source,
    )
    startup(state)
    try:
        assert state.ctx is not None
        state.registry.upsert(WEB)
        sock = tmp_path / "run" / "agent.sock"
        assert status(state)["components"]["tiny"]["state"] == "running"
        log = tmp_path / "state" / "tiny.log"
        log.write_text(f"{WEB.id} 42 cat /etc/shadow\nnot a line\n")
        # Its events reach the analysers, their findings the response: the pipeline carries it.
        wait_for(lambda: call(sock, "findings", {"container": WEB.id}), 5, what="finding from the tiny source")
        assert call(sock, "tiny.status") == {"lines": 2, "malformed": 1, "published": 1}
        assert "riskguard_tiny_published_total 1.0" in generate_latest(state.ctx.metrics).decode()
        # A reload builds it again like every other stage; the old instance stops reading.
        first = next(c for c in state.components if c.name == "tiny")
        config(tmp_path, "detectors: {repeat_suppress_seconds: 0}")
        assert reload_config(state) is True
        second = next(c for c in state.components if c.name == "tiny")
        assert second is not first and status(state)["components"]["tiny"]["state"] == "running"
        with log.open("a") as f:
            f.write(f"{WEB.id} 43 cat /etc/gshadow\n")
        wait_for(lambda: call(sock, "tiny.status")["published"] == 2, 5, what="the new instance reads")
        assert first.status()["published"] == 1  # type: ignore[attr-defined]
    finally:
        teardown(state)


RECIPES = Path(tiny_section.__file__).parent


def apply_source_recipe(root: Path) -> set[str]:
    """The source recipe, done by hand to a copy of ``agent/`` under ``root``: the module, its
    section in ``agent/settings/sources.py``, its line in ``agent/wiring.py``. Returns the files
    that differ from the tree's own."""
    agent = root / "agent"
    shutil.copytree(REPO / "agent", agent, ignore=shutil.ignore_patterns("__pycache__"))
    # 1. the module.
    shutil.copy(RECIPES / "tiny_source.py", agent / "sources" / "tiny.py")
    # 2. the section model before ``SourceSections`` and its field at the end of it (the last class).
    settings = agent / "settings" / "sources.py"
    text = settings.read_text(encoding="utf-8")
    classes = [n.name for n in ast.parse(text).body if isinstance(n, ast.ClassDef)]
    assert classes[-1] == "SourceSections", "SourceSections must stay the last class of settings/sources.py"
    model = (RECIPES / "tiny_section.py").read_text(encoding="utf-8")
    model = model[model.index("class TinySettings") : model.index("FIELD =")].rstrip() + "\n\n\n"
    text = text.replace("class SourceSections(", model + "class SourceSections(", 1)
    settings.write_text(text.rstrip("\n") + "\n" + tiny_section.FIELD, encoding="utf-8")
    # 3. one line at the end of ``wire`` (the last stage starts last).
    wiring = agent / "wiring.py"
    lines = wiring.read_text(encoding="utf-8").splitlines(keepends=True)
    fn = next(n for n in ast.parse("".join(lines)).body if isinstance(n, ast.FunctionDef) and n.name == "wire")
    line = '    gen.build("tiny", "agent.sources.tiny", lambda m, ctx: m.build(ctx), produces="`FileOpen`")\n'
    assert fn.end_lineno is not None
    wiring.write_text("".join([*lines[: fn.end_lineno], line, *lines[fn.end_lineno :]]), encoding="utf-8")
    return {
        str(p.relative_to(root))
        for p in agent.rglob("*.py")
        if not (REPO / p.relative_to(root)).exists() or (REPO / p.relative_to(root)).read_bytes() != p.read_bytes()
    }


def test_a_new_source_with_a_config_section_touches_three_files(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    touched = apply_source_recipe(root)
    assert touched == {"agent/sources/tiny.py", "agent/settings/sources.py", "agent/wiring.py"}
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{REPO}", "RISKGUARD_DATA_DIR": str(REPO)}
    run = subprocess.run(
        [sys.executable, str(RECIPES / "tiny_section_check.py"), QUIET],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.splitlines()[-1])
    assert got["agent"] == str(root / "agent" / "__init__.py")  # the copy ran, not the tree
    # Its section parses from YAML, with no edit to agent/config.py …
    assert got["section"] == {"enabled": True, "path": "mine.log", "poll_seconds": 0.02}
    # … and is refused like every section: unknown keys and bad values by their dotted path.
    assert got["unknown_key"] == ["tiny.pth: unknown key"]
    assert got["bad_value"] == ["tiny.poll_seconds: Input should be greater than 0"]
    # ``make config``: the documented default config shows it, commented; the docs' stage table
    # gets its row from the wiring line.
    assert got["default_config"].startswith(
        "  # Turn this part of the agent on (true) or off (false).\n  enabled: true\n"
        "  # The file it reads; a relative path is under state.dir.\n  path: tiny.log\n"
    )
    assert got["stage_row"][1:] == ["tiny", "`agent/sources/tiny.py`", "", "`FileOpen`"]
    # The wiring builds it last, it publishes what it reads; its section turns it off.
    assert got["stages"][-1] == "tiny" and "tiny" not in got["stages_when_off"]
    assert got["stages"][:-1] == got["stages_when_off"]
    assert got["event"] == ["web", 42, "/etc/shadow"]
