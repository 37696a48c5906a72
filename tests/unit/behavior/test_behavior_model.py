# SPDX-License-Identifier: Apache-2.0
"""Feature vector, compiled IForest/ECOD scoring, thresholds, explanations, modes, model blobs."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import numpy as np
import pytest
from behavior_synth import container, normal_window, with_cpu_burner, with_reverse_shell, with_shadow_read

from agent.behavior.features import (
    FEATURE_INDEX,
    FEATURE_KINDS,
    FEATURE_NAMES,
    N_FEATURES,
    SYSCALL_GROUPS,
    feature_matrix,
    transform,
    window_vector,
)
from agent.behavior.model import DeviationModel, EcodScorer, IForestScorer, ModelError
from agent.events import BehaviorWindow
from agent.settings.behavior import BehaviorSettings
from tests.support import REPO

C = container(1)


def windows(n: int, seed: int = 1, start: float = 1000.0) -> list[BehaviorWindow]:
    rng = random.Random(seed)
    return [normal_window(rng, start + 2 * i, C) for i in range(n)]


@pytest.fixture(scope="module")
def train() -> np.ndarray:
    return feature_matrix(windows(200))


@pytest.fixture(scope="module")
def iforest(train: np.ndarray) -> DeviationModel:
    return DeviationModel.fit(train, BehaviorSettings(window_seconds=2.0))


# --- features -------------------------------------------------------------------------------
def test_feature_names_are_unique_and_documented() -> None:
    assert len(set(FEATURE_NAMES)) == N_FEATURES == len(FEATURE_KINDS)
    assert {f"sc_{g}" for g in SYSCALL_GROUPS} | {"sc_other"} <= set(FEATURE_NAMES)
    doc = (__import__("pathlib").Path(__file__).parents[3] / "docs" / "behavior.md").read_text()
    missing = [n for n in FEATURE_NAMES if f"`{n}`" not in doc]
    assert not missing, f"features not documented in docs/behavior.md: {missing}"


def test_window_vector_histogram_and_rates() -> None:
    w = windows(1)[0]
    v = window_vector(w)
    assert len(v) == N_FEATURES
    fractions = sum(v[FEATURE_INDEX[f"sc_{g}"]] for g in SYSCALL_GROUPS) + v[FEATURE_INDEX["sc_other"]]
    assert math.isclose(fractions, 1.0)
    assert v[FEATURE_INDEX["syscall_rate"]] == pytest.approx(sum(w.syscalls.values()) / 2.0)
    assert v[FEATURE_INDEX["exec_rate"]] == pytest.approx(1.0)  # 2 execs in 2 s
    assert v[FEATURE_INDEX["tr_exec_after_fd"]] == 0
    shell = window_vector(with_reverse_shell(w))
    assert shell[FEATURE_INDEX["tr_exec_after_fd"]] == pytest.approx(0.5)  # dup2 -> execve once in 2 s
    assert shell[FEATURE_INDEX["tr_into_sensitive"]] > v[FEATURE_INDEX["tr_into_sensitive"]]


def test_empty_window_is_all_zero_and_transform_is_finite() -> None:
    w = BehaviorWindow(ts=1.0, container=C, start=0.0, end=0.0)
    v = np.asarray([window_vector(w)])
    assert not v.any()
    t = transform(np.array([[float("nan")] * N_FEATURES, [1e30] * N_FEATURES]), 2.0)
    assert np.isfinite(t).all()


# --- the compiled scorers reproduce pyod (a dev dependency; the agent fits with scikit-learn) ----
def test_sklearn_fitted_iforest_equals_pyod_decision_function(train: np.ndarray) -> None:
    from pyod.models.iforest import IForest

    x = transform(train, 2.0)
    probe = np.vstack([x, x[:20] * 1.7 + 0.3, transform(feature_matrix([with_cpu_burner(windows(1)[0])]), 2.0)])
    for trees, samples, seed in ((50, 128, 3), (100, 200, 42)):
        clf = IForest(n_estimators=trees, max_samples=samples, random_state=seed).fit(x)
        ours = IForestScorer.fit(x, trees, samples, seed)  # scikit-learn's IsolationForest, no pyod
        np.testing.assert_allclose(ours.score(probe), clf.decision_function(probe), rtol=0, atol=1e-12)
        # Compiling pyod's own fitted estimator gives the same forest, array for array.
        theirs = IForestScorer.from_sklearn(clf.detector_)
        for name, arr in ours.arrays().items():
            np.testing.assert_array_equal(arr, theirs.arrays()[name], err_msg=name)
        again = IForestScorer(ours.arrays())  # the stored (narrowed) arrays score the same
        np.testing.assert_allclose(again.score(probe), clf.decision_function(probe), atol=1e-6)
    other_seed = IForestScorer.fit(x, 50, 128, 4)  # the comparison can fail: another seed differs
    assert not np.allclose(other_seed.score(probe), IForest(50, 128, random_state=3).fit(x).decision_function(probe))


def test_deviation_model_scores_as_pyod_iforest(train: np.ndarray, iforest: DeviationModel) -> None:
    from pyod.models.iforest import IForest

    s = BehaviorSettings(window_seconds=2.0)
    x = transform(train, iforest.ref_seconds)
    samples = min(s.iforest_max_samples, len(x))
    clf = IForest(n_estimators=s.iforest_trees, max_samples=samples, random_state=s.seed).fit(x)
    np.testing.assert_allclose(iforest.scores_only(train), clf.decision_function(x), rtol=0, atol=1e-6)


def test_ecod_scorer_matches_pyod_on_single_rows(train: np.ndarray) -> None:
    from pyod.models.ecod import ECOD

    x = transform(train, 2.0)
    clf = ECOD().fit(x)
    scorer = EcodScorer.fit(x)
    for row in (x[3], x[50] * 1.2, x[7] + 2.0):
        ours = float(scorer.score(row[None, :])[0])
        theirs = float(clf.decision_function(row[None, :])[0])
        assert ours == pytest.approx(theirs, rel=0.05), (ours, theirs)


def test_a_base_install_fits_both_detectors_without_pyod() -> None:
    # pyod and its JIT are optional extras: fitting must not need them (None marks a module as
    # not importable, as in a venv without the extra).
    code = f"""
import sys
for name in ("pyod", "numba", "llvmlite", "matplotlib"):
    sys.modules[name] = None
sys.path.insert(0, {str(REPO / "tests" / "unit" / "behavior")!r})
import random
from behavior_synth import container, normal_window
from agent.behavior.features import feature_matrix
from agent.behavior.model import DeviationModel
from agent.settings.behavior import BehaviorSettings
rng = random.Random(1)
raw = feature_matrix([normal_window(rng, 1000 + 2 * i, container(1)) for i in range(60)])
for algorithm in ("iforest", "ecod"):
    m = DeviationModel.fit(raw, BehaviorSettings(window_seconds=2.0, algorithm=algorithm))
    print(algorithm, DeviationModel.from_bytes(m.to_bytes()).scorer.__class__.__name__)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["iforest", "IForestScorer", "ecod", "EcodScorer"]


@pytest.mark.parametrize("scorer", [EcodScorer.fit, lambda x: IForestScorer.fit(x, 10, 16, 0)])
def test_fit_refuses_non_finite_rows_as_pyod_does(train: np.ndarray, scorer) -> None:  # type: ignore[no-untyped-def]
    x = transform(train, 2.0)
    x[4, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        scorer(x)


# --- thresholds, deviation and explanations ----------------------------------------------------
def test_threshold_is_the_training_quantile(iforest: DeviationModel, train: np.ndarray) -> None:
    scores = iforest.scores_only(train)
    assert iforest.threshold == pytest.approx(float(np.quantile(scores, 0.995)))
    assert (scores > iforest.threshold).mean() <= 0.01
    loose = DeviationModel.fit(train, BehaviorSettings(window_seconds=2.0, quantile=0.9))
    assert loose.threshold < iforest.threshold


def test_normal_windows_stay_clean(iforest: DeviationModel) -> None:
    fresh = feature_matrix(windows(300, seed=99, start=9000.0))
    results = iforest.score_raw(fresh)
    assert sum(r.deviating for r in results) <= 3  # ~1% at most at the 0.995 quantile
    assert all(not r.novelty for r in results)


@pytest.mark.parametrize(
    ("attack", "expect"),
    [
        (with_cpu_burner, "cpu_cores"),
        (with_shadow_read, "sensitive_open_rate"),
        (with_reverse_shell, "tr_exec_after_fd"),
    ],
)
def test_deviating_window_names_the_features_that_explain_it(iforest: DeviationModel, attack, expect) -> None:  # type: ignore[no-untyped-def]
    w = attack(windows(1, seed=7, start=5000.0)[0])
    (res,) = iforest.score_raw(feature_matrix([w]))
    assert res.deviating
    names = [c.name for c in res.top]
    assert expect in names[:3], names
    c = next(c for c in res.top if c.name == expect)
    assert c.value > c.high and c.z > 0  # value above its normal range
    d = res.to_dict()
    assert d["top_features"][0]["normal_range"][0] <= d["top_features"][0]["normal_range"][1]
    assert d["threshold"] == pytest.approx(iforest.threshold, rel=1e-5)


def test_score_above_threshold_without_a_named_feature_is_not_reported(train: np.ndarray) -> None:
    strict = DeviationModel.fit(train, BehaviorSettings(window_seconds=2.0, quantile=0.6, explain_min_z=50))
    results = strict.score_raw(train[:100])
    assert any(r.score > r.threshold for r in results)
    assert not any(r.deviating for r in results)


def test_ecod_model_detects_and_explains(train: np.ndarray) -> None:
    m = DeviationModel.fit(train, BehaviorSettings(window_seconds=2.0, algorithm="ecod"))
    (res,) = m.score_raw(feature_matrix([with_cpu_burner(windows(1, seed=3)[0])]))
    assert res.deviating and res.top[0].name in ("cpu_cores", "processes")
    clean = m.score_raw(feature_matrix(windows(50, seed=11)))
    assert sum(r.deviating for r in clean) <= 2


# --- modes ------------------------------------------------------------------------------------
def test_two_behaviour_modes_and_a_mode_deviation() -> None:
    rng = random.Random(5)
    busy = [normal_window(rng, 10.0 * i, C) for i in range(60)]
    idle = []
    for i in range(60):
        w = normal_window(rng, 1000 + 10.0 * i, C)
        idle.append(
            w.__class__(**{**{f: getattr(w, f) for f in w.__dataclass_fields__}, "bytes_out": 10, "bytes_in": 5,
                            "syscalls": {k: max(1, v // 10) for k, v in w.syscalls.items()}, "cpu_seconds": 0.0})
        )  # fmt: skip
    x = feature_matrix(busy + idle)
    m = DeviationModel.fit(x, BehaviorSettings(window_seconds=2.0))
    assert m.modes >= 2
    busy_modes = {r.mode for r in m.score_raw(feature_matrix(busy))}
    idle_modes = {r.mode for r in m.score_raw(feature_matrix(idle))}
    assert not busy_modes & idle_modes  # the two behaviours never share a mode
    (far,) = m.score_raw(feature_matrix([with_cpu_burner(with_shadow_read(busy[0]))]))
    assert far.mode_deviation and far.mode_distance > far.mode_radius
    db = DeviationModel.fit(x, BehaviorSettings(window_seconds=2.0, modes={"algorithm": "dbscan", "dbscan_eps": 3.0}))
    assert db.modes >= 2


# --- persistence ------------------------------------------------------------------------------
def test_model_blob_round_trip_scores_identically(iforest: DeviationModel) -> None:
    blob = iforest.to_bytes()
    assert len(blob) < 2 * 1024 * 1024
    again = DeviationModel.from_bytes(blob)
    probe = feature_matrix([*windows(20, seed=4), with_cpu_burner(windows(1)[0])])
    np.testing.assert_allclose(again.scores_only(probe), iforest.scores_only(probe), atol=1e-6)
    assert [r.deviating for r in again.score_raw(probe)] == [r.deviating for r in iforest.score_raw(probe)]
    assert again.modes == iforest.modes and again.threshold == iforest.threshold


def test_unusable_blobs_raise_model_error(iforest: DeviationModel) -> None:
    with pytest.raises(ModelError):
        DeviationModel.from_bytes(b"not a model")
    blob = iforest.to_bytes()
    with pytest.raises(ModelError):
        DeviationModel.from_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelError, match="8 windows"):
        DeviationModel.fit(np.zeros((3, N_FEATURES)), BehaviorSettings())
    with pytest.raises(ModelError, match="feature rows"):
        DeviationModel.fit(np.zeros((30, 4)), BehaviorSettings())
