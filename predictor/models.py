"""The six candidate regressors of thesis §4.3, the prediction targets
(Appendix B, plus a work model) and the fast predict path used at request time.

Targets, per DAG (function identity = stage + index within the stage):

* ``input_size`` (ML1):      (dag_input_size, stage, index) -> input_size
* ``cpu`` (ML2-CPU):         (input_size, stage, index)     -> peak_cpu
* ``memory`` (ML2-mem):      (input_size, stage, index)     -> peak_memory_mb
* ``duration`` (ML2-dur.):   (input_size, stage, index)     -> duration_ms

Profiling runs every function at the maximum allocation, so ``duration`` is the
duration at the maximum and duration x peak CPU the function's work in
CPU-seconds (:mod:`predictor.work_division`). The duration model is optional:
models saved before it existed still load and plan (without work). Saved with the
models: each parallel function's scaling curve (:mod:`predictor.scaling`), which
says what its time is at other allocations.

All models are seeded. XGBoost is not a dependency: scikit-learn's
GradientBoostingRegressor (the same gradient-boosted trees, without XGBoost's
regularised objective and histogram tricks) stands in for it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR
from sklearn.tree import DecisionTreeRegressor

from predictor.allocation import AllowedValues
from predictor.dataset import ProfileRow
from predictor.scaling import ScalingCurve

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    features: tuple[str, ...]
    label: str
    title: str


TARGETS: dict[str, Target] = {
    "input_size": Target("input_size", ("dag_input_size", "stage", "index"), "input_size", "ML1 input size"),
    "cpu": Target("cpu", ("input_size", "stage", "index"), "peak_cpu", "ML2 CPU"),
    "memory": Target("memory", ("input_size", "stage", "index"), "peak_memory_mb", "ML2 memory"),
    "duration": Target("duration", ("input_size", "stage", "index"), "duration_ms", "ML2 duration"),
}
# Every saved version has these; the others may be missing from older versions.
REQUIRED_TARGETS: tuple[str, ...] = ("input_size", "cpu", "memory")
# ML2 without the function identity: tells whether stage + index help.
WITHOUT_IDENTITY: tuple[str, ...] = ("input_size",)

MODEL_NAMES: tuple[str, ...] = (
    "RandomForest",
    "DecisionTree",
    "GradientBoosting",
    "SVR",
    "NeuralNetwork",
    "LinearRegression",
)
# 50 trees, not sklearn's 100: the forest is predicted tree by tree at request
# time, and 50 keep it well under the 2 ms per-model budget with the same accuracy here.
FOREST_TREES = 50


def make_model(name: str, seed: int = 0) -> Any:
    """A fresh, seeded, unfitted candidate."""
    if name == "RandomForest":
        return RandomForestRegressor(n_estimators=FOREST_TREES, random_state=seed)
    if name == "DecisionTree":
        return DecisionTreeRegressor(random_state=seed)
    if name == "GradientBoosting":
        return GradientBoostingRegressor(random_state=seed)  # 100 stages, sklearn default
    if name == "SVR":
        # Features and target scaled: raw byte counts and MB would swamp the RBF kernel and epsilon.
        return TransformedTargetRegressor(
            make_pipeline(StandardScaler(), SVR()), transformer=StandardScaler()
        )
    if name == "NeuralNetwork":
        # 4 layers: three hidden layers and the output layer.
        mlp = MLPRegressor(hidden_layer_sizes=(64, 64, 32), max_iter=1000, random_state=seed)
        return TransformedTargetRegressor(make_pipeline(StandardScaler(), mlp), transformer=StandardScaler())
    if name == "LinearRegression":
        return LinearRegression()
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")


def matrix(rows: Sequence[ProfileRow], columns: Sequence[str]) -> FloatArray:
    """Feature matrix (or a label column when ``columns`` has one name) as float64."""
    return np.array([[float(getattr(r, c)) for c in columns] for r in rows], dtype=np.float64).reshape(
        len(rows), len(columns)
    )


def labels(rows: Sequence[ProfileRow], target: Target) -> FloatArray:
    return matrix(rows, (target.label,))[:, 0]


PredictFn = Callable[[FloatArray], FloatArray]


def _direct_path(model: Any) -> PredictFn | None:
    """Models evaluated straight on their fitted attributes, skipping sklearn's
    per-call input checks (~0.1-0.5 ms each, more than the arithmetic).

    ``RandomForestRegressor.predict`` also dispatches its trees through joblib:
    ~10 ms for a handful of rows, against a fraction of a millisecond for summing
    the trees' ``tree_.predict``. A linear model is ``X @ coef_ + intercept_``.
    """
    if isinstance(model, RandomForestRegressor):
        trees = [e.tree_ for e in model.estimators_]

        def forest(X: FloatArray) -> FloatArray:
            x32 = np.ascontiguousarray(X, dtype=np.float32)
            total = np.zeros(len(X), dtype=np.float64)
            for tree in trees:
                total += tree.predict(x32).reshape(len(X))
            return total / len(trees)

        single = getattr(model, "n_outputs_", 1) == 1 and all(t.value.shape[1:] == (1, 1) for t in trees)
        return _StepForest(trees, forest) if single else forest
    if isinstance(model, LinearRegression) and np.ndim(model.coef_) == 1:
        coef, intercept = np.asarray(model.coef_, dtype=np.float64), float(model.intercept_)

        def linear(X: FloatArray) -> FloatArray:
            out: FloatArray = X @ coef + intercept
            return out

        return linear
    if isinstance(model, DecisionTreeRegressor):
        tree = model.tree_

        def single(X: FloatArray) -> FloatArray:
            out: FloatArray = tree.predict(np.ascontiguousarray(X, dtype=np.float32)).reshape(len(X))
            return out.astype(np.float64)

        one_output = getattr(model, "n_outputs_", 1) == 1 and tree.value.shape[1:] == (1, 1)
        return _StepForest([tree], single, mean=False) if one_output else single
    return None


STEP_KEYS = 1024  # (stage, index) identities a step forest keeps tables for
STEP_FEW_ROWS = 16  # up to this many rows a Python loop over them beats numpy's fixed costs


class _StepForest:
    """A single-output forest (or one tree) over rows (size, identity...): for one
    identity (a function's stage and index) every tree is a step function of the
    size, so the forest is one too. Its steps are the forest's thresholds on the
    size; its value on each step is worked out once per identity, tree by tree as
    the loop adds them, and a row is then one binary search. The numbers of the
    tree-by-tree loop, exactly: a row's float32 size is below a threshold t (float64)
    exactly when fewer thresholds are below it than below t, and identity features
    compare as sklearn's C does (float32 against float64). Rows the tables cannot
    answer (a non-finite value, too many identities) go through the loop.

    ``mean``: a forest averages its trees (0 + v1 + v2 ... then / n, as the loop
    does); a lone tree's value is its leaf's, as ``tree_.predict`` gives it."""

    def __init__(self, trees: Sequence[Any], loop: PredictFn, *, mean: bool = True) -> None:
        self.trees, self.loop, self.mean = trees, loop, mean
        self.bounds = np.unique(np.concatenate([t.threshold[t.feature == 0] for t in trees]))
        self._bounds = self.bounds.tolist()
        # identity -> the value on each step, as an array (many rows) and a list (a few)
        self.tables: dict[tuple[float, ...], tuple[FloatArray, list[float]]] = {}

    def _table(self, identity: tuple[float, ...]) -> tuple[FloatArray, list[float]] | None:
        """The value on each step (j = how many thresholds lie below the size); None
        once STEP_KEYS identities have one."""
        known = self.tables.get(identity)
        if known is not None or len(self.tables) >= STEP_KEYS:
            return known
        steps = np.arange(len(self.bounds) + 1)
        values = np.asarray((*identity, 0.0))  # feature f >= 1 is identity[f - 1]; the 0.0 for leaves
        total = np.zeros(len(steps), dtype=np.float64)
        for tree in self.trees:
            left_of, right_of = tree.children_left, tree.children_right
            column = np.where(tree.feature >= 1, tree.feature - 1, len(identity))
            rank = np.searchsorted(self.bounds, tree.threshold)  # a size threshold's own j
            node = np.zeros(len(steps), dtype=np.intp)
            for _ in range(int(tree.max_depth)):
                by_size = steps <= rank[node]  # size <= t  <=>  j <= rank(t)
                by_identity = values[column[node]] <= tree.threshold[node]
                left = np.where(tree.feature[node] == 0, by_size, by_identity)
                child = np.where(left, left_of[node], right_of[node])
                node = np.where(left_of[node] >= 0, child, node)  # a leaf stays
            if not self.mean:
                total = tree.value[node, 0, 0].astype(np.float64)
                break
            total += tree.value[node, 0, 0]
        out: FloatArray = total / len(self.trees) if self.mean else total
        self.tables[identity] = (out, out.tolist())
        return self.tables[identity]

    def __call__(self, X: FloatArray) -> FloatArray:
        x32 = np.ascontiguousarray(X, dtype=np.float32)
        if len(x32) == 0 or x32.ndim != 2 or x32.shape[1] < 2:
            return self.loop(X)
        if len(x32) <= STEP_FEW_ROWS:
            return self._few(X, x32.tolist())  # float32 values, exactly
        if not np.isfinite(x32).all():
            return self.loop(X)
        identities = x32[:, 1:]
        steps = np.searchsorted(self.bounds, x32[:, 0].astype(np.float64), side="left")
        out = np.empty(len(x32), dtype=np.float64)
        for identity in set(map(tuple, identities.tolist())):
            table = self._table(identity)
            if table is None:
                return self.loop(X)
            rows = (identities == np.asarray(identity, dtype=np.float32)).all(axis=1)
            out[rows] = table[0][steps[rows]]
        return out

    def _few(self, X: FloatArray, rows: list[list[float]]) -> FloatArray:
        out: list[float] = []
        for row in rows:
            if not all(map(math.isfinite, row)):
                return self.loop(X)
            table = self._table(tuple(row[1:]))
            if table is None:
                return self.loop(X)
            out.append(table[1][bisect.bisect_left(self._bounds, row[0])])  # = searchsorted "left"
        return np.asarray(out, dtype=np.float64)


def compile_predict(model: Any) -> PredictFn:
    """The fastest predict function that gives ``model.predict``'s numbers.

    The shortcuts rely on scikit-learn's fitted attributes (``tree_``, ``coef_``);
    each is checked against ``model.predict`` once here and dropped if it
    disagrees or fails.
    """
    fast = _direct_path(model)
    if fast is not None:
        n = int(getattr(model, "n_features_in_", 3))
        probe: FloatArray = np.outer([0.0, 1.0, 3.0, 1e3, 1e6, 3e7], np.ones(n)) + np.arange(
            n, dtype=np.float64
        )
        try:
            if np.allclose(fast(probe), model.predict(probe), rtol=1e-9, atol=1e-9):
                if isinstance(fast, _StepForest):
                    fast.tables.clear()  # the probe's identities are no function's
                return fast
        except (AttributeError, TypeError, ValueError):
            pass

    def public(X: FloatArray) -> FloatArray:
        return np.asarray(model.predict(X), dtype=np.float64)

    return public


def fast_predict(model: Any, X: FloatArray) -> FloatArray:
    """One-off ``model.predict(X)`` through :func:`compile_predict` (compile once
    and reuse the function on hot paths)."""
    return compile_predict(model)(X)


@dataclass(frozen=True, slots=True)
class TrainedModels:
    """The chosen, fitted models of one DAG (one per target; ``duration`` may be
    missing from older versions), and what they were chosen on."""

    namespace: str
    dag: str
    models: Mapping[str, Any]  # target name -> fitted estimator
    model_names: Mapping[str, str]  # target name -> candidate name
    features: Mapping[str, tuple[str, ...]]
    allowed: AllowedValues
    metrics: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    version: int | None = None  # set once saved
    created: str = ""
    # Per parallel function (stage, index): its fitted scaling curve, if any, and why
    # (fitted or not; predictor.scaling). Versions saved before curves have none.
    scaling: Mapping[tuple[int, int], ScalingCurve] = field(default_factory=dict)
    scaling_reasons: Mapping[tuple[int, int], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = set(REQUIRED_TARGETS) - set(self.models)
        if missing:
            raise ValueError(f"trained models miss targets {sorted(missing)}")
