# SPDX-License-Identifier: Apache-2.0
"""The import contract: every ``agent`` module sits on one layer and imports only from its own
layer or lower ones (module-level, function-level and ``TYPE_CHECKING`` imports alike).

Layers, bottom to top (``docs/architecture.md`` shows the same list):

0. ground: settings, events, findings, hostfs, syscall table, resources, logging, sd_notify, commands,
   text safety, console output
1. core: pipeline, store, config, context, control socket, policy, the container record
2. host knowledge: runtime, decoders
3. subsystems: sources, detectors, behavior, logs, vuln, network, response, outputs
4. entry points: wiring (and its docs tables), app, cli, ctl, and every subsystem's ``cli``/``ctl`` sub-commands
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support import REPO

# (pattern on the dotted module name, layer); the first match wins.
LAYERS: tuple[tuple[str, int], ...] = (
    (r"agent\.(wiring|wiringdoc|app|cli|ctl)", 4),
    (r"agent\.\w+\.(\w+_)?(cli|ctl)", 4),
    (r"agent\.(sources|detectors|behavior|logs|vuln|network|response|outputs)(\..+)?", 3),
    (r"agent\.runtime\.model", 1),
    (r"agent\.(runtime|decoders)(\..+)?", 2),
    (r"agent\.(pipeline|store|config|configdoc|context|control|policy)", 1),
    (
        r"agent(\.(settings(\..+)?|events|findings|hostfs|syscall_table|resources|logsetup|sdnotify|commands|textsafe|console|extras))?",
        0,
    ),
)
NAMES = ("ground", "core", "host knowledge", "subsystems", "entry points")


def layer_of(module: str) -> int:
    for pattern, layer in LAYERS:
        if re.fullmatch(pattern, module):
            return layer
    raise AssertionError(f"{module} is on no layer: add it to LAYERS (and to docs/architecture.md)")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every ``agent`` module ``tree`` imports (``from agent.x import y`` counts y when it is a module)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "agent")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, *([base] if base else [])])
            if base.split(".")[0] != "agent":
                continue
            out.add(base)
            for a in node.names:
                sub = f"{base}.{a.name}"
                if (REPO / Path(*sub.split("."))).with_suffix(".py").exists() or (
                    REPO / Path(*sub.split(".")) / "__init__.py"
                ).exists():
                    out.add(sub)
    return out


def violations() -> list[str]:
    found = []
    for path in sorted((REPO / "agent").rglob("*.py")):
        module = module_name(path)
        mine = layer_of(module)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for target in sorted(imported(tree, module, path.name == "__init__.py")):
            theirs = layer_of(target)
            if theirs > mine:
                found.append(f"{module} ({NAMES[mine]}) imports {target} ({NAMES[theirs]})")
    return found


def test_no_import_climbs_a_layer() -> None:
    assert violations() == []


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    tree = ast.parse("def f():\n    from agent.response.engine import ResponseEngine\n")
    targets = imported(tree, "agent.policy", False)
    assert "agent.response.engine" in targets
    assert layer_of("agent.response.engine") > layer_of("agent.policy")
    rel = ast.parse("from ..wiring import wire\n")
    assert "agent.wiring" in imported(rel, "agent.sources.window", False)


def test_docs_list_the_same_layers() -> None:
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = doc.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d) \| (.+?) \|", section, flags=re.M)
    assert [(int(n), name) for n, name in rows] == list(enumerate(NAMES))
