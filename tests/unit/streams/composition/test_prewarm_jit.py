"""Just-in-time pre-warm, the pure parts: which stages are due a hint when a stage
starts, how long a hint may wait, what the stream learns from completions."""

from __future__ import annotations

from typing import Any

import pytest

from composer import dsl
from streams.composition.prewarm import (
    MAX_DAGS,
    StageTimes,
    hint_delay_ms,
    hint_id_for,
    prewarm_hints,
    stages_due,
)
from streams.events import MAX_PREWARM_DELAY_MS

REQUEST = "e" * 32


def due(
    entered: int,
    depth: int,
    lookahead: int = 1,
    runs: dict[int, float] | None = None,
    cold: float | None = None,
) -> list[int]:
    return list(stages_due(entered, depth, lookahead, runs or {}, cold))


def test_without_times_each_stage_hints_the_lookahead_ahead_of_it() -> None:
    assert [due(k, 5) for k in range(5)] == [[1], [2], [3], [4], []]
    assert [due(k, 5, lookahead=2) for k in range(5)] == [[1, 2], [3], [4], [], []]
    assert due(0, 5, lookahead=9) == [1, 2, 3, 4]  # the old behaviour: all at the start
    assert due(0, 1) == []  # a one-stage DAG has nothing to pre-warm


def test_every_later_stage_is_due_exactly_once_whatever_the_times() -> None:
    cases: list[tuple[dict[int, float], float | None]] = [
        ({}, None),
        ({}, 800.0),
        ({1: 10.0, 2: 10.0, 3: 5000.0, 4: 10.0}, 800.0),
        ({0: 500.0, 1: 10.0, 3: 10.0, 4: 10.0, 5: 10.0}, 800.0),
        ({k: 100.0 for k in range(8)}, 800.0),
    ]
    for runs, cold in cases:
        for lookahead in (1, 2, 3):
            hinted = [s for k in range(8) for s in due(k, 8, lookahead, runs, cold)]
            assert sorted(hinted) == list(range(1, 8)), (runs, cold, lookahead)
            for k in range(8):  # and never after the stage before it started
                assert all(s > k and s <= max(k + lookahead, s) for s in due(k, 8, lookahead, runs, cold))


def test_stages_known_to_be_short_pull_the_ones_after_them_forward() -> None:
    # A container starts in 800 ms: at b's start (10 ms before c) c's hint would be too late.
    runs = {0: 500.0, 1: 10.0, 2: 10.0, 3: 3000.0, 4: 10.0}
    assert due(0, 6, runs=runs, cold=800.0) == [1, 2, 3]
    assert due(1, 6, runs=runs, cold=800.0) == []
    assert due(2, 6, runs=runs, cold=800.0) == []  # d works 3 s: e waits for d's start
    assert due(3, 6, runs=runs, cold=800.0) == [4, 5]  # e is short: f goes with it
    assert hint_delay_ms(3, 4, runs, 800.0) == 1800  # and both may wait out most of d's run
    # An unknown stage stops the pull: its length could be anything.
    assert due(0, 6, runs={1: 10.0}, cold=800.0) == [1, 2]
    assert due(0, 6, runs={2: 10.0}, cold=800.0) == [1]


def test_a_hint_waits_for_the_known_run_time_ahead_less_a_start_with_margin() -> None:
    runs = {0: 5000.0, 1: 10.0}
    assert hint_delay_ms(0, 1, runs, 1000.0) == 3500
    assert hint_delay_ms(0, 2, runs, 1000.0) == 3510
    assert hint_delay_ms(1, 2, runs, 1000.0) == 0
    assert hint_delay_ms(0, 1, runs, None) == 0  # no cold start seen: no reason to wait
    assert hint_delay_ms(0, 1, {}, 1000.0) == 0  # an unknown stage counts as zero: early, not late
    assert hint_delay_ms(0, 1, {0: 1e9}, 1.0) == MAX_PREWARM_DELAY_MS


def test_hint_ids_are_per_request_and_stage_and_the_same_on_a_replay() -> None:
    ids = {hint_id_for(r, s) for r in ("a" * 32, "b" * 32) for s in (1, 2, 3)}
    assert len(ids) == 6 and all(len(i) == 32 and i == i.lower() for i in ids)
    assert hint_id_for("a" * 32, 2) == hint_id_for("a" * 32, 2)


def record(duration: Any, init: Any = None) -> dict[str, Any]:
    notes = [{"key": "waitTime", "value": 3}]
    if init is not None:
        notes.append({"key": "initTime", "value": init})
    return {"duration": duration, "annotations": notes}


def test_times_learn_the_run_without_the_cold_start_and_the_longest_recent_cold_start() -> None:
    times = StageTimes()
    assert times.runs("d") == {} and times.cold_start_ms() is None
    times.observe_record("d", 0, record(1500, 900))
    times.observe_record("d", 1, record(20))
    times.observe_record("d", 1, record(300, 200))  # waited 200 ms for a pre-warming container
    assert times.runs("d") == {0: 600.0, 1: 60.0}  # a moving average per stage
    assert times.cold_start_ms() == 900.0  # a partial wait does not lower the estimate
    assert times.runs("other") == {}


@pytest.mark.parametrize("bad", [record(None), record("1"), record(True), record(-5), {"annotations": 3}])
def test_a_record_without_a_usable_duration_is_skipped(bad: dict[str, Any]) -> None:
    times = StageTimes()
    times.observe_record("d", 0, bad)
    assert times.runs("d") == {}


def test_a_bad_init_time_counts_as_none_and_old_dags_are_forgotten() -> None:
    times = StageTimes()
    times.observe_record("d", 0, record(100, "x"))
    assert times.runs("d") == {0: 100.0} and times.cold_start_ms() is None
    small = StageTimes(max_dags=2)
    for dag in ("a", "b", "a", "c"):
        small.observe(dag, 0, 10.0, None)
    assert (small.runs("a"), small.runs("b"), small.runs("c")) == ({0: 10.0}, {}, {0: 10.0})
    assert MAX_DAGS >= 100


def test_the_hints_of_stages_entered_together_come_in_order() -> None:
    tree = dsl.sequence("a", dsl.map("m"), "b", "c")

    def none(stage: int, index: int) -> None:
        return None

    # A map over nothing passes straight through: stages 1 and 2 start with the same event.
    got = prewarm_hints(REQUEST, "guest", tree, [1, 2], none, {}, lookahead=1, runs={}, cold_start_ms=None)
    assert [(h.hint_id, [f.action for f in h.functions]) for h in got] == [
        (hint_id_for(REQUEST, 2), ["b"]),
        (hint_id_for(REQUEST, 3), ["c"]),
    ]
    assert prewarm_hints(REQUEST, "guest", tree, [], none, {}, lookahead=1, runs={}, cold_start_ms=None) == []
