# SPDX-License-Identifier: Apache-2.0
"""Stored behaviour models stay loadable: blobs and a signed baseline export written by earlier code.

tests/fixtures/behavior was written by scripts/fixtures/capture_behavior_models.py at commit
1cd4ffd, when the deviation model was still fitted through pyod. Today's code (scikit-learn
directly) must load those blobs, score them exactly as they were scored then, and fit the same
model again from the same rows.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from behavior_synth import ARCHIVE_SETTINGS, IMAGE, container, normal_window

from agent.behavior.engine import BehaviorEngine
from agent.behavior.model import DeviationModel
from agent.behavior.scorers import EcodScorer
from agent.behavior.transfer import import_baseline
from agent.store import Store

FIXTURES = Path(__file__).parents[2] / "fixtures" / "behavior"
SETTINGS = ARCHIVE_SETTINGS


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "expected.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.mark.parametrize("algorithm", ["iforest", "ecod"])
def test_stored_deviation_model_loads_and_scores_as_when_written(
    algorithm: str, expected: dict[str, np.ndarray]
) -> None:
    model = DeviationModel.from_bytes((FIXTURES / f"deviation-{algorithm}.npz").read_bytes())
    assert model.algorithm == algorithm
    assert model.threshold == float(expected[f"{algorithm}_threshold"])
    scores = [r.score for r in model.score_raw(expected["probe"])]
    np.testing.assert_allclose(scores, expected[f"{algorithm}_scores"], rtol=0, atol=1e-12)
    results = model.score_raw(expected["probe"])
    assert [r.deviating for r in results[-2:]] == [True, True]  # the cpu burner and the shadow read
    assert not any(r.deviating for r in results[:-2])


@pytest.mark.parametrize("algorithm", ["iforest", "ecod"])
def test_refitting_the_same_rows_gives_the_stored_model(algorithm: str, expected: dict[str, np.ndarray]) -> None:
    stored = DeviationModel.from_bytes((FIXTURES / f"deviation-{algorithm}.npz").read_bytes())
    fitted = DeviationModel.fit(expected["train"], SETTINGS.model_copy(update={"algorithm": algorithm}))
    refit = DeviationModel.from_bytes(fitted.to_bytes())  # compared as stored
    assert refit.threshold == pytest.approx(stored.threshold, rel=0, abs=1e-12)
    for name, arr in refit.scorer.arrays().items():
        # the rows pass through log1p, whose last bit differs between numpy builds
        np.testing.assert_allclose(arr, stored.scorer.arrays()[name], rtol=1e-13, atol=0, err_msg=name)
    np.testing.assert_allclose(refit.scores_only(expected["probe"]), stored.scores_only(expected["probe"]), atol=1e-12)


def test_stored_baseline_export_imports_and_scores_as_when_written(
    tmp_path: Path, expected: dict[str, np.ndarray]
) -> None:
    doc = json.loads((FIXTURES / "baseline-export.json").read_text())
    key = (FIXTURES / "baseline.key").read_bytes()
    engine = BehaviorEngine(SETTINGS, Store(tmp_path / "agent.db"))
    out = import_baseline(engine.db, engine.allowances, doc, key)
    assert out["baseline"] == IMAGE and "deviation" in out["models"]
    model = engine.baseline(IMAGE, 0).model
    assert model is not None
    (res,) = model.score_raw(expected["baseline_probe"])
    assert res.score == pytest.approx(float(expected["baseline_score"]), rel=0, abs=1e-12)
    # The engine scores a window with the imported baseline (no learning, no refit).
    w = normal_window(random.Random(9), 9000, container(7))
    (scored,) = engine.process([w], now=w.end)
    assert scored.result is not None and not scored.learning


def test_ecod_treats_a_value_one_ulp_from_a_training_value_as_that_value() -> None:
    # Counts pass through log1p; another numpy build may round its last bit the other way.
    rng = np.random.default_rng(7)
    train = np.log1p(rng.integers(0, 4, size=(200, 3)).astype(np.float64))
    scorer = EcodScorer.from_training(train)
    probe = np.log1p(np.array([[2.0, 1.0, 3.0]]))
    for direction in (np.inf, -np.inf):
        nudged = np.nextafter(probe, direction)
        assert not np.array_equal(nudged, probe)
        np.testing.assert_allclose(scorer.score(nudged), scorer.score(probe), rtol=0, atol=1e-12)
    # a real difference still moves the score
    assert scorer.score(np.log1p(np.array([[9.0, 1.0, 3.0]])))[0] > scorer.score(probe)[0] + 1.0
