"""Timeline PNG from synthetic OpenWhisk-shaped records, and the skew numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor.timeline import draw_timeline, stage_skew

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
T0 = 1_700_000_000_000


def child(aid: str, name: str, stage: int, index: int, start: int, end: int, **notes: int) -> dict[str, Any]:
    return {
        "activationId": aid,
        "namespace": "guest",
        "name": name,
        "start": T0 + start,
        "end": T0 + end,
        "duration": end - start,
        "annotations": [{"key": "kind", "value": "python:3"}]
        + [{"key": k, "value": v} for k, v in notes.items()],
        "gleaner": {"stage": stage, "index": index},
    }


def video_analytics() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    children = [
        child("a0", "streaming", 0, 0, 5, 805, initTime=450, waitTime=5),
        child("a1", "decoder", 1, 0, 810, 2_010, initTime=400, waitTime=3),
        child("a2", "recognition1", 2, 0, 2_015, 3_015, waitTime=4),
        child("a3", "recognition2", 2, 1, 2_016, 5_416, initTime=500, waitTime=4),
    ]
    stages = [
        {"index": 0, "kind": "action", "start": T0, "end": T0 + 805, "functions": [
            {"activation_id": "a0", "action": "streaming", "index": 0, "input_size": 2048}]},
        {"index": 1, "kind": "action", "start": T0 + 805, "end": T0 + 2_010, "functions": [
            {"activation_id": "a1", "action": "decoder", "index": 0, "input_size": 4096}]},
        {"index": 2, "kind": "parallel", "start": T0 + 2_010, "end": T0 + 5_416, "functions": [
            {"activation_id": "a2", "action": "recognition1", "index": 0, "input_size": 1000},
            {"activation_id": "a3", "action": "recognition2", "index": 1, "input_size": 3000}]},
    ]  # fmt: skip
    dag = {
        "activationId": "9f1c2e",
        "namespace": "guest",
        "name": "vid",
        "start": T0,
        "end": T0 + 5_420,
        "duration": 5_420,
        "logs": [c["activationId"] for c in children],
        "annotations": [],
        "gleaner": {"dag": {"name": "vid", "input_size": 2048, "stages": stages}},
    }
    return dag, children


def test_stage_skew_of_the_parallel_stage_only() -> None:
    dag, children = video_analytics()
    assert stage_skew(dag, children) == {2: pytest.approx(3.4)}


def test_stage_skew_of_a_map_and_of_undescribed_stages() -> None:
    children = [
        child("b0", "split", 0, 0, 0, 100),
        child("b1", "detect", 1, 0, 100, 300),
        child("b2", "detect", 1, 1, 100, 700),
        child("b3", "detect", 1, 2, 100, 500),
    ]
    dag = {"activationId": "r", "start": T0, "end": T0 + 700,
           "gleaner": {"dag": {"name": "m", "stages": [{"index": 1, "kind": "map"}]}}}  # fmt: skip
    assert stage_skew(dag, children) == {1: pytest.approx(3.0)}
    bare = {"activationId": "r", "start": T0, "end": T0 + 700}
    assert stage_skew(bare, children) == {1: pytest.approx(3.0)}


def test_stage_skew_places_children_from_the_dag_record() -> None:
    dag, children = video_analytics()
    for c in children:
        del c["gleaner"]
    assert stage_skew(dag, children) == {2: pytest.approx(3.4)}


def test_zero_duration_keeps_skew_finite() -> None:
    children = [child("c0", "x", 0, 0, 0, 0), child("c1", "y", 0, 1, 0, 50)]
    assert stage_skew({"start": T0}, children) == {0: 50.0}


def test_single_function_stages_have_no_skew() -> None:
    assert stage_skew({"start": T0}, [child("c0", "x", 0, 0, 0, 10)]) == {}


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 1000


def test_draw_timeline_writes_a_png(tmp_path: Path) -> None:
    dag, children = video_analytics()
    out = draw_timeline(dag, children, tmp_path / "plots" / "vid.png")
    assert out == tmp_path / "plots" / "vid.png"
    _assert_png(out)


def test_draw_timeline_with_a_title_and_sparse_records(tmp_path: Path) -> None:
    sparse = [{"activationId": "z", "name": "lonely", "start": T0 + 10, "duration": 40}]
    _assert_png(draw_timeline({"activationId": "r", "start": T0}, sparse, tmp_path / "s.png", title="sparse"))


def test_draw_timeline_with_no_children(tmp_path: Path) -> None:
    dag, _ = video_analytics()
    _assert_png(draw_timeline(dag, [], tmp_path / "empty.png"))
