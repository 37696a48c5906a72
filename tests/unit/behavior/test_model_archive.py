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
        np.testing.assert_array_equal(arr, stored.scorer.arrays()[name], err_msg=name)
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
