# SPDX-License-Identifier: Apache-2.0
"""Template mining on raw lines: header split, typed masks, a Drain-style tree, template merging.

Per line (``TemplateMiner.add``):

1. **Line-shape cache.** The line's UTF-8 bytes with every digit mapped to ``0`` (one
   ``bytes.translate``) key an LRU of (header split, template). Header rules and masks depend
   only on character classes, so a hit gives the same answer the full path would.
2. **Header.** ``header.split_zeroed`` finds the message start and the header fields on the
   zeroed line (memoised by the kind sequence of its first tokens and the prefix its rules read,
   so lines of one header format mostly skip the rules even when their messages differ).
3. **Masks.** ``masking.Masker.key`` types the variables of the message (each token's mask
   cached by its digit shape); a run of adjacent variables is collapsed into one (a variable that
   spans a varying number of tokens, such as a list of numbers, keeps one template). The zeroed
   message keys its masked tokens.
4. **Masked-text cache.** The masked token tuple keys the template it joined before.
5. **Tree** (He et al., "Drain", ICWS 2017): messages are routed by token count, then by their
   first ``depth`` tokens (1 by default: a second token is often an unmasked variable such as a
   user name; variables and tokens past ``max_children`` per node route to ``<*>``).
   In the leaf, the template with the most equal constant tokens wins if the tokens that differ
   from its constants are at most ``allowed_mismatches(n)``: none up to 3 tokens, then one per
   ``mismatch_every`` tokens, so the similarity a message needs adapts to its length (short
   messages differing by a word are different events; long ones tolerate unmasked variables).
   A template that ``stable_after`` lines matched with a position never varying treats that
   position as a constant for good: a variable would have shown a second value by then.
6. **Merge.** A new or generalised template is merged into an earlier template of the same
   length when they differ only at positions where at least one of them has a variable and they
   share at least half their tokens as equal constants. The merged id becomes an alias of the
   older one (``resolve``), so ids handed out earlier stay valid.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field

from agent.logs.header import split_header, split_zeroed, zeroed
from agent.logs.masking import VARIABLE_PREFIX, WILDCARD, Masker, is_variable
from agent.logs.split import Split

OVERFLOW = "<TEMPLATE-LIMIT>"  # the one template of messages past max_clusters with no near template
_DIGITS_TO_ZERO_B = bytes.maketrans(b"123456789", b"000000000")


@dataclass(slots=True)
class Cluster:
    """One template: its tokens (variables as ``<TYPE>``), how many lines joined, its id."""

    id: int
    tokens: list[str]
    size: int = 0
    alias: int = 0  # id of the cluster this one was merged into (0: none)
    variable: list[bool] = field(default_factory=list)

    def text(self) -> str:
        return " ".join(self.tokens)


_TYPE = re.compile(r"<[A-Z*]+>")


def generic(token: str) -> str:
    """``token`` with every typed variable as ``<*>`` (``id=<HEX>,`` → ``id=<*>,``)."""
    return _TYPE.sub(WILDCARD, token)


def allowed_mismatches(n: int, every: int = 4) -> int:
    """Constant tokens that may differ between a message of ``n`` tokens and its template."""
    return 0 if n <= 3 else (n - 1) // every


COLLAPSE = "same"


def collapse(tokens: list[str]) -> list[str]:
    """A run of adjacent variables of one type (a list of numbers, of ids) → one variable."""
    if COLLAPSE == "none":
        return list(tokens)
    out: list[str] = []
    prev = ""
    same = COLLAPSE != "any"
    for tok in tokens:
        var = is_variable(tok)
        if var and prev and (tok == prev or not same):
            if out[-1] != tok:
                out[-1] = WILDCARD
            continue
        out.append(tok)
        prev = tok if var else ""
    return out


def line_shape(line: str) -> bytes:
    """The line-shape cache key: the UTF-8 bytes of ``line`` with every digit mapped to ``0``."""
    return line.encode("utf-8", "surrogatepass").translate(_DIGITS_TO_ZERO_B)


class TemplateMiner:
    """Online template miner over raw lines; ``add`` returns ``(cluster, split)``."""

    def __init__(
        self,
        depth: int = 1,
        max_children: int = 64,
        mismatch_every: int = 4,
        stable_after: int = 20,
        max_clusters: int | None = None,
        max_shapes: int = 200_000,
    ) -> None:
        self.depth = depth
        self.max_children = max_children
        self.mismatch_every = mismatch_every
        self.stable_after = stable_after
        self.max_clusters = max_clusters
        self.max_shapes = max_shapes
        self.masker = Masker()
        self.clusters: dict[int, Cluster] = {}
        self._root: dict[int, dict[str, object]] = {}
        self._by_len: dict[int, list[Cluster]] = {}
        # Merge candidates: (length, position, constant token) → clusters that had that constant
        # there (entries go stale when a position turns variable; _merge checks each candidate).
        self._constants: dict[tuple[int, int, str], list[Cluster]] = {}
        self._rank: dict[int, int] = {}  # cluster id → its index in its _by_len list
        self._shapes: OrderedDict[bytes | tuple[bool, int, bytes], tuple[int, Split]] = OrderedDict()
        self._masked: dict[tuple[str, ...], int] = {}
        self._messages: dict[bytes, tuple[str, ...]] = {}  # message digit shape → masked tokens
        self._next_id = 1
        self._live = 0
        self.hits = 0
        self.masked_hits = 0
        self.misses = 0
        self.version = 0  # bumped whenever a template's tokens may have changed (misses, load)

    # --- lookup ---------------------------------------------------------------------------
    def resolve(self, cid: int) -> Cluster:
        """The live cluster an id stands for (following merges)."""
        c = self.clusters[cid]
        while c.alias:
            c = self.clusters[c.alias]
        return c

    def add(
        self, line: str, header: bool = True, min_start: int = 0, shape: bytes | None = None
    ) -> tuple[Cluster, Split]:
        """Assign ``line`` to a template (learning), its header split alongside; the message
        starts at ``min_start`` at the earliest (where a parser said the message starts).
        ``shape``, when the caller has it, must be ``line_shape(line)`` (saves computing it twice)."""
        if shape is None:
            shape = line_shape(line)
        memo: bytes | tuple[bool, int, bytes] = shape
        if not header or min_start:
            memo = (header, min_start, shape)  # hashes from the shape's cached hash, no copy
        hit = self.hit(memo)
        if hit is not None:
            return hit
        # Header rules and masks depend on digit shapes only: they read the zeroed line.
        is_ascii = line.isascii()
        zl = shape.decode("ascii") if is_ascii else zeroed(line)
        split = split_zeroed(zl) if header else Split(0)
        if min_start > split.start:
            split = Split(min_start, split.spans, split.joined)
        zmessage = zl[split.start :]
        mshape = shape[split.start :] if is_ascii else line_shape(zmessage)  # bytes: smaller keys than str
        key = self._messages.get(mshape)
        if key is None:
            message = line[split.start :]
            if COLLAPSE == "same":
                key = self.masker.key(message, zmessage)
            else:
                key = tuple(collapse(self.masker.mask(message)))
            if len(self._messages) >= self.max_shapes // 4:  # a quarter: bounds its memory
                self._messages.clear()
            self._messages[mshape] = key
        cid2 = self._masked.get(key)
        c2 = self.clusters.get(cid2) if cid2 is not None else None
        if c2 is not None:
            self.masked_hits += 1
            c2 = self.resolve(c2.id)
        else:
            self.misses += 1
            self.version += 1
            c2 = self._tree_add(list(key))
            if len(self._masked) >= self.max_shapes:
                self._masked.clear()
            self._masked[key] = c2.id
        c2.size += 1
        if len(self._shapes) >= self.max_shapes:
            self._shapes.popitem(last=False)
        self._shapes[memo] = (c2.id, split)
        return c2, split

    def hit(self, memo: bytes | tuple[bool, int, bytes]) -> tuple[Cluster, Split] | None:
        """``add``'s answer from the line-shape cache alone (counted as a hit), else None.
        ``memo`` is the line's shape (a raw line, header split, no ``min_start``) or the tuple
        ``add`` keys other calls by."""
        got = self._shapes.get(memo)
        if got is None:
            return None
        cid, split = got
        c = self.clusters.get(cid)
        if c is None:
            return None
        self.hits += 1
        while c.alias:
            c = self.clusters[c.alias]
        c.size += 1
        return c, split

    def match(self, line: str, header: bool = True) -> Cluster | None:
        """The template of ``line`` without learning (None when no template fits)."""
        split = split_header(line) if header else Split(0)
        tokens = collapse(self.masker.mask(line[split.start :]))
        cid = self._masked.get(tuple(tokens))
        if cid is not None and cid in self.clusters:
            return self.resolve(cid)
        leaf = self._leaf(tokens, create=False)
        best = self._best(leaf or [], tokens)
        return self.resolve(best.id) if best is not None else None

    # --- the tree -------------------------------------------------------------------------
    def _leaf(self, tokens: list[str], create: bool) -> list[Cluster] | None:
        n = len(tokens)
        node = self._root.get(n)
        if node is None:
            if not create:
                return None
            node = self._root[n] = {}
        for i in range(min(self.depth, n)):
            tok = tokens[i]
            key = WILDCARD if is_variable(tok) else generic(tok) if VARIABLE_PREFIX in tok else tok
            nxt = node.get(key)
            if nxt is None:
                if not create:
                    nxt = node.get(WILDCARD)
                    if nxt is None:
                        return None
                else:
                    if len(node) >= self.max_children and key != WILDCARD:
                        key = WILDCARD
                    nxt = node.setdefault(key, {})
            node = nxt  # type: ignore[assignment]
        leaf = node.get("")
        if leaf is None:
            if not create:
                return None
            leaf = node[""] = []
        return leaf  # type: ignore[return-value]

    def _best(self, leaf: list[Cluster], tokens: list[str]) -> Cluster | None:
        n = len(tokens)
        allowed = allowed_mismatches(n, self.mismatch_every)
        best: Cluster | None = None
        best_eq = -1
        for c in leaf:
            if c.alias:
                continue
            eq = 0
            bad = 0
            lim = 0 if self.stable_after and c.size >= self.stable_after else allowed
            for t, var, m in zip(c.tokens, c.variable, tokens, strict=True):
                if var:
                    continue
                if t == m or (VARIABLE_PREFIX in t and VARIABLE_PREFIX in m and generic(t) == generic(m)):
                    eq += 1
                else:
                    bad += 1
                    if bad > lim:
                        break
            if bad <= lim and eq > best_eq:
                best, best_eq = c, eq
        return best

    def _tree_add(self, tokens: list[str]) -> Cluster:
        leaf = self._leaf(tokens, create=True)
        assert leaf is not None
        best = self._best(leaf, tokens)
        if best is None and self.max_clusters is not None and self._live >= self.max_clusters:
            # Full: the nearest template of the leaf absorbs the message, else one catch-all.
            best = self._nearest(leaf, tokens)
            if best is None:
                return self._overflow()
        if best is not None:
            if self._generalise(best, tokens):
                return self._merge(best)
            return best
        c = Cluster(self._next_id, list(tokens), 0, 0, [is_variable(t) for t in tokens])
        self._next_id += 1
        self.clusters[c.id] = c
        self._live += 1
        leaf.append(c)
        self._register(c)
        return self._merge(c)

    def _register(self, c: Cluster) -> None:
        """Put a new live cluster in its length list and the constants index."""
        same = self._by_len.setdefault(len(c.tokens), [])
        self._rank[c.id] = len(same)
        same.append(c)
        n = len(c.tokens)
        index = self._constants
        for i, (t, var) in enumerate(zip(c.tokens, c.variable, strict=True)):
            if not var:
                index.setdefault((n, i, t), []).append(c)

    @staticmethod
    def _nearest(leaf: list[Cluster], tokens: list[str]) -> Cluster | None:
        live = [c for c in leaf if not c.alias]
        if not live:
            return None
        return max(live, key=lambda c: sum(1 for t, m in zip(c.tokens, tokens, strict=True) if t == m))

    def _overflow(self) -> Cluster:
        for c in self.clusters.values():
            if c.tokens == [OVERFLOW]:
                return c
        c = Cluster(self._next_id, [OVERFLOW], 0, 0, [True])
        self._next_id += 1
        self.clusters[c.id] = c
        return c

    def _generalise(self, c: Cluster, tokens: list[str]) -> bool:
        changed = False
        for i, (t, m) in enumerate(zip(c.tokens, tokens, strict=True)):
            if t != m and not c.variable[i] and VARIABLE_PREFIX in t and generic(t) == generic(m):
                # ``id=<HEX>`` vs ``id=<NUM>``: one constant key, a value of either type.
                c.tokens[i] = generic(t)
                self._constants.setdefault((len(c.tokens), i, c.tokens[i]), []).append(c)
                changed = True
            elif t != m:
                new = t if c.variable[i] and t == WILDCARD else WILDCARD
                if is_variable(m) and c.variable[i] and t != m:
                    new = WILDCARD
                if new != t:
                    c.tokens[i] = new
                    c.variable[i] = True
                    changed = True
        return changed

    def _merge(self, c: Cluster) -> Cluster:
        """Fold ``c`` into an older template differing only at variable positions (the first
        such template of its length list)."""
        n = len(c.tokens)
        need = max(1, (n + 1) // 2)  # equal constants a merge needs: shared * 2 >= n, shared > 0
        consts = [i for i in range(n) if not c.variable[i]]
        if len(consts) < need:
            return c
        # A template sharing ``need`` of c's constant positions shares at least one of any
        # ``len(consts) - need + 1`` of them: the candidates are the templates indexed there.
        index = self._constants
        postings = sorted((index.get((n, i, c.tokens[i]), ()) for i in consts), key=len)
        seen: set[int] = set()
        candidates: list[Cluster] = []
        for posting in postings[: len(consts) - need + 1]:
            for other in posting:
                if other.id not in seen:
                    seen.add(other.id)
                    candidates.append(other)
        rank = self._rank
        candidates.sort(key=lambda o: rank[o.id])
        for other in candidates:
            if self._fold_into(c, other):
                return other
        return c

    def _fold_into(self, c: Cluster, other: Cluster) -> bool:
        """Fold ``c`` into the older ``other`` when their constants agree wherever both have one
        and at least half of the positions are shared constants; False (nothing changed) if not."""
        if other is c or other.alias or other.id > c.id:
            return False
        n = len(c.tokens)
        shared = 0
        for a, va, b, vb in zip(c.tokens, c.variable, other.tokens, other.variable, strict=True):
            if va or vb:
                continue
            if a != b:
                return False
            shared += 1
        if shared * 2 < n or shared == 0:
            return False
        for i in range(n):
            if c.variable[i] or other.variable[i]:
                if other.tokens[i] != c.tokens[i]:
                    other.tokens[i] = WILDCARD
                other.variable[i] = True
        c.alias = other.id
        self._live -= 1
        other.size += c.size
        return True

    # --- introspection, persistence -------------------------------------------------------
    def templates(self) -> dict[int, str]:
        """Every live template by id."""
        return {cid: c.text() for cid, c in self.clusters.items() if not c.alias}

    def to_dict(self) -> dict[str, object]:
        return {
            "clusters": [[c.id, c.tokens, c.size, c.alias] for c in self.clusters.values()],
            "next_id": self._next_id,
        }

    def load_dict(self, d: dict[str, object]) -> None:
        """Restore clusters written by ``to_dict`` (the tree is rebuilt; caches start empty)."""
        self.version += 1
        self.clusters.clear()
        self._root.clear()
        self._by_len.clear()
        self._constants.clear()
        self._rank.clear()
        self._shapes.clear()
        self._masked.clear()
        self._messages.clear()
        self._live = 0
        rows = d.get("clusters", [])
        assert isinstance(rows, list)
        for cid, tokens, size, alias in rows:
            c = Cluster(int(cid), [str(t) for t in tokens], int(size), int(alias), [is_variable(t) for t in tokens])
            self.clusters[c.id] = c
            if not c.alias and c.tokens != [OVERFLOW]:
                self._live += 1
                leaf = self._leaf(c.tokens, create=True)
                assert leaf is not None
                leaf.append(c)
                self._register(c)
        nxt = d.get("next_id", 1)
        self._next_id = max([int(nxt) if isinstance(nxt, int) else 1, *(c.id + 1 for c in self.clusters.values())])
