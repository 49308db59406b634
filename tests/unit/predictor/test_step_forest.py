"""A forest's request-time path (a step function of the size per function identity)
gives exactly the numbers of summing its trees one by one, on every side of every
threshold, for identities it never saw, and through the loop where its tables stop."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor

from predictor import models
from predictor.models import compile_predict


@functools.cache
def forest() -> RandomForestRegressor:
    rng = np.random.default_rng(1)
    size = rng.uniform(1e5, 3e7, 400)
    stage, index = rng.integers(0, 3, 400), rng.integers(0, 4, 400)
    y = size / 1e4 * (1 + index) + 50 * stage + rng.normal(0, 5, 400)
    return RandomForestRegressor(n_estimators=20, random_state=0).fit(
        np.column_stack([size, stage, index]), y
    )


def tree_by_tree(model: RandomForestRegressor, X: np.ndarray) -> np.ndarray:
    x32 = np.ascontiguousarray(X, dtype=np.float32)
    total = np.zeros(len(X))
    for estimator in model.estimators_:
        total += estimator.tree_.predict(x32).reshape(len(X))
    return total / len(model.estimators_)


def rows(model: object | None = None) -> np.ndarray:
    """Sizes on, just below and just above every size threshold, at seen and unseen identities."""
    step = compile_predict(model if model is not None else forest())
    assert isinstance(step, models._StepForest)
    b32 = step.bounds.astype(np.float32)
    sizes = np.concatenate(
        [
            step.bounds,
            np.nextafter(b32, np.float32(np.inf)),
            np.nextafter(b32, np.float32(-np.inf)),
            [0.0, -7.0, 1e12],
        ]
    )
    identities = [(0, 0), (1, 2), (2, 3), (0.5, 1), (-1, 9), (1, 1.5)]
    return np.array([[s, a, b] for a, b in identities for s in sizes], dtype=np.float64)


def test_the_step_forest_is_the_tree_by_tree_sum_exactly():
    X = rows()
    step = compile_predict(forest())
    assert np.array_equal(step(X), tree_by_tree(forest(), X))
    for start in range(0, len(X), 7):  # a batch's few rows (the Python path), any mix of identities
        assert np.array_equal(step(X[start : start + 7]), tree_by_tree(forest(), X[start : start + 7]))
    assert np.array_equal(step(X[:0]), np.zeros(0))


@pytest.mark.parametrize("odd", [math.nan, math.inf, 1e300])
def test_rows_the_tables_cannot_answer_go_through_the_loop(odd):
    X = rows()[:5].copy()
    X[2, 0] = odd
    with np.errstate(over="ignore"):
        assert np.array_equal(compile_predict(forest())(X), tree_by_tree(forest(), X), equal_nan=True)


def test_past_its_identity_budget_it_is_the_loop(monkeypatch):
    monkeypatch.setattr(models, "STEP_KEYS", 2)
    step = compile_predict(forest())
    X = rows()
    assert np.array_equal(step(X), tree_by_tree(forest(), X))
    assert isinstance(step, models._StepForest) and len(step.tables) <= 2


def test_a_lone_tree_is_its_own_tree_predict_exactly():
    from sklearn.tree import DecisionTreeRegressor

    rng = np.random.default_rng(2)
    X = rng.uniform(0, 3e7, (300, 3))
    X[:, 1:] = rng.integers(0, 4, (300, 2))
    single = DecisionTreeRegressor(random_state=0).fit(X, X[:, 0] / 1e4 - 3 * X[:, 2])
    step = compile_predict(single)
    assert isinstance(step, models._StepForest) and not step.mean
    probe = rows(single)
    expected = single.tree_.predict(np.ascontiguousarray(probe, dtype=np.float32)).reshape(len(probe))
    assert np.array_equal(step(probe), expected)
    assert np.array_equal(step(probe[:5]), expected[:5])  # a few rows: the Python path


def test_a_compiled_forest_keeps_no_table_for_the_probe_rows():
    step = compile_predict(forest())
    assert isinstance(step, models._StepForest) and step.tables == {}
    step(rows()[:3])
    assert list(step.tables) == [(0.0, 0.0)]
