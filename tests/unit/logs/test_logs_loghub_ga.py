# SPDX-License-Identifier: Apache-2.0
"""Grouping accuracy of ``logs parse`` on the eight loghub-dev systems (raw lines, no format string).

GA as defined in ../shared/datasets/README.md: a line is parsed correctly when the set of lines in
its predicted group equals the set of lines of its ground-truth EventId. The lines go through the
same ``Structurer`` the daemon and ``riskguard-agent logs parse`` use, with default settings for
every system.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path

import pytest

from agent.logs.structure import Structurer

REPO = Path(__file__).resolve().parents[3]
DEV = REPO.parent / "shared" / "datasets" / "loghub-dev"
SYSTEMS = ("HDFS", "Hadoop", "Spark", "Zookeeper", "BGL", "HPC", "Thunderbird", "Windows")
REQUIRED_AVERAGE = 0.95  # the bar; measured 0.975 (docs/logs.md has the per-system table)


def grouping_accuracy(pred: list[int], truth: list[str]) -> float:
    by_pred: dict[int, set[int]] = defaultdict(set)
    by_truth: dict[str, set[int]] = defaultdict(set)
    for i, (p, t) in enumerate(zip(pred, truth, strict=True)):
        by_pred[p].add(i)
        by_truth[t].add(i)
    return sum(len(ix) for ix in by_pred.values() if ix == by_truth[truth[next(iter(ix))]]) / len(pred)


def system_ga(system: str) -> float:
    folder = DEV / system
    with (folder / f"{system}_2k.log_structured_corrected.csv").open(encoding="utf-8", newline="") as fh:
        truth = [row["EventId"] for row in csv.DictReader(fh)]
    raw = (folder / f"{system}_2k.log").read_bytes().split(b"\n")[: len(truth)]
    st = Structurer()
    ids = [st.structure(line).template_id for line in raw]
    return grouping_accuracy([st.templates.resolve(i) for i in ids], truth)


def test_grouping_accuracy_on_loghub_dev() -> None:
    if not DEV.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"loghub-dev data set missing at {DEV}")
        pytest.skip(f"the loghub-dev data set is not beside the checkout ({DEV})")
    scores = {s: system_ga(s) for s in SYSTEMS}
    average = sum(scores.values()) / len(scores)
    print("GA:", {s: round(v, 4) for s, v in scores.items()}, "average", round(average, 4))
    assert min(scores.values()) >= 0.9, scores  # no system left behind
    assert average >= REQUIRED_AVERAGE, scores
