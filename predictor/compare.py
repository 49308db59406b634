"""Train and compare the six candidates on each target (thesis §4.3) and choose one per target.

* Split: 80/20 by *request*, so the functions of one request never sit on both
  sides (their input sizes share the DAG input).
* Errors: absolute error per test row (§4.1.1): mean, median, p90, max, R²;
  and the mean relative error |P - actual| / actual (rows with actual > 0).
* Accuracy (CPU, memory; §4.1.2): the fraction of test predictions P with
  P + |P - actual| <= A(P) (see :func:`predictor.allocation.is_accurate`).
  Input size and duration have no allocation grid: their mean absolute and
  relative errors say how good they are.
* Latency: one predict call on one stage's functions (the widest stage seen),
  through the same path as request time (:func:`predictor.models.compile_predict`),
  200 calls per model, interleaved across the candidates.
* Choice: lowest mean absolute error among models whose p99 predict latency is
  within the budget (2 ms per model; the four request-time models are typically
  well under it); if none is, the fastest. The chosen models are then refit on all rows.
* Only successful rows of *parallel* stages train: they are the only ones harvested;
  and only rows at the profile allocation (a CPU sweep's lower ones fit scaling curves).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from tqdm import tqdm

from gleaner.errors import GleanerError
from predictor.allocation import AllowedValues, Grid, is_accurate
from predictor.dataset import ProfileRow, at_profile_allocation
from predictor.models import (
    MODEL_NAMES,
    TARGETS,
    WITHOUT_IDENTITY,
    FloatArray,
    Target,
    TrainedModels,
    compile_predict,
    fast_predict,
    labels,
    make_model,
    matrix,
)

MIN_ROWS = 10
TEST_FRACTION = 0.2
LATENCY_BUDGET_MS = 2.0


class TrainingError(GleanerError):
    """The dataset cannot train models (too few rows, no parallel stage, ...)."""


@dataclass(frozen=True, slots=True)
class ModelScore:
    model: str
    target: str
    errors: FloatArray  # absolute error of each test row, for plots
    mean: float
    median: float
    p90: float
    max: float
    r2: float
    accuracy: float | None  # thesis accuracy on the test set; None without a grid (input size, duration)
    latency_p50_ms: float
    latency_p99_ms: float
    fit_s: float
    notes: tuple[str, ...] = ()
    relative: float = math.nan  # mean |P - actual| / actual over rows with actual > 0


@dataclass(frozen=True, slots=True)
class IdentityCheck:
    """The chosen ML2 model trained with and without (stage, index)."""

    model: str
    mae_with: float
    mae_without: float

    @property
    def helps(self) -> bool:
        return self.mae_with < self.mae_without

    @property
    def relative_gain(self) -> float:
        """How much lower the error is with the identity, as a fraction of the error without."""
        return (self.mae_without - self.mae_with) / self.mae_without if self.mae_without > 0 else 0.0


@dataclass(frozen=True, slots=True)
class TargetResult:
    target: Target
    scores: tuple[ModelScore, ...]
    chosen: str
    why: str
    identity: IdentityCheck | None
    failed: tuple[tuple[str, str], ...] = ()  # (model, reason) that could not be fit

    def score(self, model: str) -> ModelScore:
        return next(s for s in self.scores if s.model == model)


@dataclass(frozen=True, slots=True)
class PipelineScore:
    """ML2 fed by ML1's predicted input sizes (the request-time path) on the test set."""

    target: str
    mean: float
    accuracy: float | None  # None without an allocation grid (duration)
    relative: float = math.nan


@dataclass(frozen=True, slots=True)
class Comparison:
    results: dict[str, TargetResult]
    pipeline: dict[str, PipelineScore]
    fitted: dict[str, Any]  # chosen models, refit on every training row
    allowed: AllowedValues
    dag: str
    n_rows: int
    n_train: int
    n_test: int
    n_requests: int
    batch_width: int
    latency_budget_ms: float
    seed: int
    load_average: tuple[float, float, float]  # of the machine while latencies were measured

    def metrics(self) -> dict[str, dict[str, Any]]:
        """JSON-ready summary of the chosen model per target."""
        out: dict[str, dict[str, Any]] = {}
        for name, res in self.results.items():
            s = res.score(res.chosen)
            out[name] = {
                "model": s.model,
                "why": res.why,
                "mae": s.mean,
                "median": s.median,
                "p90": s.p90,
                "max": s.max,
                "r2": s.r2,
                "accuracy": s.accuracy,
                "relative_error": s.relative,
                "latency_p50_ms": s.latency_p50_ms,
                "latency_p99_ms": s.latency_p99_ms,
            }
            if name in self.pipeline:
                out[name]["pipeline_mae"] = self.pipeline[name].mean
                out[name]["pipeline_accuracy"] = self.pipeline[name].accuracy
                out[name]["pipeline_relative_error"] = self.pipeline[name].relative
            if res.identity is not None:
                out[name]["mae_without_identity"] = res.identity.mae_without
        return out

    def to_trained(self, namespace: str) -> TrainedModels:
        return TrainedModels(
            namespace=namespace,
            dag=self.dag,
            models=dict(self.fitted),
            model_names={t: r.chosen for t, r in self.results.items()},
            features={t: TARGETS[t].features for t in self.results},
            allowed=self.allowed,
            metrics=self.metrics(),
        )


def training_rows(rows: Sequence[ProfileRow]) -> list[ProfileRow]:
    """The rows that train: successful functions of parallel stages, of a single DAG,
    at the profile allocation."""
    if len(rows) < MIN_ROWS:
        raise TrainingError(f"the dataset has {len(rows)} rows; at least {MIN_ROWS} are needed to train")
    dags = sorted({r.dag for r in rows})
    if len(dags) > 1:
        raise TrainingError(f"rows of several DAGs ({', '.join(dags)}); train one DAG at a time")
    # A CPU sweep's rows at lower allocations fit scaling curves (predictor.scaling), not
    # these models: they predict at the profile's maximum.
    usable = [r for r in at_profile_allocation(rows) if r.parallel and r.success]
    if not usable:
        raise TrainingError(f"DAG {dags[0]!r}: no successful rows of a parallel stage; nothing to harvest")
    if len(usable) < MIN_ROWS:
        raise TrainingError(
            f"DAG {dags[0]!r}: {len(usable)} successful parallel-stage rows; at least {MIN_ROWS} are needed"
        )
    return usable


def split(rows: Sequence[ProfileRow], seed: int) -> tuple[list[ProfileRow], list[ProfileRow]]:
    """80/20 by request (by row when there is a single request)."""
    rng = np.random.default_rng(seed)
    requests = sorted({r.request_id for r in rows})
    if len(requests) >= 2:
        order = [requests[i] for i in rng.permutation(len(requests))]
        test_ids = set(order[: max(1, round(TEST_FRACTION * len(requests)))])
        return [r for r in rows if r.request_id not in test_ids], [
            r for r in rows if r.request_id in test_ids
        ]
    order_idx = rng.permutation(len(rows))
    n_test = max(1, round(TEST_FRACTION * len(rows)))
    test = set(order_idx[:n_test].tolist())
    return [r for i, r in enumerate(rows) if i not in test], [r for i, r in enumerate(rows) if i in test]


def _fit(model: Any, X: FloatArray, y: FloatArray) -> tuple[float, tuple[str, ...]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X, y)
        elapsed = time.perf_counter() - start
    notes = ("did not converge",) if any(issubclass(w.category, ConvergenceWarning) for w in caught) else ()
    return elapsed, notes


def measure_latencies(
    models: Mapping[str, Any], batch: FloatArray, calls: int = 200
) -> dict[str, tuple[float, float]]:
    """p50 and p99 (ms) of one predict call on ``batch`` per model, through the
    request-time path. Calls are interleaved across models, so a burst of load on
    the machine slows every candidate alike instead of sinking one of them."""
    predicts = {name: compile_predict(model) for name, model in models.items()}
    names = list(predicts)
    times = {name: np.empty(calls) for name in names}
    for _ in range(10):  # warm caches and lazy imports
        for predict in predicts.values():
            predict(batch)
    for i in range(calls):
        for k in range(len(names)):
            name = names[(i + k) % len(names)]  # rotate who goes first
            start = time.perf_counter()
            predicts[name](batch)
            times[name][i] = time.perf_counter() - start
    return {
        n: (float(np.percentile(t, 50) * 1e3), float(np.percentile(t, 99) * 1e3)) for n, t in times.items()
    }


def accuracy(predicted: FloatArray, actual: FloatArray, grid: Grid) -> float:
    hits = sum(is_accurate(float(p), float(a), grid) for p, a in zip(predicted, actual, strict=True))
    return hits / len(actual) if len(actual) else math.nan


def relative_error(predicted: FloatArray, actual: FloatArray) -> float:
    """Mean |P - actual| / actual over the rows with a positive actual (NaN if none):
    comparable across functions whose durations differ by orders of magnitude."""
    keep = actual > 0
    if not keep.any():
        return math.nan
    return float(np.mean(np.abs(predicted[keep] - actual[keep]) / actual[keep]))


def _grid(target: str, allowed: AllowedValues) -> Grid | None:
    return {"cpu": allowed.cpu, "memory": allowed.mem}.get(target)


def choose(scores: Sequence[ModelScore], budget_ms: float) -> tuple[str, str]:
    """The chosen model name and why (see the module docstring)."""

    def mae(s: ModelScore) -> float:
        return s.mean if math.isfinite(s.mean) else math.inf

    fast = [s for s in scores if s.latency_p99_ms <= budget_ms]
    slow = ", ".join(f"{s.model} ({s.latency_p99_ms:.2f} ms)" for s in scores if s not in fast)
    if fast:
        best = min(fast, key=lambda s: (mae(s), s.latency_p99_ms))
        why = (
            f"lowest mean absolute error ({best.mean:.4g}) among the {len(fast)} models with "
            f"p99 predict latency <= {budget_ms:g} ms"
        )
        return best.model, why + (f"; too slow: {slow}" if slow else "")
    best = min(scores, key=lambda s: s.latency_p99_ms)
    return best.model, (
        f"no model predicts within {budget_ms:g} ms at p99; chose the fastest "
        f"({best.latency_p99_ms:.2f} ms, mean absolute error {best.mean:.4g})"
    )


def _score(
    model_name: str, target: Target, model: Any, test: Sequence[ProfileRow], allowed: AllowedValues
) -> ModelScore:
    X_test, y_test = matrix(test, target.features), labels(test, target)
    predicted = fast_predict(model, X_test)
    errors = np.abs(predicted - y_test)
    grid = _grid(target.name, allowed)
    return ModelScore(
        model=model_name,
        target=target.name,
        errors=errors,
        mean=float(errors.mean()),
        median=float(np.median(errors)),
        p90=float(np.percentile(errors, 90)),
        max=float(errors.max()),
        r2=float(r2_score(y_test, predicted)) if len(y_test) > 1 else math.nan,
        accuracy=accuracy(predicted, y_test, grid) if grid is not None else None,
        latency_p50_ms=math.nan,  # measured for all candidates together, see measure_latencies
        latency_p99_ms=math.nan,
        fit_s=0.0,
        relative=relative_error(predicted, y_test),
    )


def compare(
    rows: Sequence[ProfileRow],
    allowed: AllowedValues,
    seed: int = 0,
    *,
    latency_budget_ms: float = LATENCY_BUDGET_MS,
    latency_calls: int = 200,
    models: Sequence[str] = MODEL_NAMES,
    progress: bool = False,
) -> Comparison:
    """Fit every candidate on every target, score it on the test split, choose."""
    usable = training_rows(rows)
    train, test = split(usable, seed)
    width = max(Counter((r.request_id, r.stage) for r in usable).values())
    results: dict[str, TargetResult] = {}
    test_fitted: dict[str, Any] = {}
    bar = tqdm(total=len(models) * len(TARGETS), desc=f"models {usable[0].dag}", disable=not progress)
    with bar:
        for target in TARGETS.values():
            X_train, y_train = matrix(train, target.features), labels(train, target)
            scores: list[ModelScore] = []
            failed: list[tuple[str, str]] = []
            fitted: dict[str, Any] = {}
            for name in models:
                bar.set_postfix_str(f"{target.name}: {name}")
                model = make_model(name, seed)
                try:
                    fit_s, notes = _fit(model, X_train, y_train)
                    score = _score(name, target, model, test, allowed)
                except (ValueError, ArithmeticError) as exc:
                    failed.append((name, f"{type(exc).__name__}: {exc}"))
                else:
                    scores.append(replace(score, fit_s=fit_s, notes=notes))
                    fitted[name] = model
                bar.update()
            if not scores:
                raise TrainingError(f"no model could be fit for {target.name}: {failed}")
            bar.set_postfix_str(f"{target.name}: predict latency")
            latency = measure_latencies(fitted, matrix(test, target.features)[:width], latency_calls)
            scores = [
                replace(s, latency_p50_ms=latency[s.model][0], latency_p99_ms=latency[s.model][1])
                for s in scores
            ]
            chosen, why = choose(scores, latency_budget_ms)
            test_fitted[target.name] = fitted[chosen]
            best = next(s for s in scores if s.model == chosen)
            identity = _identity(best, target, train, test, seed) if target.name != "input_size" else None
            results[target.name] = TargetResult(target, tuple(scores), chosen, why, identity, tuple(failed))
    pipeline = _pipeline(test_fitted, test, allowed)
    final = {}
    for name, res in results.items():  # refit the chosen models on every row
        final[name] = make_model(res.chosen, seed)
        _fit(final[name], matrix(usable, res.target.features), labels(usable, res.target))
    return Comparison(
        results=results,
        pipeline=pipeline,
        fitted=final,
        allowed=allowed,
        dag=usable[0].dag,
        n_rows=len(rows),
        n_train=len(train),
        n_test=len(test),
        n_requests=len({r.request_id for r in usable}),
        batch_width=width,
        latency_budget_ms=latency_budget_ms,
        seed=seed,
        load_average=_load_average(),
    )


def _load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:  # not available on this platform
        return (math.nan, math.nan, math.nan)


def _identity(
    chosen: ModelScore, target: Target, train: Sequence[ProfileRow], test: Sequence[ProfileRow], seed: int
) -> IdentityCheck:
    """The chosen model refit on the input size alone, on the same split."""
    model = make_model(chosen.model, seed)
    _fit(model, matrix(train, WITHOUT_IDENTITY), labels(train, target))
    errors = np.abs(fast_predict(model, matrix(test, WITHOUT_IDENTITY)) - labels(test, target))
    return IdentityCheck(chosen.model, chosen.mean, float(errors.mean()))


def _pipeline(
    fitted: dict[str, Any], test: Sequence[ProfileRow], allowed: AllowedValues
) -> dict[str, PipelineScore]:
    predicted_size = np.maximum(
        fast_predict(fitted["input_size"], matrix(test, TARGETS["input_size"].features)), 0
    )
    ident = matrix(test, ("stage", "index"))
    X = np.column_stack([predicted_size, ident])
    out = {}
    for name in (t for t in TARGETS if t != "input_size" and t in fitted):
        predicted = fast_predict(fitted[name], X)
        actual = labels(test, TARGETS[name])
        grid = _grid(name, allowed)
        out[name] = PipelineScore(
            name,
            float(np.abs(predicted - actual).mean()),
            accuracy(predicted, actual, grid) if grid is not None else None,
            relative_error(predicted, actual),
        )
    return out
