# SPDX-License-Identifier: Apache-2.0
"""The sequence model on traces recorded in real containers: it must beat STIDE on the held-back split.

Fitted on ``tests/fixtures/syscalls/train`` (benign workloads only), scored on ``test`` (other
runs of the same workloads and attack scripts); thresholds come from the training traces alone.
"""

from __future__ import annotations

from pathlib import Path

from agent.behavior.seqmodel import SequenceModel, SequenceSettings
from scripts.bench.stide import Stide
from scripts.bench.syscall_models import kfold_threshold, load, roc_auc

DATA = Path(__file__).resolve().parents[2] / "fixtures" / "syscalls"


def test_combined_model_beats_stide_and_keeps_its_false_positive_target() -> None:
    train = [t.calls for t in load(DATA, "train")]
    test = load(DATA, "test")
    assert len(train) > 1000 and {t.cls for t in test} == {"benign", "attack"}
    settings = SequenceSettings()
    model = SequenceModel.fit(train, settings)
    results = [model.score(t.calls) for t in test]
    stide = Stide().fit(train)
    stide_scores = [stide.score(t.calls) for t in test]

    benign = [i for i, t in enumerate(test) if t.cls == "benign"]
    attack = [i for i, t in enumerate(test) if t.cls == "attack"]
    auc = roc_auc([results[i].score for i in benign], [results[i].score for i in attack])
    auc_stide = roc_auc([stide_scores[i] for i in benign], [stide_scores[i] for i in attack])
    assert auc > auc_stide, (auc, auc_stide)

    fpr = sum(results[i].anomalous for i in benign) / len(benign)
    assert settings.target_fpr / 2 <= fpr <= settings.target_fpr * 2, fpr
    # Every attack run has at least one flagged process.
    flagged_runs = {(test[i].workload, test[i].run) for i in attack if results[i].anomalous}
    assert flagged_runs == {(test[i].workload, test[i].run) for i in attack}
    # STIDE with the same cross-fitted threshold pays more false positives for it.
    thr = kfold_threshold(lambda s: Stide().fit(s).score, train, settings.folds, settings.target_fpr)
    assert sum(stide_scores[i] > thr for i in benign) / len(benign) > fpr
