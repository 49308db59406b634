"""Request planning: predict, then size each parallel stage by a policy (thesis:
normalize -> validate; libra: each at its peak; gleaner: CPU divided by work)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import pytest

from composer import analyze, map, parallel, sequence
from predictor.inference import Prediction, Predictor
from predictor.models import TARGETS, TrainedModels
from predictor.plan import Plan, plan_request
from predictor.scaling import ScalingCurve
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
    sizes: dict[tuple[int, int], float],
    cpu: dict[tuple[int, int], float],
    mem: dict[tuple[int, int], float],
    duration: dict[tuple[int, int], float] | None = None,
) -> TrainedModels:
    """Stand-in models; without ``duration``, like a version saved before the work model."""
    models = {"input_size": Fixed(sizes), "cpu": Fixed(cpu), "memory": Fixed(mem)}
    if duration is not None:
        models["duration"] = Fixed(duration)
    return TrainedModels(
        namespace="guest",
        dag="stub",
        models=models,
        model_names={t: "Fixed" for t in models},
        features={t: TARGETS[t].features for t in models},
        allowed=OURS,
    )


def triples(plan: Plan) -> dict[tuple[int, int], tuple[float, int, str]]:
    return {slot: (a.cpu, a.memory_mb, a.origin) for slot, a in plan.allocations.items()}


SLOTS = [(1, i) for i in range(4)]
SIZES = {s: 1000.0 * (4 - s[1]) for s in SLOTS}


def per_slot(values: list[float]) -> dict[tuple[int, int], float]:
    return dict(zip(SLOTS, values, strict=True))


def test_fit_harvests_from_small_functions_and_accelerates_the_straggler() -> None:
    trained = stub(SIZES, per_slot([1.7, 0.6, 0.3, 0.2]), per_slot([300.0, 200, 100, 100]))
    user = {s: (1.0, 512.0) for s in SLOTS}  # budget 4 cores, 2048 MB
    plan = plan_request(Predictor(trained), analysis(), 10_000, user, OURS)
    assert triples(plan) == {
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
    first = plan.allocations[(1, 0)]
    assert first.cap == 1.75 and first.reason is None  # A(1.7): its useful maximum
    assert first.predicted is not None and first.predicted.duration_ms is None  # no work model
    assert (first.predicted.input_size, first.predicted.cpu, first.predicted.memory_mb) == (
        4000.0,
        1.7,
        300.0,
    )
    summary = json.loads(json.dumps(plan.to_dict()))  # JSON-ready for records and Redis
    assert summary["policy"] == "thesis" and summary["stages"][0]["policy"] == "thesis"
    assert summary["allocations"]["1.0"] == first.to_dict()
    assert summary["allocations"]["1.0"] == {
        "cpu": 1.75,
        "memory": 384,
        "origin": "accelerate",
        "predicted": {"input_size": 4000, "cpu": 1.7, "memory": 300.0},
        "cap": 1.75,
    }


def test_over_budget_is_scaled_and_memory_falls_back() -> None:
    trained = stub(SIZES, per_slot([1.7, 0.6, 0.3, 0.2]), per_slot([900.0, 200, 100, 100]))
    user = {s: (0.5, 256.0) for s in SLOTS}  # budget 2 cores, 1024 MB
    plan = plan_request(Predictor(trained), analysis(), 10_000, user, OURS)
    cpu = [plan.allocations[s].cpu for s in SLOTS]
    assert math.isclose(sum(cpu), 2.0) and cpu[0] > cpu[1] >= cpu[2] >= cpu[3] >= 0.25
    assert [plan.allocations[s].memory_mb for s in SLOTS] == [256] * 4  # user memory kept
    assert plan.allocations[(1, 0)].origin == "accelerate" and plan.allocations[(1, 3)].origin == "harvest"
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
    allocations = triples(plan)
    assert allocations[(0, 0)] == (1.0, 256, "user") and allocations[(0, 1)] == (1.0, 256, "user")
    assert plan.allocations[(0, 0)].predicted is None and plan.allocations[(0, 0)].cap is None
    assert plan.stages[0].decision.cpu_mode == "rejected" and plan.stages[0].normalized == []
    assert "stage 0: a prediction is not finite, user allocations kept" in plan.reasons
    assert allocations[(1, 0)] == (0.5, 128, "harvest")
    json.dumps(plan.to_dict(), allow_nan=False)  # the NaN prediction does not leak into the allocations


def test_out_of_range_predictions_are_clamped_with_a_reason() -> None:
    dag = sequence(parallel("a", "b"))
    slots = [(0, 0), (0, 1)]
    trained = stub({s: 1.0 for s in slots}, {(0, 0): 5.0, (0, 1): -0.2}, {s: 100.0 for s in slots})
    plan = plan_request(Predictor(trained), analyze(dag), 10, {s: (2.0, 256.0) for s in slots}, OURS)
    assert plan.stages[0].normalized == [(2.0, 128.0), (0.25, 128.0)]
    assert any("function 0 (a): cpu prediction 5 cores is above the maximum" in r for r in plan.reasons)
    assert any("function 1 (b): cpu prediction -0.2 cores is negative" in r for r in plan.reasons)
    assert triples(plan)[(0, 0)] == (2.0, 128, "user")


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
    assert not predictor.has_work_model
    with_work = Predictor(stub({(1, 0): 5.0}, {(1, 0): 0.3}, {(1, 0): 100.0}, {(1, 0): 250.0}))
    assert with_work.has_work_model
    assert with_work.predict(10, [(1, 0)]) == [Prediction(5.0, 0.3, 100.0, 250.0)]
    nan_size = Predictor(stub({(1, 0): math.nan}, {(1, 0): 0.3}, {(1, 0): 100.0}, {(1, 0): 250.0}))
    (p,) = nan_size.predict(10, [(1, 0)])
    assert all(math.isnan(v) for v in (p.cpu, p.memory_mb, p.duration_ms or 0.0))  # no size, no demands


def test_plan_with_trained_models_and_its_latency() -> None:
    trained = synthetic_comparison().to_trained("guest")
    predictor = Predictor(trained)
    user = {s: (0.5, 512.0) for s in SLOTS}
    plan = plan_request(predictor, analysis(), 30_000_000, user, OURS)
    (stage,) = plan.stages
    sizes = [p.input_size for p in stage.predicted]
    assert sizes == sorted(sizes, reverse=True)  # the 50/25/15/10 % shares
    assert abs(sizes[0] / 30e6 - SHARES[0]) < 0.05
    assert sum(a.cpu for a in plan.allocations.values()) <= 2.0 + 1e-9
    assert plan.allocations[(1, 0)].origin == "accelerate" and plan.allocations[(1, 3)].origin == "harvest"

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


# ---- policies ------------------------------------------------------------------

PAIR = analyze(sequence(parallel("long", "short")))
PAIR_SLOTS = [(0, 0), (0, 1)]


def pair(cpu: list[float], mem: list[float], duration: list[float] | None = None) -> Predictor:
    def by(values: list[float]) -> dict[tuple[int, int], float]:
        return dict(zip(PAIR_SLOTS, values, strict=True))

    sizes = by([2000.0, 1000.0])
    return Predictor(stub(sizes, by(cpu), by(mem), None if duration is None else by(duration)))


USER_PAIR = {s: (1.0, 512.0) for s in PAIR_SLOTS}  # budget 2 cores, 1024 MB


def test_gleaner_divides_by_work_where_the_peaks_are_equal() -> None:
    # Equal peaks (2 cores each), 3x the work: the validator splits 1-1; gleaner 1.5-0.5.
    predictor = pair([2.0, 2.0], [300.0, 200.0], [3000.0, 1000.0])
    thesis = plan_request(predictor, PAIR, 10, USER_PAIR, OURS)
    gleaner = plan_request(predictor, PAIR, 10, USER_PAIR, OURS, policy="gleaner")
    assert triples(thesis) == {(0, 0): (1.0, 384, "user"), (0, 1): (1.0, 256, "user")}
    assert triples(gleaner) == {(0, 0): (1.5, 384, "accelerate"), (0, 1): (0.5, 256, "harvest")}
    (sp,) = gleaner.stages
    assert (sp.policy, sp.decision.cpu_mode, sp.decision.mem_mode) == ("gleaner", "divided", "fit")
    assert (sp.makespan_s, sp.validator_makespan_s) == (4.0, 6.0)  # work 6 and 2 CPU-s
    assert "predicted makespan 4 s (validator: 6 s)" in sp.decision.reason
    assert sp.decision.mem_why == thesis.stages[0].decision.mem_why  # memory: the validator's rule
    long = gleaner.allocations[(0, 0)]
    assert long.cap == 2.0 and long.predicted is not None and long.predicted.duration_ms == 3000.0
    summary = json.loads(json.dumps(gleaner.to_dict(), allow_nan=False))
    assert summary["policy"] == "gleaner"
    assert (summary["stages"][0]["makespan_s"], summary["stages"][0]["validator_makespan_s"]) == (4.0, 6.0)
    assert summary["stages"][0]["predicted"][0] == [2000.0, 2.0, 300.0, 3000.0]
    assert summary["allocations"]["0.0"]["predicted"]["duration_ms"] == 3000.0


def test_gleaner_without_a_work_model_falls_back_to_the_validator() -> None:
    predictor = pair([1.7, 0.6], [300.0, 200.0])  # a version saved before the duration model
    thesis = plan_request(predictor, PAIR, 10, USER_PAIR, OURS)
    gleaner = plan_request(predictor, PAIR, 10, USER_PAIR, OURS, policy="gleaner")
    assert gleaner.allocations == thesis.allocations
    (sp,) = gleaner.stages
    assert sp.decision.cpu_mode == "scaled" and sp.makespan_s is None and sp.validator_makespan_s is None
    assert sp.decision.reason.startswith(
        "no work model: cpu from the validator: cpu: demands 1.75-0.75 exceed"
    )
    assert gleaner.reasons == [f"stage 0: {sp.decision.reason}"]
    summary = gleaner.to_dict()["stages"][0]
    assert summary["makespan_s"] is None and summary["predicted"][0][3] is None


@pytest.mark.parametrize(
    ("duration", "why"),
    [
        ([1000.0, 0.0], "work division rejected (cpu: function 1 has no usable predicted work"),
        ([1000.0, -5.0], "work division rejected (cpu: function 1 has no usable predicted work"),
        ([1000.0, math.inf], "a predicted duration is not finite: cpu from the validator"),
    ],
)
def test_gleaner_falls_back_when_the_work_is_unusable(duration: list[float], why: str) -> None:
    predictor = pair([1.7, 0.6], [300.0, 200.0], duration)
    thesis = plan_request(predictor, PAIR, 10, USER_PAIR, OURS)
    gleaner = plan_request(predictor, PAIR, 10, USER_PAIR, OURS, policy="gleaner")
    assert triples(gleaner) == triples(thesis)
    assert why in gleaner.stages[0].decision.reason
    json.dumps(gleaner.to_dict(), allow_nan=False)


def test_gleaner_keeps_the_user_cpu_when_the_minimums_do_not_fit() -> None:
    predictor = pair([1.7, 0.6], [300.0, 200.0], [1000.0, 500.0])
    user = {s: (0.1, 512.0) for s in PAIR_SLOTS}
    plan = plan_request(predictor, PAIR, 10, user, OURS, policy="gleaner")
    assert [(a.cpu, a.origin) for a in plan.allocations.values()] == [(0.1, "user"), (0.1, "user")]
    assert plan.stages[0].decision.cpu_mode == "rejected"


def test_libra_sizes_each_function_to_its_peak_without_a_budget() -> None:
    predictor = pair([1.7, 0.6], [300.0, 200.0], [1000.0, 500.0])
    user = {s: (0.5, 256.0) for s in PAIR_SLOTS}  # budget 1 core, 512 MB: libra ignores it
    plan = plan_request(predictor, PAIR, 10, user, OURS, policy="libra", memory_margin=0.1)
    assert triples(plan) == {(0, 0): (1.75, 384, "accelerate"), (0, 1): (0.75, 256, "accelerate")}
    (sp,) = plan.stages
    assert (sp.policy, sp.decision.cpu_mode, sp.decision.mem_mode) == ("libra", "sized", "sized")
    assert sp.normalized == [(1.75, 384.0), (0.75, 256.0)]
    assert "no stage budget" in sp.decision.reason and "makespan_s" not in plan.to_dict()["stages"][0]
    bounded = plan_request(predictor, PAIR, 10, user, OURS, policy="libra", capacity=(1.5, 4096.0))
    assert bounded.allocations[(0, 0)].cpu == 1.5 and bounded.allocations[(0, 0)].cap == 1.75
    assert any(
        "function 0 (long): cpu 1.75 cores is above the invoker capacity" in r for r in bounded.reasons
    )


def test_every_policy_rejects_a_non_finite_stage_and_batches_its_calls() -> None:
    predictor = pair([math.nan, 0.6], [300.0, 200.0], [1000.0, 500.0])
    for policy in ("thesis", "libra", "gleaner"):
        plan = plan_request(predictor, PAIR, 10, USER_PAIR, OURS, policy=policy)
        assert triples(plan) == {(0, 0): (1.0, 512, "user"), (0, 1): (1.0, 512, "user")}
        assert plan.stages[0].policy == policy and plan.stages[0].decision.cpu_mode == "rejected"
    assert all(m.calls == 3 for m in predictor.trained.models.values())  # one per model per request


def test_thesis_ignores_the_work_model_and_unknown_policies_fail() -> None:
    with_work = pair([1.7, 0.6], [300.0, 200.0], [1000.0, 500.0])
    without = pair([1.7, 0.6], [300.0, 200.0])
    assert triples(plan_request(with_work, PAIR, 10, USER_PAIR, OURS)) == triples(
        plan_request(without, PAIR, 10, USER_PAIR, OURS)
    )
    with pytest.raises(ValueError, match="unknown planning policy 'fast'"):
        plan_request(with_work, PAIR, 10, USER_PAIR, OURS, policy="fast")


def test_gleaner_plans_with_the_scaling_curves_that_ride_on_the_predictions() -> None:
    # Equal peaks, 3x the work, user 1-1: linear gives the long one 1.5 cores. With
    # s = 0.45 its step from 1 to 1.25 is worth under half its cores: it stops at its
    # own 1 core, the short one is harvested to the minimum, 0.75 cores unspent.
    duration = [3000.0, 1000.0]
    linear = pair([2.0, 2.0], [300.0, 200.0], duration)
    curves = {(0, 0): ScalingCurve(0.45), (0, 1): ScalingCurve(0.45)}
    curved = Predictor(replace(linear.trained, scaling=curves))
    assert [p.scaling for p in curved.predict(10, PAIR_SLOTS)] == [curves[(0, 0)], curves[(0, 1)]]
    plain = plan_request(linear, PAIR, 10, USER_PAIR, OURS, policy="gleaner")
    shaped = plan_request(curved, PAIR, 10, USER_PAIR, OURS, policy="gleaner")
    assert triples(plain)[(0, 0)][0] == 1.5 and "scaling" not in plain.to_dict()["stages"][0]
    assert triples(shaped) == {(0, 0): (1.0, 384, "user"), (0, 1): (0.25, 256, "harvest")}
    (sp,) = shaped.stages
    assert "stopped: 0 at 1 (marginal speedup" in sp.decision.reason
    assert sp.core_s is not None and sp.user_core_s is not None and sp.core_s <= sp.user_core_s
    summary = json.loads(json.dumps(shaped.to_dict(), allow_nan=False))["stages"][0]
    assert summary["scaling"]["serial_fraction"] == [0.45, 0.45]
    assert summary["scaling"]["core_s"] <= summary["scaling"]["user_core_s"]
    assert summary["makespan_s"] <= summary["validator_makespan_s"]
    # The thesis policy does not look at curves.
    thesis = plan_request(curved, PAIR, 10, USER_PAIR, OURS)
    assert triples(thesis) == triples(plan_request(linear, PAIR, 10, USER_PAIR, OURS))
