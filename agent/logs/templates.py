# SPDX-License-Identifier: Apache-2.0
"""The template store the structurer and the daemon use: ``agent.logs.miner.TemplateMiner``
(header split, typed masks, length-adaptive Drain-style tree, merging) with stable ids and a
compact persisted state.

``add(text)`` mines a message (no header); ``add_line(line)`` splits a raw line's header first
and returns the header fields too. Ids handed out stay valid after merges (``resolve``) and across
``dump``/``load``.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass
from typing import Any

from agent.logs.miner import Cluster, TemplateMiner
from agent.logs.split import Split

STATE_FORMAT = "riskguard-templates/2"


@dataclass(frozen=True, slots=True)
class Template:
    """The template a line belongs to."""

    id: int
    text: str


class TemplateCache:
    """Template mining with caches: ``add``/``add_line`` → ``Template``; counters in ``hits`` etc."""

    def __init__(
        self,
        depth: int = 1,
        max_clusters: int | None = 4096,
        max_shapes: int = 200_000,
        max_line: int = 4096,
    ) -> None:
        self.miner = TemplateMiner(depth=depth, max_clusters=max_clusters, max_shapes=max_shapes)
        self.max_line = max_line
        # Template objects by live cluster id, valid while the miner's version is unchanged
        # (cluster tokens only change when a line misses every cache, or on load).
        self._tpl: dict[int, Template] = {}
        self._tpl_version = -1

    @property
    def hits(self) -> int:
        return self.miner.hits

    @property
    def masked_hits(self) -> int:
        return self.miner.masked_hits

    @property
    def misses(self) -> int:
        return self.miner.misses

    def _template(self, c: Cluster) -> Template:
        if self._tpl_version != self.miner.version:
            self._tpl.clear()
            self._tpl_version = self.miner.version
        t = self._tpl.get(c.id)
        if t is None:
            t = self._tpl[c.id] = Template(c.id, c.text())
        return t

    def add(self, text: str) -> Template:
        """Assign a message (no header) to a template, learning."""
        c, _ = self.miner.add(text[: self.max_line], header=False)
        return self._template(c)

    def add_line(self, line: str, min_start: int = 0, shape: bytes | None = None) -> tuple[Template, Split]:
        """Assign a raw line to a template after splitting off its header (the message starting
        at ``min_start`` at the earliest); the split too. ``shape``: ``line_shape(line)`` if known."""
        if len(line) > self.max_line:
            line, shape = line[: self.max_line], None
        c, split = self.miner.add(line, header=True, min_start=min_start, shape=shape)
        return self._template(c), split

    def hit_line(self, shape: bytes) -> tuple[Template, Split] | None:
        """``add_line(line, shape=shape)``'s answer when the miner has the line's shape cached
        (a line of at most ``max_line`` characters), else None (nothing learnt or counted)."""
        got = self.miner.hit(shape)
        if got is None:
            return None
        c, split = got
        if self._tpl_version == self.miner.version:  # _template's common case, inline
            t = self._tpl.get(c.id)
            if t is not None:
                return t, split
        return self._template(c), split

    def resolve(self, template_id: int) -> int:
        """The live id an earlier id stands for (templates merge as they learn)."""
        try:
            return self.miner.resolve(template_id).id
        except KeyError:
            return template_id

    def match(self, line: str, header: bool = False) -> Template | None:
        """The template of ``line`` without learning (None when no template fits)."""
        c = self.miner.match(line[: self.max_line], header=header)
        return Template(c.id, c.text()) if c is not None else None

    def templates(self) -> dict[int, str]:
        """Every live template by id."""
        return self.miner.templates()

    # --- persistence ---------------------------------------------------------------------
    def dump(self) -> str:
        """The miner state as a compact string (zlib + base64 of JSON)."""
        doc = {"format": STATE_FORMAT, "miner": self.miner.to_dict()}
        return base64.b64encode(zlib.compress(json.dumps(doc, separators=(",", ":")).encode())).decode()

    def load(self, blob: str) -> None:
        """Restore a state written by ``dump`` (ids stay stable); ValueError for anything else."""
        try:
            doc: Any = json.loads(zlib.decompress(base64.b64decode(blob)).decode())
        except (ValueError, zlib.error) as exc:
            raise ValueError(f"not a template state: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT or not isinstance(doc.get("miner"), dict):
            raise ValueError("not a template state written by this version")
        try:
            self.miner.load_dict(doc["miner"])
        except (TypeError, ValueError, AssertionError) as exc:
            raise ValueError(f"corrupt template state: {exc}") from exc
