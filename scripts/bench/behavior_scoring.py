#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark of behaviour scoring: throughput batched, latency of one window, model size, memory.

Baselines measured in the same run, interleaved (5 rounds each):
- throughput and latency: our compiled IForest (numpy) vs pyod's ``IForest.decision_function``
  on the same fitted forest (the scores are identical);
- model size: our ``.npz`` blob vs the pickled pyod detector;
- memory: a child process that imports the daemon's behaviour modules and scores a stored model,
  vs one that only imports the agent's foundation, vs one that also fits (imports scikit-learn;
  pyod, the baseline here, is a dev dependency, not the agent's).

Run: .venv/bin/python scripts/bench/behavior_scoring.py
"""

from __future__ import annotations

import json
import pickle
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from agent.behavior.features import N_FEATURES, feature_matrix, transform  # noqa: E402
from agent.behavior.model import DeviationModel  # noqa: E402
from agent.events import BehaviorWindow, ContainerRef  # noqa: E402
from agent.settings.behavior import BehaviorSettings  # noqa: E402

ROUNDS = 5
BATCH = 100_000
C = ContainerRef(id="c" * 64, name="bench", image="bench/web")


def window(rng: random.Random, start: float) -> BehaviorWindow:
    req = rng.randint(15, 25)
    return BehaviorWindow(
        ts=start + 10,
        container=C,
        start=start,
        end=start + 10,
        syscalls={0: req * 2, 1: req, 3: req * 2, 232: req, 257: req, 288: req, 56: 2, 59: 2, 9: 10},
        transitions={(232, 288): req, (288, 0): req, (0, 257): req, (257, 1): req, (1, 3): req, (56, 59): 2},
        execs=2,
        binaries=frozenset({"/bin/wget"}),
        accepts=req,
        connects=req,
        bytes_in=req * 100,
        bytes_out=req * 900 + rng.randint(0, 500),
        cpu_seconds=0.1 + rng.random() * 0.05,
        rss_bytes=3 << 20,
        fds=8 + rng.randint(0, 2),
        processes=2,
        threads=2,
    )


def child_rss(code: str) -> float:
    """Peak RSS (MiB) of a child that runs ``code``."""
    # VmHWM of the child's own address space: ru_maxrss would carry the forking parent's peak
    # across exec (Linux keeps it in the signal struct), hiding the child's figure.
    prog = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n" + code + "\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print(int(hwm.split()[1]) / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    rng = random.Random(1)
    train_windows = [window(rng, 10.0 * i) for i in range(1000)]
    settings = BehaviorSettings()
    raw = feature_matrix(train_windows)
    t0 = time.perf_counter()
    model = DeviationModel.fit(raw, settings)
    fit_s = time.perf_counter() - t0

    # The same forest through pyod (the baseline), fitted with the same data and seed.
    from pyod.models.iforest import IForest

    x = transform(raw, model.ref_seconds)
    clf = IForest(n_estimators=settings.iforest_trees, max_samples=settings.iforest_max_samples,
                  random_state=settings.seed).fit(x)  # fmt: skip
    noise = 1 + np.random.default_rng(2).normal(0, 0.05, (BATCH, N_FEATURES))
    probe_raw = np.repeat(raw, BATCH // len(raw), axis=0)[:BATCH] * noise
    probe_x = transform(probe_raw, model.ref_seconds)
    assert np.allclose(model.scorer.score(probe_x[:2000]), clf.decision_function(probe_x[:2000]), atol=1e-9)

    ours_bulk, pyod_bulk, full_bulk, ours_one, pyod_one = [], [], [], [], []
    singles = probe_x[:200]
    for _ in range(ROUNDS):  # interleaved rounds
        t = time.perf_counter()
        model.scores_only(probe_raw)
        ours_bulk.append(BATCH / (time.perf_counter() - t))
        t = time.perf_counter()
        clf.decision_function(probe_x[:20000])
        pyod_bulk.append(20000 / (time.perf_counter() - t))
        t = time.perf_counter()
        model.score_raw(probe_raw[:20000])
        full_bulk.append(20000 / (time.perf_counter() - t))
        t = time.perf_counter()
        for i in range(200):
            model.score_raw(probe_raw[i : i + 1])
        ours_one.append((time.perf_counter() - t) / 200 * 1e3)
        t = time.perf_counter()
        for i in range(20):
            clf.decision_function(singles[i : i + 1])
        pyod_one.append((time.perf_counter() - t) / 20 * 1e3)

    blob = model.to_bytes()
    pyod_blob = pickle.dumps(clf)

    base = "import agent.config, agent.store, agent.events, agent.pipeline"
    store_code = (
        base + "\nimport agent.behavior.component\nfrom agent.behavior.model import DeviationModel\n"
        f"m = DeviationModel.from_bytes(open({'/tmp/rg-bench-behavior.npz'!r}, 'rb').read())\n"
        "import numpy as np\nm.score_raw(np.zeros((256, m.median.shape[0])))"
    )
    fit_code = store_code + (
        "\nfrom agent.settings.behavior import BehaviorSettings\n"
        "m2 = DeviationModel.fit(np.abs(np.random.default_rng(1).normal(size=(200, m.median.shape[0]))), "
        "BehaviorSettings())"
    )
    child_fit_code = store_code + (
        "\nfrom agent.behavior.fitproc import fit_model\nfrom agent.settings.behavior import BehaviorSettings\n"
        "m3 = fit_model(np.abs(np.random.default_rng(1).normal(size=(200, m.median.shape[0]))), BehaviorSettings())\n"
        "assert 'sklearn' not in sys.modules"
    )
    Path("/tmp/rg-bench-behavior.npz").write_bytes(blob)
    rss_base, rss_score, rss_fit, rss_child_fit = [], [], [], []
    for _ in range(ROUNDS):
        rss_base.append(child_rss(base))
        rss_score.append(child_rss(store_code))
        rss_fit.append(child_rss(fit_code))
        rss_child_fit.append(child_rss(child_fit_code))
    Path("/tmp/rg-bench-behavior.npz").unlink()

    med = statistics.median
    figures = {
        "fit_seconds_1000_windows": round(fit_s, 3),
        "batched_windows_per_s_compiled": round(med(ours_bulk)),
        "batched_windows_per_s_pyod": round(med(pyod_bulk)),
        "batched_ratio_compiled_over_pyod": round(med(ours_bulk) / med(pyod_bulk), 1),
        "batched_windows_per_s_with_explanations": round(med(full_bulk)),
        "one_window_ms_compiled_with_explanation": round(med(ours_one), 3),
        "one_window_ms_pyod": round(med(pyod_one), 3),
        "one_window_ratio_pyod_over_compiled": round(med(pyod_one) / med(ours_one), 1),
        "model_bytes_npz": len(blob),
        "model_bytes_pyod_pickle": len(pyod_blob),
        "model_size_ratio_pickle_over_npz": round(len(pyod_blob) / len(blob), 1),
        "rss_mib_foundation_only": round(med(rss_base), 1),
        "rss_mib_scoring_daemon": round(med(rss_score), 1),
        "rss_mib_after_in_process_fit": round(med(rss_fit), 1),
        "rss_mib_after_subprocess_fit": round(med(rss_child_fit), 1),
        "rss_mib_added_by_scoring": round(med(rss_score) - med(rss_base), 1),
        "rss_mib_added_by_in_process_fit": round(med(rss_fit) - med(rss_base), 1),
        "rss_mib_added_by_subprocess_fit": round(med(rss_child_fit) - med(rss_base), 1),
        "rounds": ROUNDS,
    }
    targets = {
        "batched >= 100K windows/s": figures["batched_windows_per_s_compiled"] >= 100_000,
        "one window <= 1 ms": figures["one_window_ms_compiled_with_explanation"] <= 1.0,
        "model <= 2 MiB": len(blob) <= 2 * 1024 * 1024,
    }
    print(json.dumps({"figures": figures, "targets_met": targets}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
