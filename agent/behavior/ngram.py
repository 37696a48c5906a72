# SPDX-License-Identifier: Apache-2.0
"""The syscall-chain model: counts of normal syscall n-grams per image.

Two inputs, one model: ordered syscall sequences (recorded traces, ``riskguard-agent syscalls``)
give n-grams of any order; the kernel's per-cgroup transition map gives bigrams (n = 2) with
counts, which is what the daemon learns from.

A trace's score is the locality-frame rate of never-seen n-grams (Forrest et al.'s *stide*
locality frame count): the largest share of unseen n-grams in any ``frame`` consecutive n-grams,
in [0, 1], higher = more anomalous. The threshold is the ``quantile`` of the training traces'
leave-one-out scores (each trace scored against the n-grams of all the others), so a model
fitted on a handful of traces is not blind to its own variety.

For daemon windows, ``chain_hits`` names each transition into a sensitive syscall (execve,
ptrace, mount, setns, module loading …) that the image never (or only rarely) made during
learning: an "unseen syscall chain" (medium). Transitions the container runtime makes when it enters a
container (``RUNTIME_ENTRY``: runc init dropping to the container's user and capabilities on
``docker exec``, healthchecks and start, e.g. ``setgid->setuid``, ``prctl->capset``) never count:
they are the runtime's, not the image's.

Models serialise to JSON (no pickle), so a model file is safe to load from anywhere.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.behavior.features import EXEC_NRS, FD_SHAPING_NRS, SENSITIVE_NRS
from agent.syscall_table import ARCHES, syscall_name

NGRAM_FORMAT = 1

# Technique per sensitive target syscall, for findings (MITRE ATT&CK).
_MITRE = {
    "execve": "T1059",
    "execveat": "T1059",
    "ptrace": "T1055.008",
    "process_vm_writev": "T1055",
    "process_vm_readv": "T1055",
    "mount": "T1611",
    "umount2": "T1611",
    "setns": "T1611",
    "unshare": "T1611",
    "pivot_root": "T1611",
    "chroot": "T1611",
    "init_module": "T1547.006",
    "finit_module": "T1547.006",
    "bpf": "T1611",
    "memfd_create": "T1620",
}


# Identity and capability set-up of runc init entering a container (start, ``docker exec``,
# HEALTHCHECK): from these predecessors, a transition into setuid/setresuid/setreuid/capset is the
# runtime's own (the Go runtime's signal return also precedes it), never an image's chain.
_RUNTIME_ENTRY_PREV = (
    "setgroups",
    "setgid",
    "setresgid",
    "setregid",
    "setfsgid",
    "setfsuid",
    "setuid",
    "setresuid",
    "setreuid",
    "prctl",
    "capget",
    "capset",
    "rt_sigreturn",
    "futex",
    "getpid",
)
_RUNTIME_ENTRY_NEXT = ("setuid", "setresuid", "setreuid", "capset")
_NR = {name: nr for nr, name in ARCHES["x86_64"].items()}
RUNTIME_ENTRY: frozenset[tuple[int, int]] = frozenset(
    (_NR[a], _NR[b]) for a in _RUNTIME_ENTRY_PREV for b in _RUNTIME_ENTRY_NEXT if a in _NR and b in _NR
)


class NgramError(ValueError):
    """A trace or model that cannot be used."""


@dataclass(frozen=True, slots=True)
class ChainHit:
    """One transition into a sensitive syscall that learning never (or rarely) saw."""

    prev: int
    nxt: int
    count: int
    seen: int  # how often learning saw it
    arch: str = "x86_64"

    @property
    def chain(self) -> str:
        return f"{syscall_name(self.prev, self.arch)}->{syscall_name(self.nxt, self.arch)}"

    @property
    def reverse_shell_shape(self) -> bool:
        return self.nxt in EXEC_NRS and self.prev in FD_SHAPING_NRS

    @property
    def mitre(self) -> str:
        return _MITRE.get(syscall_name(self.nxt, self.arch), "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "prev": self.prev,
            "next": self.nxt,
            "count": self.count,
            "seen": self.seen,
        }


@dataclass
class NgramModel:
    """Normal syscall n-grams of one image (or one trace corpus) with their counts."""

    n: int = 2
    arch: str = "x86_64"
    frame: int = 20
    quantile: float = 0.995
    threshold: float = 0.0
    counts: Counter[tuple[int, ...]] = field(default_factory=Counter)
    total: int = 0
    traces: int = 0

    def __post_init__(self) -> None:
        if self.n < 2:
            raise NgramError(f"n-gram order must be ≥ 2, got {self.n}")
        if self.arch not in ARCHES:
            raise NgramError(f"unknown arch {self.arch!r} (known: {', '.join(sorted(ARCHES))})")
        if self.frame < 1:
            raise NgramError(f"locality frame must be ≥ 1, got {self.frame}")

    # --- learning -----------------------------------------------------------------------
    def ngrams(self, seq: Sequence[int]) -> list[tuple[int, ...]]:
        n = self.n
        return [tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)]

    def fit_sequences(self, sequences: Sequence[Sequence[int]]) -> NgramModel:
        """Learn the n-grams of ``sequences`` and set the threshold from leave-one-out scores."""
        per_trace = [Counter(self.ngrams(s)) for s in sequences]
        for c in per_trace:
            self.counts.update(c)
            self.total += sum(c.values())
        self.traces += len(sequences)
        loo = []
        for seq, own in zip(sequences, per_trace, strict=True):
            grams = self.ngrams(seq)
            flags = [self.counts[g] - own[g] <= 0 for g in grams]
            loo.append(_frame_rate(flags, self.frame))
        self.threshold = _quantile(loo, self.quantile) if loo else 0.0
        return self

    def add_transitions(self, transitions: Mapping[tuple[int, int], int]) -> None:
        """Learn in-kernel transition counts (bigrams); only valid for n = 2."""
        if self.n != 2:
            raise NgramError("kernel transitions are bigrams: the model must have n = 2")
        for (a, b), c in transitions.items():
            if c > 0:
                self.counts[(int(a), int(b))] += int(c)
                self.total += int(c)

    # --- scoring ------------------------------------------------------------------------
    def unseen_flags(self, seq: Sequence[int]) -> list[bool]:
        return [self.counts.get(g, 0) == 0 for g in self.ngrams(seq)]

    def score_sequence(self, seq: Sequence[int]) -> float:
        """Locality-frame rate of unseen n-grams in ``seq`` (0..1, higher = more anomalous)."""
        return _frame_rate(self.unseen_flags(seq), self.frame)

    def is_anomalous(self, score: float) -> bool:
        return score > self.threshold

    def chain_hits(self, transitions: Mapping[tuple[int, int], int], rare_fraction: float = 0.0) -> list[ChainHit]:
        """Transitions into sensitive syscalls that learning never (or rarely) saw, runtime entry excluded."""
        hits = []
        for (a, b), c in transitions.items():
            if c <= 0 or int(b) not in SENSITIVE_NRS or (int(a), int(b)) in RUNTIME_ENTRY:
                continue
            seen = self.counts.get((int(a), int(b)), 0)
            if seen == 0 or (self.total and seen / self.total < rare_fraction):
                hits.append(ChainHit(int(a), int(b), int(c), seen, self.arch))
        hits.sort(key=lambda h: (not h.reverse_shell_shape, -h.count))
        return hits

    def unseen_transitions(self, transitions: Mapping[tuple[int, int], int]) -> int:
        """How many of a window's transitions (by count) learning never saw."""
        return sum(c for k, c in transitions.items() if c > 0 and self.counts.get((int(k[0]), int(k[1])), 0) == 0)

    # --- persistence --------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(
            {
                "format": NGRAM_FORMAT,
                "kind": "syscall-ngram",
                "n": self.n,
                "arch": self.arch,
                "frame": self.frame,
                "quantile": self.quantile,
                "threshold": self.threshold,
                "total": self.total,
                "traces": self.traces,
                "ngrams": [[*g, c] for g, c in sorted(self.counts.items())],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> NgramModel:
        try:
            doc = json.loads(text)
            if doc.get("kind") != "syscall-ngram" or doc.get("format") != NGRAM_FORMAT:
                raise NgramError(f"not a syscall n-gram model (kind={doc.get('kind')!r}, format={doc.get('format')!r})")
            n = int(doc["n"])
            model = cls(
                n=n,
                arch=str(doc["arch"]),
                frame=int(doc["frame"]),
                quantile=float(doc["quantile"]),
                threshold=float(doc["threshold"]),
                total=int(doc["total"]),
                traces=int(doc["traces"]),
            )
            for row in doc["ngrams"]:
                if len(row) != n + 1:
                    raise NgramError(f"n-gram row {row!r} does not have {n} numbers and a count")
                model.counts[tuple(int(v) for v in row[:n])] = int(row[n])
        except NgramError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise NgramError(f"unreadable syscall n-gram model: {exc}") from None
        return model


def parse_trace(text: str, arch: str = "x86_64") -> list[int]:
    """Parse whitespace-separated syscall numbers; ``NgramError`` names the first bad token."""
    table = ARCHES.get(arch)
    if table is None:
        raise NgramError(f"unknown arch {arch!r}")
    out = []
    for pos, tok in enumerate(text.split()):
        try:
            nr = int(tok)
        except ValueError:
            raise NgramError(f"token {pos + 1} {tok[:20]!r} is not a syscall number") from None
        if nr < 0 or nr > 4095:
            raise NgramError(f"token {pos + 1} {nr} is out of the syscall number range")
        out.append(nr)
    return out


def _frame_rate(flags: Iterable[bool], frame: int) -> float:
    values = [1 if f else 0 for f in flags]
    if not values:
        return 0.0
    w = min(frame, len(values))
    run = sum(values[:w])
    best = run
    for i in range(w, len(values)):
        run += values[i] - values[i - w]
        best = max(best, run)
    return best / w


def _quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default), without importing numpy."""
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)
