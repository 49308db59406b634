"""Deadlines and remaining critical paths for the invoker's least-slack order."""

from __future__ import annotations

from gleaner.allocation import Allocation, Predicted
from streams.composition.urgency import RequestTimes, Urgency, planned_stage_ms


def urgency_of(started, stage, depth, learned, planned, slo, factor):
    return RequestTimes.build(started, depth, learned, planned, slo, factor).of(stage)


def test_one_request_answers_every_stage_from_times_worked_out_once():
    times = RequestTimes.build(0, 3, {0: 100.0, 1: 400.0, 2: 50.0}, {}, None, 1.0)
    assert [times.of(s) for s in range(3)] == [
        Urgency(550, 550, 100),
        Urgency(550, 450, 400),
        Urgency(550, 50, 50),
    ]


def test_without_an_slo_the_deadline_is_arrival_plus_factor_times_the_predicted_latency():
    learned = {0: 100.0, 1: 400.0, 2: 50.0}
    u = urgency_of(10_000, 1, 3, learned, {}, None, 2.0)
    assert u == Urgency(10_000 + 2 * 550, 450, 400)


def test_an_slo_sets_the_deadline_and_the_plan_overrides_what_was_learned():
    u = urgency_of(10_000, 0, 2, {0: 100.0, 1: 400.0}, {1: 900.0}, 3_000, 2.0)
    assert u == Urgency(13_000, 1_000, 100)


def test_nothing_known_gives_no_deadline_and_unknown_stages_count_as_zero():
    assert urgency_of(5, 0, 2, {}, {}, None, 2.0) == Urgency(None, 0, None)
    assert urgency_of(5, 1, 2, {0: 10.0}, {}, None, 1.0) == Urgency(15, 0, None)
    assert urgency_of(5, None, 2, {0: 10.0}, {}, None, 1.0) == Urgency(15, None, None)
    assert urgency_of(5, 7, 2, {0: 10.0}, {}, None, 1.0).remaining_ms is None  # out of range


def test_a_stage_plan_is_its_slowest_function_stretched_below_its_peak():
    allocations = {
        (1, 0): Allocation(0.5, 256, predicted=Predicted(1, 1.0, 9, 300)),
        (1, 1): Allocation(1.0, 256, predicted=Predicted(1, 0.5, 9, 500)),
        (2, 0): Allocation(1.0, 256, predicted=Predicted(1, 1.0, 9)),  # no work model
        (3, 0): Allocation(1.0, 256, predicted=Predicted(1, 1.0, 9, -5)),  # no usable time
        (4, 0): Allocation(1.0, 256, predicted=Predicted(1, 1.0, 9, float("nan"))),
        (5, 0): Allocation(1.0, 256),  # nothing predicted
    }
    assert planned_stage_ms(allocations) == {1: 600.0}
