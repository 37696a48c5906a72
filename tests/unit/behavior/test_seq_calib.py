# SPDX-License-Identifier: Apache-2.0
"""Conformal and per-program (Mondrian) calibration of the sequence models' thresholds."""

from __future__ import annotations

import random

from agent.behavior.seqcalib import RankCalibration, conformal_quantile, mondrian_min


def test_conformal_quantile_uses_the_finite_sample_rank() -> None:
    values = [float(i) for i in range(1, 100)]  # 99 values: rank ceil(100 * 0.99) = 99
    assert conformal_quantile(values, 0.01) == 99.0
    assert conformal_quantile([float(i) for i in range(1, 1000)], 0.01) == 990.0  # rank 990
    assert conformal_quantile([1.0, 2.0], 0.01) == 2.0  # too few: the largest
    assert mondrian_min(0.01) == 99 and mondrian_min(0.1) == 9


def test_each_program_with_enough_traces_gets_its_own_threshold_and_fpr_holds_per_program() -> None:
    rng = random.Random(3)

    # one view; "cron" varies three times as much as "sh"; "rare" has too few traces of its own
    def draw(label: str) -> float:
        return rng.gauss(0, {"sh": 1.0, "cron": 3.0, "rare": 1.0}[label])

    labels = ["sh"] * 1500 + ["cron"] * 500 + ["rare"] * 20
    held = [[draw(lab)] for lab in labels]
    cal = RankCalibration.from_held(("v",), held, 0.01, labels)
    assert set(cal.label_thresholds) == {"sh", "cron"}
    assert cal.threshold_for("cron") > cal.threshold > cal.threshold_for("sh")
    assert cal.threshold_for("rare") == cal.threshold == cal.threshold_for(None)
    for label in ("sh", "cron"):
        new = [cal.verdict([draw(label)], label).anomalous for _ in range(4000)]
        assert sum(new) / len(new) <= 0.02, label  # within a factor of two of the target
    # pooled only: the noisy program alone would be flagged far beyond the target
    pooled = RankCalibration.from_held(("v",), held, 0.01)
    cron = [pooled.verdict([draw("cron")]).anomalous for _ in range(4000)]
    assert sum(cron) / len(cron) > 0.02
