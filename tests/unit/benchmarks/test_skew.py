"""``gleaner bench skew`` (benchmarks/skew.py) against a fake API client: the parallel
stage's skew per request and its straggler, from the records the gateway answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import skew
from tests.unit.benchmarks.test_harvest import FakeClient, inputs


def skew_record(ids: list[str]) -> dict[str, Any]:
    functions = [{"activation_id": a} for a in ids]
    stages = [
        {"kind": "action", "functions": [{"activation_id": "s"}]},
        {"kind": "parallel", "functions": functions},
    ]
    return {"logs": ["s", *ids], "gleaner": {"dag": {"stages": stages}}}


def child(aid: str, name: str, run_ms: float) -> dict[str, Any]:
    return {"activationId": aid, "name": name, "gleaner": {"run_ms": run_ms}}


def test_skew_is_the_parallel_stages_longest_over_shortest_run_and_names_the_straggler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[Path] = []
    monkeypatch.setattr(skew, "draw_timeline", lambda rec, children, png, title: drawn.append(png))
    activations = {
        "s": child("s", "split", 5000.0),  # not in the parallel stage: never the straggler
        "a1": child("a1", "left", 100.0),
        "b1": child("b1", "right", 400.0),
        "a2": child("a2", "left", 300.0),
        "b2": child("b2", "right", 0.5),  # under 1 ms: divided by 1 ms, not by ~0
    }
    client = FakeClient(
        [(200, skew_record(["a1", "b1"])), (502, {}), (200, skew_record(["a2", "b2"]))], activations
    )
    row = skew.measure(client, "w", inputs(tmp_path, 3), tmp_path / "img")  # type: ignore[arg-type]
    assert row["n"] == 2 and row["skews"] == [4.0, 300.0]
    assert row["straggler"] == {"right": 1, "left": 1}
    assert drawn == [tmp_path / "img" / "timeline-w.png"] and row["png"] == drawn[0]


def test_skew_draws_nothing_when_no_request_succeeded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[Path] = []
    monkeypatch.setattr(skew, "draw_timeline", lambda rec, children, png, title: drawn.append(png))
    row = skew.measure(FakeClient([(500, {})]), "w", inputs(tmp_path, 1), tmp_path)  # type: ignore[arg-type]
    assert row["n"] == 0 and row["skews"] == [] and drawn == []
