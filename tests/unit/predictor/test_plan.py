"""Request planning: predict -> normalize -> validate, per parallel stage."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping

import numpy as np

from composer import analyze, map, parallel, sequence
from predictor.inference import Prediction, Predictor
from predictor.models import TARGETS, TrainedModels
from predictor.plan import plan_request
from tests.unit.predictor import OURS, SHARES, analysis, synthetic_comparison


class Fixed:
    """A stand-in model: a fixed answer per (stage, index), counting its calls."""

    def __init__(self, answers: Mapping[tuple[int, int], float]) -> None:
        self.answers = answers
        self.calls = 0

    def predict(self, X: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.array([self.answers[int(row[1]), int(row[2])] for row in X])


def stub(
    sizes: dict[tuple[int, int], float], cpu: dict[tuple[int, int], float], mem: dict[tuple[int, int], float]
) -> TrainedModels:
    return TrainedModels(
        namespace="guest",
        dag="stub",
        models={"input_size": Fixed(sizes), "cpu": Fixed(cpu), "memory": Fixed(mem)},
        model_names={t: "Fixed" for t in TARGETS},
        features={t: TARGETS[t].features for t in TARGETS},
        allowed=OURS,
    )


SLOTS = [(1, i) for i in range(4)]
SIZES = {s: 1000.0 * (4 - s[1]) for s in SLOTS}


def per_slot(values: list[float]) -> dict[tuple[int, int], float]:
    return dict(zip(SLOTS, values, strict=True))


def test_fit_harvests_from_small_functions_and_accelerates_the_straggler() -> None:
    trained = stub(SIZES, per_slot([1.7, 0.6, 0.3, 0.2]), per_slot([300.0, 200, 100, 100]))
    user = {s: (1.0, 512.0) for s in SLOTS}  # budget 4 cores, 2048 MB
    plan = plan_request(Predictor(trained), analysis(), 10_000, user, OURS)
    assert plan.allocations == {
        (1, 0): (1.75, 384, "accelerate"),
        (1, 1): (0.75, 256, "harvest"),
        (1, 2): (0.5, 128, "harvest"),
        (1, 3): (0.25, 128, "harvest"),
    }
    (stage,) = plan.stages
    assert stage.stage == 1 and (stage.decision.cpu_mode, stage.decision.mem_mode) == ("fit", "fit")
    assert stage.normalized == [(1.75, 384.0), (0.75, 256.0), (0.5, 128.0), (0.25, 128.0)]
    assert stage.predicted[0] == Prediction(4000.0, 1.7, 300.0) and stage.user == [(1.0, 512.0)] * 4
    assert plan.reasons == [f"stage 1: {stage.decision.reason}"]
    json.dumps(plan.to_dict())  # JSON-ready for records and Redis


def test_over_budget_is_scaled_and_memory_falls_back() -> None:
    trained = stub(SIZES, per_slot([1.7, 0.6, 0.3, 0.2]), per_slot([900.0, 200, 100, 100]))
    user = {s: (0.5, 256.0) for s in SLOTS}  # budget 2 cores, 1024 MB
    plan = plan_request(Predictor(trained), analysis(), 10_000, user, OURS)
    cpu = [plan.allocations[s][0] for s in SLOTS]
    assert math.isclose(sum(cpu), 2.0) and cpu[0] > cpu[1] >= cpu[2] >= cpu[3] >= 0.25
    assert [plan.allocations[s][1] for s in SLOTS] == [256] * 4  # user memory kept
    assert plan.allocations[(1, 0)][2] == "accelerate" and plan.allocations[(1, 3)][2] == "harvest"
    assert plan.stages[0].decision.mem_mode == "rejected"


def test_one_batched_call_per_model_for_the_whole_request() -> None:
    dag = sequence(parallel("a", "b"), "x", parallel("c", "d", "e"), map("m"))
    slots = [(0, 0), (0, 1), (2, 0), (2, 1), (2, 2)]
    trained = stub({s: 1.0 for s in slots}, {s: 0.3 for s in slots}, {s: 100.0 for s in slots})
    user = {s: (0.5, 256.0) for s in slots}
    plan = plan_request(Predictor(trained), analyze(dag), 10, user, OURS)
    assert all(m.calls == 1 for m in trained.models.values())
    assert sorted(plan.allocations) == slots  # the action stage (1) and the map (3) are not planned
    assert "stage 3 (map): skipped, its functions are known only at run time" in plan.reasons


def test_non_finite_prediction_rejects_only_its_stage() -> None:
    dag = sequence(parallel("a", "b"), parallel("c", "d"))
    slots = [(0, 0), (0, 1), (1, 0), (1, 1)]
    cpu = {(0, 0): math.nan, (0, 1): 0.3, (1, 0): 0.3, (1, 1): 0.3}
    trained = stub({s: 1.0 for s in slots}, cpu, {s: 100.0 for s in slots})
    user = {s: (1.0, 256.0) for s in slots}
    plan = plan_request(Predictor(trained), analyze(dag), 10, user, OURS)
    assert plan.allocations[(0, 0)] == (1.0, 256, "user") and plan.allocations[(0, 1)] == (1.0, 256, "user")
    assert plan.stages[0].decision.cpu_mode == "rejected" and plan.stages[0].normalized == []
    assert "stage 0: a prediction is not finite, user allocations kept" in plan.reasons
    assert plan.allocations[(1, 0)] == (0.5, 128, "harvest")


def test_out_of_range_predictions_are_clamped_with_a_reason() -> None:
    dag = sequence(parallel("a", "b"))
    slots = [(0, 0), (0, 1)]
    trained = stub({s: 1.0 for s in slots}, {(0, 0): 5.0, (0, 1): -0.2}, {s: 100.0 for s in slots})
    plan = plan_request(Predictor(trained), analyze(dag), 10, {s: (2.0, 256.0) for s in slots}, OURS)
    assert plan.stages[0].normalized == [(2.0, 128.0), (0.25, 128.0)]
    assert any("function 0 (a): cpu prediction 5 cores is above the maximum" in r for r in plan.reasons)
    assert any("function 1 (b): cpu prediction -0.2 cores is negative" in r for r in plan.reasons)
    assert plan.allocations[(0, 0)] == (2.0, 128, "user")


def test_missing_user_allocation_skips_the_stage() -> None:
    trained = stub(SIZES, {s: 0.3 for s in SLOTS}, {s: 100.0 for s in SLOTS})
    plan = plan_request(Predictor(trained), analysis(), 10, {(1, 0): (1.0, 256.0)}, OURS)
    assert plan.allocations == {} and plan.stages == []
    assert plan.reasons == ["stage 1: no user allocation for functions [1, 2, 3], skipped"]


def test_predictor_edges() -> None:
    trained = stub({(1, 0): -50.0}, {(1, 0): 0.3}, {(1, 0): 100.0})
    predictor = Predictor(trained)
    assert predictor.predict(10, []) == []
    assert predictor.predict(10, [(1, 0)]) == [Prediction(0.0, 0.3, 100.0)]  # negative size -> 0


def test_plan_with_trained_models_and_its_latency() -> None:
    trained = synthetic_comparison().to_trained("guest")
    predictor = Predictor(trained)
    user = {s: (0.5, 512.0) for s in SLOTS}
    plan = plan_request(predictor, analysis(), 30_000_000, user, OURS)
    (stage,) = plan.stages
    sizes = [p.input_size for p in stage.predicted]
    assert sizes == sorted(sizes, reverse=True)  # the 50/25/15/10 % shares
    assert abs(sizes[0] / 30e6 - SHARES[0]) < 0.05
    assert sum(a[0] for a in plan.allocations.values()) <= 2.0 + 1e-9
    assert plan.allocations[(1, 0)][2] == "accelerate" and plan.allocations[(1, 3)][2] == "harvest"

    inputs = np.random.default_rng(0).uniform(1e6, 5e7, 300)
    times = []
    for size in inputs:
        start = time.perf_counter()
        plan_request(predictor, analysis_cached, int(size), user, OURS)
        times.append(time.perf_counter() - start)
    p50, p99 = np.percentile(times, 50) * 1e3, np.percentile(times, 99) * 1e3
    models = ", ".join(f"{t}={n}" for t, n in trained.model_names.items())
    print(f"\nplan_request, width-4 stage ({models}): p50 {p50:.3f} ms, p99 {p99:.3f} ms")


analysis_cached = analysis()
