"""The orchestration bench's split of a DAG request's overhead, from records' clock marks."""

from __future__ import annotations

from typing import Any

from benchmarks.orchestration import SEGMENTS, segments


def _child(aid: str, start: float, end: float, run_ms: float) -> dict[str, Any]:
    return {"activationId": aid, "start": start, "end": end, "gleaner": {"run_ms": run_ms}}


def _dag(start: float, stages: list[list[str]]) -> dict[str, Any]:
    return {
        "start": start,
        "gleaner": {"dag": {"stages": [{"functions": [{"activation_id": a} for a in s]} for s in stages]}},
    }


def test_parallel_stage_follows_the_last_ending_branch() -> None:
    children = [_child("a", 1010, 1020, 4), _child("b", 1016, 1040, 6), _child("c", 1012, 1030, 5)]
    parts = segments(990.0, 1070.0, _dag(1000, [["a", "b", "c"]]), children)
    assert len(parts) == len(SEGMENTS)
    # plan at 1000 (10 after sending); b ends last: it started 16 after the go,
    # spent 24 - 6 = 18 around /run; starts spread 1010..1016; answer 30 after b's end.
    assert parts == (10.0, 16.0, 18.0, 6.0, 30.0)


def test_sequence_sums_its_stages_from_each_previous_end() -> None:
    children = [_child("a", 1005, 1015, 3), _child("b", 1025, 1030, 2)]
    parts = segments(1000.0, 1042.0, _dag(1002, [["a"], ["b"]]), children)
    # stage 1 starts 3 after the go, stage 2 starts 10 after a's end; around /run 7 + 3.
    assert parts == (2.0, 13.0, 10.0, 0.0, 12.0)


def test_a_stage_without_known_records_is_skipped() -> None:
    parts = segments(0.0, 50.0, _dag(10, [["missing"]]), [])
    assert parts == (10.0, 0.0, 0.0, 0.0, 40.0)
