"""The six candidates, the comparison and the choice rule, on clean synthetic data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from gleaner.errors import GleanerError
from predictor.compare import (
    ModelScore,
    TrainingError,
    choose,
    compare,
    relative_error,
    split,
    training_rows,
)
from predictor.models import MODEL_NAMES, TARGETS, compile_predict, labels, make_model, matrix
from tests.unit.predictor import OURS, synthetic_comparison, synthetic_rows


def test_every_candidate_is_scored_on_every_target() -> None:
    c = synthetic_comparison()
    assert set(c.results) == set(TARGETS)
    for res in c.results.values():
        assert [s.model for s in res.scores] == list(MODEL_NAMES) and not res.failed
        for s in res.scores:
            assert len(s.errors) == c.n_test and s.mean >= 0 and s.max >= s.p90 >= s.median
            assert s.latency_p99_ms >= s.latency_p50_ms > 0
            assert (s.accuracy is None) == (res.target.name in ("input_size", "duration"))
            assert s.relative >= 0  # every target has positive labels here
    assert c.n_train + c.n_test == 150 * 4 and c.batch_width == 4


def test_chosen_models_are_accurate_on_clean_data() -> None:
    c = synthetic_comparison()
    ml1 = c.results["input_size"].score(c.results["input_size"].chosen)
    assert ml1.r2 > 0.9
    for target in ("cpu", "memory"):
        s = c.results[target].score(c.results[target].chosen)
        assert s.r2 > 0.9 and s.accuracy is not None and s.accuracy > 0.9, (target, s)
        accuracy = c.pipeline[target].accuracy
        assert accuracy is not None and accuracy > 0.9  # ML2 fed by ML1, as at request time
    assert c.results["input_size"].chosen != "LinearRegression"  # it cannot model per-function shares


def test_the_work_model_is_trained_and_scored_without_a_grid() -> None:
    c = synthetic_comparison()
    s = c.results["duration"].score(c.results["duration"].chosen)
    assert c.results["duration"].target.label == "duration_ms"
    assert s.r2 > 0.9 and s.accuracy is None and s.relative < 0.1, s
    pipeline = c.pipeline["duration"]
    assert pipeline.accuracy is None and pipeline.relative < 0.1  # fed by ML1's predicted sizes
    metrics = c.metrics()["duration"]
    assert metrics["accuracy"] is None and metrics["relative_error"] == s.relative
    assert metrics["pipeline_relative_error"] == pipeline.relative
    assert set(c.to_trained("guest").models) == set(TARGETS)


def test_function_identity_is_checked_for_ml2() -> None:
    c = synthetic_comparison()
    assert c.results["input_size"].identity is None
    for target in ("cpu", "memory", "duration"):
        ident = c.results[target].identity
        assert ident is not None and ident.model == c.results[target].chosen
        assert ident.mae_with > 0 and ident.mae_without > 0
    assert set(c.metrics()["cpu"]) >= {"model", "why", "mae", "accuracy", "mae_without_identity"}


def test_split_keeps_requests_whole_and_is_seeded() -> None:
    rows = [r for r in synthetic_rows(50) if r.parallel]
    train, test = split(rows, seed=3)
    assert {r.request_id for r in train}.isdisjoint({r.request_id for r in test})
    assert len({r.request_id for r in test}) == 10
    assert split(rows, seed=3) == (train, test)


def score(model: str, mean: float, p99: float) -> ModelScore:
    return ModelScore(model, "cpu", np.zeros(1), mean, mean, mean, mean, 1.0, 1.0, p99 / 2, p99, 0.1)


def test_choice_prefers_accuracy_within_the_latency_budget() -> None:
    scores = [score("RandomForest", 0.01, 3.0), score("DecisionTree", 0.02, 0.1), score("SVR", 0.5, 0.5)]
    name, why = choose(scores, 2.0)
    assert name == "DecisionTree"
    assert "lowest mean absolute error" in why and "too slow: RandomForest (3.00 ms)" in why
    assert choose(scores, 5.0)[0] == "RandomForest"


def test_choice_falls_back_to_the_fastest() -> None:
    scores = [score("RandomForest", 0.01, 3.0), score("SVR", 0.5, 2.5)]
    name, why = choose(scores, 2.0)
    assert name == "SVR" and "chose the fastest" in why


def test_nan_errors_never_win() -> None:
    scores = [score("NeuralNetwork", float("nan"), 0.1), score("DecisionTree", 0.3, 0.1)]
    assert choose(scores, 2.0)[0] == "DecisionTree"


def test_relative_error_skips_zero_actuals() -> None:
    assert relative_error(np.array([2.0, 5.0, 1.0]), np.array([1.0, 0.0, 2.0])) == pytest.approx(0.75)
    assert np.isnan(relative_error(np.array([1.0]), np.array([0.0])))


def test_compiled_predict_matches_sklearn() -> None:
    rows = [r for r in synthetic_rows(30) if r.parallel]
    target = TARGETS["cpu"]
    X, y = matrix(rows, target.features), labels(rows, target)
    for name in MODEL_NAMES:
        model = make_model(name, seed=1)
        model.fit(X, y)
        np.testing.assert_allclose(compile_predict(model)(X[:4]), model.predict(X[:4]), rtol=1e-9)


def test_candidates() -> None:
    nn = make_model("NeuralNetwork")
    assert len(nn.regressor.steps[-1][1].hidden_layer_sizes) == 3  # + the output layer = 4 layers
    assert make_model("RandomForest", seed=7).random_state == 7
    with pytest.raises(ValueError, match="unknown model"):
        make_model("XGBoost")


def test_too_few_rows() -> None:
    rows = synthetic_rows(2)
    with pytest.raises(TrainingError, match="at least 10 are needed") as err:
        compare(rows[:8], OURS)
    assert isinstance(err.value, GleanerError)
    with pytest.raises(TrainingError, match="8 successful parallel-stage rows"):
        training_rows(rows + [replace(r, parallel=False) for r in synthetic_rows(2, seed=1)])


def test_no_parallel_rows() -> None:
    rows = [replace(r, parallel=False) for r in synthetic_rows(5)]
    with pytest.raises(TrainingError, match="no successful rows of a parallel stage"):
        compare(rows, OURS)


def test_one_dag_at_a_time() -> None:
    rows = synthetic_rows(5) + synthetic_rows(5, dag="other")
    with pytest.raises(TrainingError, match="several DAGs"):
        compare(rows, OURS)


def test_failed_rows_do_not_train() -> None:
    rows = synthetic_rows(20)
    rows = [replace(r, success=False) if r.request_id == "req0000" else r for r in rows]
    usable = training_rows(rows)
    assert len(usable) == 19 * 4 and all(r.success and r.parallel for r in usable)


def test_a_cpu_sweeps_lower_allocations_do_not_train_the_models() -> None:
    rows = synthetic_rows(20)
    swept = [replace(r, request_id=f"s{r.request_id}", alloc_cpu=1.0) for r in rows[:12]]
    usable = training_rows(rows + swept)
    assert usable == training_rows(rows) and all(r.alloc_cpu == 2.0 for r in usable)
