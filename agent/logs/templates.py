# SPDX-License-Identifier: Apache-2.0
"""Template mining: drain3 with masks, behind a cache of repeated line shapes.

A line's *shape* is its UTF-8 bytes with every ASCII digit replaced by ``0`` (length-preserving). The
masks below only look at character classes (a digit is any digit; letters, separators and
lengths are kept by the shape), so two lines with the same shape mask to the same text except for
digits left in unmasked tokens, which drain3 itself treats as parameters
(``parametrize_numeric_tokens``). The cache maps a shape to the drain3 cluster its first line
joined; later lines of that shape skip masking and the prefix-tree search entirely. This is the
lever that takes throughput from drain3's ~40K lines/s to several hundred thousand on repetitive
logs, with drain3's grouping (see docs/bench/logs.md for the measured accuracy).
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass
from typing import Any

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

# Masks, in order. Each depends only on character classes, never on digit values (see above).
MASKS: tuple[tuple[str, str], ...] = (
    (r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b", "UUID"),
    (r"(?<![\w.])\d+\.\d+\.\d+\.\d+(?::\d+)?(?![\w.])", "IP"),
    (r"(?<![\w:])(?:[0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}(?![\w:])", "MAC"),
    (r"\b0[xX][0-9a-fA-F]+\b", "HEX"),
    (r"(?<![\w])[0-9a-f]{16,}(?![\w])", "HEX"),
    (r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w])", "NUM"),
)

_DIGITS_TO_ZERO_B = bytes.maketrans(b"123456789", b"000000000")


def make_miner(sim_th: float = 0.4, depth: int = 4, max_clusters: int | None = None) -> TemplateMiner:
    """A drain3 ``TemplateMiner`` with our masks and no persistence (state saved explicitly)."""
    cfg = TemplateMinerConfig()
    cfg.drain_sim_th = sim_th
    cfg.drain_depth = depth
    cfg.drain_max_clusters = max_clusters
    cfg.masking_instructions = [MaskingInstruction(p, name) for p, name in MASKS]
    cfg.profiling_enabled = False
    cfg.parametrize_numeric_tokens = True
    return TemplateMiner(persistence_handler=None, config=cfg)


@dataclass(frozen=True, slots=True)
class Template:
    """The template a line belongs to."""

    id: int
    text: str


class TemplateCache:
    """drain3 with a shape cache: ``add(line)`` → ``Template``; ``stats`` counts hits/misses."""

    def __init__(
        self,
        sim_th: float = 0.4,
        depth: int = 4,
        max_clusters: int | None = 4096,
        max_shapes: int = 200_000,
        max_line: int = 4096,
    ) -> None:
        self.miner = make_miner(sim_th, depth, max_clusters)
        self.max_shapes = max_shapes
        self.max_line = max_line
        self._shapes: dict[bytes, int] = {}
        self._masked: dict[str, int] = {}
        self._templates: dict[int, Template] = {}
        self.hits = 0
        self.masked_hits = 0
        self.misses = 0

    def add(self, line: str) -> Template:
        """Assign ``line`` to a template (training drain3 on cache misses)."""
        if len(line) > self.max_line:
            line = line[: self.max_line]
        # bytes.translate is ~8x faster than str.translate (CPython has no ASCII fast path for
        # the latter with a dict table); surrogatepass keeps lone surrogates from raising.
        shape = line.encode("utf-8", "surrogatepass").translate(_DIGITS_TO_ZERO_B)
        cid = self._shapes.get(shape)
        if cid is not None:
            tpl = self._templates.get(cid)
            if tpl is not None:
                self.hits += 1
                return tpl
        # Second level: lines of different shapes often mask to the same text (an IP with
        # shorter octets): reuse the cluster that masked text joined, skipping drain3's tree.
        masked = self.miner.masker.mask(line)
        cid = self._masked.get(masked)
        if cid is not None:
            tpl = self._templates.get(cid)
            if tpl is not None:
                self.masked_hits += 1
                self._remember(shape, masked, cid)
                return tpl
        self.misses += 1
        result: dict[str, Any] = self.miner.add_log_message(line)
        cid = int(result["cluster_id"])
        if result["change_type"] != "none" or cid not in self._templates:
            self._templates[cid] = Template(cid, str(result["template_mined"]))
            self._prune()
        self._remember(shape, masked, cid)
        return self._templates[cid]

    def _remember(self, shape: bytes, masked: str, cid: int) -> None:
        if len(self._shapes) >= self.max_shapes:
            # A bounded cache: start over rather than track recency (misses only cost speed).
            self._shapes.clear()
            self._masked.clear()
        self._shapes[shape] = cid
        self._masked[masked] = cid

    def _prune(self) -> None:
        # drain3 evicts least-recently-used clusters past max_clusters: forget their shapes.
        live = self.miner.drain.id_to_cluster
        if len(self._templates) > len(live) + 64:
            dead = {cid for cid in self._templates if cid not in live}
            for cid in dead:
                del self._templates[cid]
            self._shapes = {s: c for s, c in self._shapes.items() if c not in dead}
            self._masked = {m: c for m, c in self._masked.items() if c not in dead}

    def match(self, line: str) -> Template | None:
        """The template of ``line`` without training (None when no cluster fits)."""
        shape = line[: self.max_line].encode("utf-8", "surrogatepass").translate(_DIGITS_TO_ZERO_B)
        cid = self._shapes.get(shape)
        if cid is not None and cid in self._templates:
            return self._templates[cid]
        cluster = self.miner.match(line[: self.max_line])
        if cluster is None:
            return None
        return Template(int(cluster.cluster_id), cluster.get_template())

    def templates(self) -> dict[int, str]:
        """Every live template by id."""
        return {int(c.cluster_id): c.get_template() for c in self.miner.drain.clusters}

    # --- persistence ---------------------------------------------------------------------
    def dump(self) -> str:
        """The drain3 state as a compact string (zlib + base64 of drain3's own snapshot)."""
        import jsonpickle  # drain3's own serialiser

        raw = jsonpickle.dumps(self.miner.drain, keys=True).encode()
        return base64.b64encode(zlib.compress(raw)).decode()

    def load(self, blob: str) -> None:
        """Restore a state written by ``dump`` (template ids stay stable across restarts)."""
        import jsonpickle

        drain = jsonpickle.loads(zlib.decompress(base64.b64decode(blob)).decode(), keys=True)
        # jsonpickle turns int dict keys into strings: drain3's own load_state fixes them the same way.
        if len(drain.id_to_cluster) > 0 and isinstance(next(iter(drain.id_to_cluster.keys())), str):
            drain.id_to_cluster = {int(k): v for k, v in list(drain.id_to_cluster.items())}
            if self.miner.config.drain_max_clusters:
                from cachetools import LRUCache

                cache: Any = LRUCache(maxsize=self.miner.config.drain_max_clusters)
                cache.update(drain.id_to_cluster)
                drain.id_to_cluster = cache
        self.miner.drain.id_to_cluster = drain.id_to_cluster
        self.miner.drain.clusters_counter = drain.clusters_counter
        self.miner.drain.root_node = drain.root_node
        self._shapes.clear()
        self._masked.clear()
        self._templates = {cid: Template(cid, text) for cid, text in self.templates().items()}


def stable_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
