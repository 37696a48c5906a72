# SPDX-License-Identifier: Apache-2.0
"""The deviation model's compiled detectors: fitted with scikit-learn, scored with numpy only.

``IForestScorer.fit`` grows scikit-learn's ``IsolationForest`` with the parameters pyod's
``IForest`` passes it (pyod only wraps that estimator), then holds the trees as flat numpy arrays
and walks every tree at once; its scores equal pyod's ``IForest.decision_function`` on the same
data and seed (a unit test fits both). ``EcodScorer`` keeps the sorted training columns and
scores ECOD's empirical tail probabilities as pyod's ``ECOD`` does. pyod is not needed (it is an
optional extra that only the tests use), and scoring imports neither it nor scikit-learn, so the
daemon scores without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.behavior.features import N_FEATURES

if TYPE_CHECKING:
    import numpy.typing as npt

    Array = npt.NDArray[Any]

# ECOD: relative distance under which a value ties with a training value (floating-point noise).
TIE_RTOL = 1e-9
_CHUNK = 256  # rows per traversal chunk: keeps the (rows x trees) index arrays in cache


class IForestScorer:
    """A fitted isolation forest as flat arrays; ``score`` equals pyod's ``IForest.decision_function``."""

    def __init__(self, arrays: dict[str, Array]) -> None:
        import numpy as np

        self.feat = arrays["if_feat"].astype(np.int32)
        self.thr = arrays["if_thr"].astype(np.float64)
        self.left = arrays["if_left"].astype(np.int32)
        self.right = arrays["if_right"].astype(np.int32)
        self.val = arrays["if_val"].astype(np.float64)
        t, m, depth = (int(v) for v in arrays["if_shape"])
        self.trees, self.max_nodes, self.depth = t, m, depth
        self.denominator = float(arrays["if_consts"][0])
        self.offset = float(arrays["if_consts"][1])
        self._base = np.arange(t, dtype=np.int32) * m
        self._child = np.empty(2 * t * m, dtype=np.int32)
        self._child[0::2] = self.left
        self._child[1::2] = self.right

    @classmethod
    def fit(cls, x: Array, trees: int, max_samples: int, seed: int) -> IForestScorer:
        """Grow an isolation forest on rows ``x`` (model space) and compile it."""
        from sklearn.ensemble import IsolationForest
        from sklearn.utils import check_array

        # The arguments pyod's IForest passes (its defaults): contamination=0.1 sets ``offset_``,
        # so scores keep pyod's scale; n_jobs=1, no bootstrap, every feature per tree.
        forest = IsolationForest(
            n_estimators=trees,
            max_samples=max_samples,
            contamination=0.1,
            max_features=1.0,
            bootstrap=False,
            n_jobs=1,
            random_state=seed,
        )
        forest.fit(check_array(x))
        return cls.from_sklearn(forest)

    @classmethod
    def from_sklearn(cls, sk: Any) -> IForestScorer:
        """Compile a fitted ``sklearn.ensemble.IsolationForest`` (pyod's ``IForest.detector_``)."""
        import numpy as np
        from sklearn.ensemble._iforest import _average_path_length

        trees = len(sk.estimators_)
        m = max(e.tree_.node_count for e in sk.estimators_)
        feat = np.zeros((trees, m), np.int32)
        thr = np.full((trees, m), np.inf)
        left = np.zeros((trees, m), np.int32)
        right = np.zeros((trees, m), np.int32)
        val = np.zeros((trees, m), np.float64)
        for t, (est, features) in enumerate(zip(sk.estimators_, sk.estimators_features_, strict=True)):
            tr = est.tree_
            n = tr.node_count
            leaf = tr.children_left == -1
            nodes = np.arange(n)
            # Trees are fitted on a permutation of the columns (sklearn bagging draws
            # ``estimators_features_`` even with max_features=1.0): map back to our columns.
            feat[t, :n] = np.where(leaf, 0, np.asarray(features)[np.maximum(tr.feature, 0)])
            thr[t, :n] = np.where(leaf, np.inf, tr.threshold)
            # Leaves point at themselves, so every row can take exactly ``depth`` steps.
            left[t, :n] = np.where(leaf, nodes, tr.children_left) + t * m
            right[t, :n] = np.where(leaf, nodes, tr.children_right) + t * m
            # Same per-leaf path length sklearn's _compute_score_samples adds up.
            val[t, :n] = sk._decision_path_lengths[t] + sk._average_path_length_per_tree[t] - 1.0
        depth = max(int(e.tree_.max_depth) for e in sk.estimators_)
        denominator = trees * float(_average_path_length([sk._max_samples])[0])
        return cls(
            {
                "if_feat": feat.ravel(),
                "if_thr": thr.ravel(),
                "if_left": left.ravel(),
                "if_right": right.ravel(),
                "if_val": val.ravel(),
                "if_shape": np.array([trees, m, depth], np.int64),
                "if_consts": np.array([denominator, float(sk.offset_)]),
            }
        )

    def arrays(self) -> dict[str, Array]:
        import numpy as np

        return {
            "if_feat": self.feat.astype(np.int16 if N_FEATURES < 32767 else np.int32),
            "if_thr": self.thr,
            "if_left": self.left,
            "if_right": self.right,
            "if_val": self.val.astype(np.float32),
            "if_shape": np.array([self.trees, self.max_nodes, self.depth], np.int64),
            "if_consts": np.array([self.denominator, self.offset]),
        }

    def score(self, x: Array) -> Array:
        """Anomaly scores of rows ``x`` (model space); higher = more anomalous."""
        import numpy as np

        # sklearn trees compare float32 inputs against float64 thresholds (tree.apply casts X
        # to float32): cast the same way or scores drift at split boundaries.
        xq = np.asarray(x, dtype=np.float32).astype(np.float64)
        n, nf = xq.shape
        depths = np.empty(n)
        child = self._child
        for s in range(0, n, _CHUNK):
            xf = xq[s : s + _CHUNK].ravel()
            b = len(xf) // nf
            idx = np.tile(self._base, (b, 1))
            rows = (np.arange(b, dtype=np.int32) * nf)[:, None]
            for _ in range(self.depth):
                f = self.feat.take(idx)
                f += rows
                # child[2 * node + 1] is the right child: one gather instead of two and a where.
                go_right = (xf.take(f) > self.thr.take(idx)).view(np.int8)
                idx <<= 1
                idx += go_right
                idx = child.take(idx)
            depths[s : s + b] = self.val.take(idx).sum(axis=1)
        # pyod inverts sklearn's decision_function: -(score_samples - offset_), with
        # score_samples = -2^(-E[h(x)] / c(max_samples)).
        result: Array = np.power(2.0, -depths / self.denominator) + self.offset
        return result


class EcodScorer:
    """ECOD (empirical cumulative distribution outlier detection) against the training columns.

    Per feature, left and right tail probabilities of a value among the training values (plus
    the value itself, as pyod does when it concatenates one row to ``X_train``); the skewness
    sign of each training column picks the tail; the score is the sum of -log tail probabilities.
    """

    def __init__(self, arrays: dict[str, Array]) -> None:
        import numpy as np

        self.sorted = np.asarray(arrays["ecod_sorted"], dtype=np.float64)
        self.skew_sign = np.asarray(arrays["ecod_skew"], dtype=np.float64)

    @classmethod
    def fit(cls, x: Array) -> EcodScorer:
        """Validate rows ``x`` (model space) as pyod's ``ECOD.fit`` does, and keep them."""
        from sklearn.utils import check_array

        return cls.from_training(check_array(x))

    @classmethod
    def from_training(cls, x: Array) -> EcodScorer:
        import numpy as np
        from scipy.stats import skew

        with np.errstate(all="ignore"):
            sk = np.nan_to_num(np.sign(skew(x, axis=0)))
        return cls({"ecod_sorted": np.sort(x, axis=0), "ecod_skew": sk})

    def arrays(self) -> dict[str, Array]:
        return {"ecod_sorted": self.sorted, "ecod_skew": self.skew_sign}

    def tails(self, x: Array) -> Array:
        """Per-feature outlyingness -log(tail probability), shape (rows, features)."""
        import numpy as np

        n = self.sorted.shape[0]
        le = np.empty(x.shape)
        ge = np.empty(x.shape)
        # Values within TIE_RTOL of a training value count as equal to it: most features are
        # transformed counts (log1p of a small integer), so a probe equals training values
        # exactly, and the last bit of log1p differs between numpy builds. Without the margin a
        # baseline stored by one build and scored by another moved a window's score by +24.
        slack = TIE_RTOL * np.maximum(np.abs(x), 1.0)
        for j in range(x.shape[1]):
            col = self.sorted[:, j]
            le[:, j] = np.searchsorted(col, x[:, j] + slack[:, j], side="right")
            ge[:, j] = n - np.searchsorted(col, x[:, j] - slack[:, j], side="left")
        u_l = -np.log((le + 1.0) / (n + 1.0))
        u_r = -np.log((ge + 1.0) / (n + 1.0))
        u_skew = u_l * -1 * np.sign(self.skew_sign - 1) + u_r * np.sign(self.skew_sign + 1)
        out: Array = np.maximum(np.maximum(u_l, u_r), u_skew)
        return out

    def score(self, x: Array) -> Array:
        out: Array = self.tails(x).sum(axis=1)
        return out
