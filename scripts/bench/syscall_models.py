#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark of the syscall-sequence models against STIDE and the previous n-gram model.

Data: the traces recorded in real busybox containers by ``scripts/record_syscall_traces.py``
(``tests/fixtures/syscalls``: benign workloads split by run into train / test, attack scripts
only in test). Every model is fitted on the train split only and scores the held-back test
split; thresholds come from the training data alone (never tuned on the test split).

Models, all in one run:
- ``combined``: the product's ``SequenceModel`` with its default views (KN 8-gram + TF-IDF
  nearest neighbour, k-fold calibrated, rank-averaged; target FPR 1 %); ``combined, per
  program``: the same with each program's own conformal threshold (Mondrian calibration,
  ``syscalls fit --by-program``); ``kn+cover+bag``: with the longest-match covering view as well
  (the default until the covering view's near-binary rank was found to unsettle the threshold);
- ``kn`` / ``cover`` / ``bag``: each view alone, calibrated the same way;
- ``stide``: Forrest et al.'s windows of 6, mismatch rate, threshold by the same k-fold
  cross-fitting (``scripts/bench/stide.py``);
- ``previous``: what ``syscalls fit/score`` did before (``NgramModel`` n=3, locality frame 20,
  threshold = 0.995 quantile of leave-one-out scores).

Figures per model: ROC AUC over test traces (benign test vs attack), FPR and TPR at the
model's own threshold, per-run detection (an attack run counts as detected when one of its
processes is flagged; a benign test run as a false alarm likewise), fit time, score time per
trace, model size.

Run: .venv/bin/python scripts/bench/syscall_models.py [--data tests/fixtures/syscalls] [--json]
     [--stability N]  (also: FPR when fitted on N random 80 % subsets of the training runs)
     [--gru 40]   (also the numpy GRU language model of ``gru_lm.py``: the issue's "beyond the
                   classics" goal; about 75 s of training on the 2-core lab VM)
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gru_lm import GruLm  # noqa: E402
from stide import Stide  # noqa: E402

from agent.behavior.ngram import NgramModel  # noqa: E402
from agent.behavior.seqcalib import conformal_quantile, cross_fit  # noqa: E402
from agent.behavior.seqlive import score_sequence  # noqa: E402
from agent.behavior.seqmodel import VIEWS, SequenceModel, SequenceSettings  # noqa: E402
from agent.behavior.seqwindow import TransitionWindowModel  # noqa: E402
from agent.settings.behavior import BehaviorSequenceSettings  # noqa: E402


@dataclass(frozen=True)
class Trace:
    workload: str
    cls: str  # benign | attack
    run: int
    program: str
    calls: list[int]


def load(root: Path, split: str) -> list[Trace]:
    """Every process trace of one split (``<split>/<class>/<workload>.txt.gz``)."""
    out = []
    for path in sorted((root / split).glob("*/*.txt.gz")):
        cls, workload = path.parent.name, path.name.removesuffix(".txt.gz")
        for line in gzip.decompress(path.read_bytes()).decode().splitlines():
            parts = line.split()
            if len(parts) > 3:
                out.append(Trace(workload, cls, int(parts[0]), parts[2], [int(v) for v in parts[3:]]))
    return out


def roc_auc(neg: Sequence[float], pos: Sequence[float]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    import numpy as np

    from_scores = np.concatenate([np.asarray(neg, float), np.asarray(pos, float)])
    order = from_scores.argsort(kind="mergesort")
    ranks = np.empty(len(from_scores))
    sorted_scores = from_scores[order]
    i = 0
    while i < len(sorted_scores):  # average ranks over ties
        j = i
        while j + 1 < len(sorted_scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    r_pos = ranks[len(neg) :].sum()
    return float((r_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def kfold_threshold(fit: Callable[[list[list[int]]], Callable[[list[int]], float]], seqs: list[list[int]],
                    folds: int, fpr: float, groups: list[Hashable] | None = None, seed: int = 42) -> float:  # fmt: skip
    """The conformal 1 - fpr quantile of held-out scores (the product's cross-fitting and rank)."""

    def fit_one(train: list[list[int]]) -> Callable[[list[int]], list[float]]:
        score = fit(train)
        return lambda s: [score(s)]

    held = cross_fit(seqs, folds, seed, fit_one, groups)
    held_flat = [row[0] for row in held]
    return conformal_quantile(sorted(held_flat), fpr)


@dataclass
class Result:
    name: str
    auc: float
    fpr: float
    tpr: float
    run_fpr: float
    run_tpr: float
    fit_s: float
    score_ms: float
    size: int


def evaluate(name: str, test: list[Trace], scores: list[float], flags: list[bool], fit_s: float,
             score_s: float, size: int) -> Result:  # fmt: skip
    neg = [s for t, s in zip(test, scores, strict=True) if t.cls == "benign"]
    pos = [s for t, s in zip(test, scores, strict=True) if t.cls == "attack"]
    fneg = [f for t, f in zip(test, flags, strict=True) if t.cls == "benign"]
    fpos = [f for t, f in zip(test, flags, strict=True) if t.cls == "attack"]
    runs: dict[tuple[str, str, int], bool] = {}
    for t, f in zip(test, flags, strict=True):
        key = (t.cls, t.workload, t.run)
        runs[key] = runs.get(key, False) or f
    b_runs = [v for k, v in runs.items() if k[0] == "benign"]
    a_runs = [v for k, v in runs.items() if k[0] == "attack"]
    return Result(
        name,
        roc_auc(neg, pos),
        sum(fneg) / len(fneg),
        sum(fpos) / len(fpos),
        sum(b_runs) / len(b_runs),
        sum(a_runs) / len(a_runs),
        fit_s,
        1000 * score_s / len(test),
        size,
    )


def bench_sequence(name: str, train: list[list[int]], test: list[Trace], settings: SequenceSettings,
                   groups: list[Hashable] | None, programs: list[str] | None = None) -> Result:  # fmt: skip
    t0 = time.perf_counter()
    model = SequenceModel.fit(train, settings, groups, programs)
    blob = model.to_bytes()
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = [model.score(t.calls, t.program if programs else None) for t in test]
    score_s = time.perf_counter() - t0
    return evaluate(name, test, [r.score for r in res], [r.anomalous for r in res], fit_s, score_s, len(blob))


def bench_stide(train: list[list[int]], test: list[Trace], folds: int, fpr: float,
                groups: list[Hashable] | None) -> Result:  # fmt: skip
    t0 = time.perf_counter()
    thr = kfold_threshold(lambda s: Stide().fit(s).score, train, folds, fpr, groups)
    model = Stide().fit(train)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = [model.score(t.calls) for t in test]
    score_s = time.perf_counter() - t0
    size = len(gzip.compress(json.dumps(sorted(model.db)).encode()))
    return evaluate("stide (k-fold thr)", test, scores, [s > thr for s in scores], fit_s, score_s, size)


def bench_previous(train: list[list[int]], test: list[Trace]) -> Result:
    t0 = time.perf_counter()
    model = NgramModel(n=3, frame=20, quantile=0.995).fit_sequences([s for s in train if len(s) >= 3])
    blob = model.to_json().encode()
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = [model.score_sequence(t.calls) for t in test]
    score_s = time.perf_counter() - t0
    flags = [model.is_anomalous(s) for s in scores]
    return evaluate("previous (3-gram frame)", test, scores, flags, fit_s, score_s, len(blob))


def run_windows(traces: list[Trace], procs: int) -> dict[tuple[str, str, int], list[dict[tuple[int, int], int]]]:
    """Per run, windows of ``procs`` consecutive processes: summed per-process transition counts."""
    by_run: dict[tuple[str, str, int], list[Trace]] = {}
    for t in traces:
        by_run.setdefault((t.cls, t.workload, t.run), []).append(t)
    out = {}
    for key, ts in by_run.items():
        wins = []
        for i in range(0, len(ts), procs):
            c: dict[tuple[int, int], int] = {}
            for t in ts[i : i + procs]:
                for a, b in zip(t.calls, t.calls[1:], strict=False):
                    c[(a, b)] = c.get((a, b), 0) + 1
            if c:
                wins.append(c)
        out[key] = wins
    return out


def bench_gru(train_t: list[Trace], test: list[Trace], epochs: int, fpr: float) -> Result:
    """The numpy GRU language model: fitted on 80 % of the training runs, threshold at the
    1 - fpr quantile of the other 20 % (one split: k-fold would cost k trainings)."""
    import numpy as np

    runs = sorted({(t.workload, t.run) for t in train_t})
    random.Random(42).shuffle(runs)
    held_runs = set(runs[: len(runs) // 5])
    fit_part = [t.calls for t in train_t if (t.workload, t.run) not in held_runs]
    held_part = [t.calls for t in train_t if (t.workload, t.run) in held_runs]
    t0 = time.perf_counter()
    model = GruLm().fit(fit_part, epochs=epochs)
    thr = float(np.quantile(model.score_many(held_part), 1 - fpr))
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = model.score_many([t.calls for t in test])
    score_s = time.perf_counter() - t0
    size = sum(v.size for v in model.p.values()) * 4  # float32 weights
    return evaluate(f"gru lm ({epochs} epochs)", test, scores, [s > thr for s in scores], fit_s, score_s, size)


def _image(workload: str) -> str:
    return workload.rpartition("@")[2] or "busybox"


def bench_windows(train_t: list[Trace], test: list[Trace], procs: int, fpr: float, no_groups: bool) -> list[Result]:
    """Live-window view, one baseline per image as the daemon keeps them: kernel-style transition
    counts; an attack window is added to a benign test window of the same image."""
    rng = random.Random(7)
    train_runs, test_runs = run_windows(train_t, procs), run_windows(test, procs)
    labels: list[str] = []
    scores: dict[str, list[float]] = {"model": [], "medium": [], "chain": []}
    flags: dict[str, list[bool]] = {"model": [], "medium": [], "chain": []}
    cost = {"model": [0.0, 0.0, 0], "medium": [0.0, 0.0, 0], "chain": [0.0, 0.0, 0]}  # fit s, score s, bytes
    min_unseen = BehaviorSequenceSettings().min_unseen
    for image in sorted({_image(k[1]) for k in train_runs}):
        train_keys = [k for k, ws in train_runs.items() if _image(k[1]) == image for _ in ws]
        train_w = [w for k, ws in train_runs.items() if _image(k[1]) == image for w in ws]
        benign_w = [w for k, ws in test_runs.items() if k[0] == "benign" and _image(k[1]) == image for w in ws]
        windows = [("benign", w) for w in benign_w]
        for k, ws in test_runs.items():
            if k[0] == "attack" and _image(k[1]) == image:
                for w in ws:  # the attack happens inside a container of the image doing its ordinary work
                    mixed = dict(rng.choice(benign_w))
                    for key, c in w.items():
                        mixed[key] = mixed.get(key, 0) + c
                    windows.append(("attack", mixed))
        labels += [cls for cls, _ in windows]
        t0 = time.perf_counter()
        model = TransitionWindowModel.fit(train_w, target_fpr=fpr, groups=None if no_groups else train_keys)
        cost["model"][2] += len(model.to_bytes())
        t1 = time.perf_counter()
        verdicts = [score_sequence(model, w) for _, w in windows]  # what the engine computes per window
        seen = [v for v in verdicts if v is not None]
        assert len(seen) == len(windows), "every emulated window has transitions"
        res = [v.result for v in seen]
        t2 = time.perf_counter()
        for k in ("model", "medium"):
            cost[k][0] += t1 - t0
            cost[k][1] += t2 - t1
            cost[k][2] += 0 if k == "model" else len(model.to_bytes())
        scores["model"] += [r.score for r in res]
        flags["model"] += [r.anomalous for r in res]
        # the engine's medium finding: over the threshold with >= min_unseen unseen transitions
        # (ranked by unseen transitions up to min_unseen, then by score)
        scores["medium"] += [v.result.score + 10.0 * min(v.unseen, min_unseen) for v in seen]
        flags["medium"] += [v.anomalous and v.unseen >= min_unseen for v in seen]
        chain = NgramModel(n=2)
        for w in train_w:
            chain.add_transitions(w)
        t3 = time.perf_counter()
        scores["chain"] += [chain.unseen_transitions(w) / max(1, sum(w.values())) for _, w in windows]
        flags["chain"] += [bool(chain.chain_hits(w)) for _, w in windows]
        cost["chain"][0] += t3 - t2
        cost["chain"][1] += time.perf_counter() - t3
        cost["chain"][2] += len(chain.to_json())
    fake = [Trace("w", cls, i, "", []) for i, cls in enumerate(labels)]
    names = {
        "model": "window (kn2+bag+novel)",
        "medium": f"  medium (+{min_unseen} unseen)",
        "chain": "engine chain (unseen bigr.)",
    }
    return [
        evaluate(names[k], fake, scores[k], flags[k], cost[k][0], cost[k][1], int(cost[k][2]))
        for k in ("model", "medium", "chain")
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description="syscall sequence models vs STIDE and the previous model")
    ap.add_argument("--data", type=Path, default=REPO / "tests" / "fixtures" / "syscalls")
    ap.add_argument("--target-fpr", type=float, default=0.01)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--order", type=int, default=SequenceSettings().order)
    ap.add_argument("--split", default="test", help="split to score (default test; dev for method development)")
    ap.add_argument("--cover-k", type=int, default=SequenceSettings().cover_k, help="covering view's k (0: 1/(1+L))")
    ap.add_argument("--window-procs", type=int, default=5, help="processes per emulated live window (default 5)")
    ap.add_argument("--gru", type=int, default=0, metavar="EPOCHS", help="also train the numpy GRU (40: ~75 s)")
    ap.add_argument("--no-groups", action="store_true", help="cross-fit by process instead of by run")
    ap.add_argument(
        "--stability",
        type=int,
        default=0,
        metavar="N",
        help="also: FPR of the default and kn+cover+bag fitted on N random 80%% subsets of the training runs",
    )
    ap.add_argument("--json", action="store_true", help="one JSON object per model instead of a table")
    args = ap.parse_args()
    train_t, test = load(args.data, "train"), load(args.data, args.split)
    if not train_t or not test:
        print(f"no traces under {args.data} (record them with scripts/record_syscall_traces.py)", file=sys.stderr)
        return 2
    train = [t.calls for t in train_t]
    # Folds hold whole runs (as a user would put each recording in its own folder).
    groups: list[Hashable] | None = None if args.no_groups else [(t.workload, t.run) for t in train_t]
    if any(t.cls != "benign" for t in train_t):
        raise SystemExit("the train split must hold benign traces only")
    n_b = sum(t.cls == "benign" for t in test)
    print(
        f"train: {len(train)} benign traces ({sum(map(len, train))} calls, "
        f"{len({t.workload for t in train_t})} workloads); test: {n_b} benign, {len(test) - n_b} attack traces "
        f"({len({(t.workload, t.run) for t in test if t.cls == 'attack'})} attack runs); scoring split {args.split!r}",
        file=sys.stderr,
    )
    base = SequenceSettings(
        order=args.order,
        folds=args.folds,
        target_fpr=args.target_fpr,
        cover_k=args.cover_k,
    )
    programs = [t.program for t in train_t]
    results = [
        bench_sequence("combined, per program", train, test, base, groups, programs),
        bench_sequence("combined (kn+bag)", train, test, base, groups),
        bench_sequence("kn+cover+bag", train, test, _only(base, *VIEWS), groups),
        bench_sequence(f"kn {args.order}-gram alone", train, test, _only(base, "kn"), groups),
        bench_sequence("cover alone", train, test, _only(base, "cover"), groups),
        bench_sequence("bag alone", train, test, _only(base, "bag"), groups),
        bench_stide(train, test, args.folds, args.target_fpr, groups),
        bench_previous(train, test),
    ]
    if args.gru:
        results.append(bench_gru(train_t, test, args.gru, args.target_fpr))
    if args.stability:
        for name, st in (("combined (kn+bag)", base), ("kn+cover+bag", _only(base, *VIEWS))):
            fprs = stability(train_t, test, st, args.stability)
            print(
                f"{name}: FPR over {len(fprs)} 80% subsets of the training runs: mean {statistics.mean(fprs):.4f}, "
                f"sd {statistics.pstdev(fprs):.4f}, min {min(fprs):.4f}, max {max(fprs):.4f}",
                file=sys.stderr,
            )
    n_trace = len(results)
    results += bench_windows(train_t, test, args.window_procs, args.target_fpr, args.no_groups)
    if args.json:
        for r in results:
            print(json.dumps(r.__dict__))
        return 0
    print(
        f"target FPR {args.target_fpr:.3f}; FPR/TPR per trace at each model's own threshold; runs: any process flagged"
    )
    print(
        f"{'model':26} {'AUC':>6} {'FPR':>6} {'TPR':>6} {'runFPR':>7} {'runTPR':>7} "
        f"{'fit s':>7} {'ms/trace':>9} {'size KiB':>9}"
    )
    for i, r in enumerate(results):
        if i == n_trace:
            print(f"live windows, per image ({args.window_procs} processes of a run; attack = attack + benign window):")
        print(
            f"{r.name:26} {r.auc:6.3f} {r.fpr:6.3f} {r.tpr:6.3f} {r.run_fpr:7.3f} {r.run_tpr:7.3f} "
            f"{r.fit_s:7.2f} {r.score_ms:9.3f} {r.size / 1024:9.1f}"
        )
    return 0


def stability(train_t: list[Trace], test: list[Trace], settings: SequenceSettings, n: int) -> list[float]:
    """Benign FPR on ``test`` of the model fitted on ``n`` random 80 % subsets of the training runs:
    how much the calibrated threshold depends on which runs it learned from."""
    runs = sorted({(t.workload, t.run) for t in train_t})
    benign = [t for t in test if t.cls == "benign"]
    out = []
    for rep in range(1, n + 1):
        order = runs[:]
        random.Random(rep).shuffle(order)
        keep = set(order[: int(len(order) * 0.8)])
        part = [t for t in train_t if (t.workload, t.run) in keep]
        model = SequenceModel.fit([t.calls for t in part], settings, [(t.workload, t.run) for t in part])
        out.append(sum(model.score(t.calls).anomalous for t in benign) / len(benign))
    return out


def _only(base: SequenceSettings, *views: str) -> SequenceSettings:
    return SequenceSettings(**{**_kw(base), "views": views})  # type: ignore[arg-type]


def _kw(s: SequenceSettings) -> dict[str, object]:
    return {k: getattr(s, k) for k in ("order", "bag_n", "cover_k", "folds", "target_fpr", "seed")}


if __name__ == "__main__":
    sys.exit(main())
