"""Batched inference: one predict call per model for a batch of requests, and the
same numbers for every request as predicting it alone."""

from __future__ import annotations

import math

import numpy as np

from predictor.inference import Prediction, Predictor
from predictor.models import TrainedModels
from tests.unit.predictor import synthetic_comparison

SLOTS = [(1, 0), (1, 1), (1, 2), (1, 3)]


def trained() -> TrainedModels:
    return synthetic_comparison().to_trained("guest")


class Counting:
    """Wraps a fitted model and counts its predict calls (the fast paths are bypassed)."""

    def __init__(self, model: object) -> None:
        self.model = model
        self.calls = 0

    def predict(self, X: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.asarray(self.model.predict(X), dtype=np.float64)  # type: ignore[attr-defined]


def same(a: list[Prediction], b: list[Prediction]) -> bool:
    def key(p: Prediction) -> tuple[float, ...]:
        return tuple(math.nan if v is None else v for v in (p.input_size, p.cpu, p.memory_mb, p.duration_ms))

    return len(a) == len(b) and all(
        np.array_equal(key(x), key(y), equal_nan=True) for x, y in zip(a, b, strict=True)
    )


def test_a_batch_predicts_each_request_as_it_would_alone() -> None:
    predictor = Predictor(trained())
    requests = [
        (20_000_000, SLOTS),
        (3, SLOTS[:2]),
        (0, []),  # nothing to plan: no rows
        (1e9, [(1, 3), (1, 0)]),
        (float("inf"), SLOTS),  # a size no model was fitted on: the same answer as alone
    ]
    batch = predictor.predict_many(requests)
    assert len(batch) == len(requests)
    for (size, slots), got in zip(requests, batch, strict=True):
        assert same(got, predictor.predict(size, slots))
    assert [len(p) for p in batch] == [4, 2, 0, 2, 4]


def test_a_batch_calls_each_model_once() -> None:
    base = trained()
    counting = {name: Counting(model) for name, model in base.models.items()}
    predictor = Predictor(
        TrainedModels(
            namespace=base.namespace,
            dag=base.dag,
            models=counting,
            model_names=base.model_names,
            features=base.features,
            allowed=base.allowed,
        )
    )
    calls_to_compile = {name: c.calls for name, c in counting.items()}
    predictor.predict_many([(1000 * i, SLOTS) for i in range(1, 30)])
    assert {name: c.calls - calls_to_compile[name] for name, c in counting.items()} == {
        name: 1 for name in counting
    }


def test_an_empty_batch_and_requests_without_slots_predict_nothing() -> None:
    predictor = Predictor(trained())
    assert predictor.predict_many([]) == []
    assert predictor.predict_many([(10, []), (20, [])]) == [[], []]
