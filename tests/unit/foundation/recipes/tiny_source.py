# SPDX-License-Identifier: Apache-2.0
"""A tiny source, written as the recipe in docs/architecture.md says: it reads an append-only
file of ``<container id> <pid> <comm> <path>`` lines (a stand-in for a kernel interface) under
the state dir and publishes one ``FileOpen`` per line. ``test_recipes`` also copies it into a
copy of the tree as ``agent/sources/tiny.py``, with its config section."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agent.context import AgentContext
from agent.events import Event, FileOpen
from agent.pipeline import Periodic
from agent.runtime.model import ContainerRegistry
from agent.sources.collectors import StatusCollector


class TinySource:
    """Publishes a ``FileOpen`` for every new line of ``path``; a malformed line is counted."""

    name = "tiny"

    def __init__(
        self, path: Path, registry: ContainerRegistry, publish: Callable[[Event], bool], poll_seconds: float = 0.05
    ) -> None:
        self.path = path
        self.registry = registry
        self.publish = publish
        self.offset = 0
        self.counters = {"lines": 0, "malformed": 0, "published": 0}
        self._timer = Periodic("tiny-source", poll_seconds, self.poll)

    def start(self, ctx: AgentContext) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop(2)

    def status(self) -> Mapping[str, Any]:
        return dict(self.counters)

    def poll(self) -> None:
        """Read the lines appended since the last poll and publish them."""
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for raw in complete.decode("utf-8", "replace").splitlines():
            self.counters["lines"] += 1
            parts = raw.split(" ", 3)
            c = self.registry.get(parts[0]) if len(parts) == 4 else None
            if c is None or not parts[1].isdigit():
                self.counters["malformed"] += 1
                continue
            ev = FileOpen(
                ts=0.0, pid=int(parts[1]), container=c.ref(), comm=parts[2], path=parts[3], flags=0, write=False
            )
            if self.publish(ev):
                self.counters["published"] += 1


def build(ctx: AgentContext) -> TinySource | None:
    """The tiny source; ``None`` when its section turns it off.

    Its section (``tiny``, ``recipes/tiny_section.py``) exists only where the recipe's step 2
    has added it to ``agent/settings/sources.py`` (``test_a_new_source_with_a_config_section``
    applies the recipe to a copy of the tree); without it the source reads ``tiny.log`` in the
    state dir every 50 ms.
    """
    settings = getattr(ctx.config, "tiny", None)
    if settings is not None and not settings.enabled:
        return None
    path = ctx.paths.in_state(settings.path) if settings is not None else ctx.paths.state / "tiny.log"
    src = TinySource(path, ctx.registry, ctx.publish, settings.poll_seconds if settings is not None else 0.05)
    ctx.control("tiny.status", lambda _params: dict(src.status()))
    ctx.metrics.register(StatusCollector("riskguard_tiny", src.status, [("published", "Lines published")]))
    return src
