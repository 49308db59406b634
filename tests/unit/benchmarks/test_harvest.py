"""``gleaner bench harvest`` (benchmarks/harvest.py) against a fake API client: what it
counts from the records the gateway answers, a failed request kept apart. The run on the
stack itself is a benchmark, not a test."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks import harvest
from gleaner.settings import Settings
from monitor.utilisation import UtilisationSummary


def dag_record(stages: list[tuple[str, int, int]], **gleaner: Any) -> dict[str, Any]:
    return {
        "duration": 1000,
        "logs": [],
        "gleaner": {
            "dag": {"stages": [{"kind": k, "start": s, "end": e} for k, s, e in stages]},
            **gleaner,
        },
    }


class FakeClient:
    """Answers each DAG request with the next of ``answers`` and records what it was asked."""

    def __init__(self, answers: list[tuple[int, dict[str, Any]]], activations: dict[str, Any] | None = None):
        self.answers = answers
        self.activations = activations or {}
        self.asked: list[tuple[str, str, Any, dict[str, str] | None]] = []

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, Any]:
        self.asked.append((method, path, json, params))
        if path.startswith("/activations/"):
            return 200, self.activations[path.rsplit("/", 1)[1]]
        status, body = self.answers.pop(0)
        assert status in ok
        return status, body


class FakeNode:
    def __init__(self, cpu_capacity: float, memory_capacity_mb: int) -> None:
        self.capacity = cpu_capacity

    def start(self) -> FakeNode:
        return self

    def stop(self) -> UtilisationSummary:
        return UtilisationSummary(1.0, 1.0, 100.0, 2.0, self.capacity, 1000.0)


def inputs(tmp_path: Path, n: int) -> list[Path]:
    out = []
    for i in range(n):
        path = tmp_path / f"in{i}.json"
        path.write_text(json.dumps({"i": i}))
        out.append(path)
    return out


def test_the_parallel_time_sums_the_parallel_and_map_stages_only() -> None:
    rec = dag_record([("action", 0, 100), ("parallel", 100, 400), ("map", 400, 450), ("action", 450, 500)])
    assert harvest._parallel_ms(rec) == 350.0
    assert harvest._parallel_ms(dag_record([("action", 0, 10)])) == 0.0


def test_a_harvest_run_counts_plans_origins_and_failures_in_input_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harvest, "NodeUtilisation", FakeNode)
    plan = {"applied": True, "allocations": {"a": {"origin": "harvest"}, "b": {"origin": "user"}}}
    client = FakeClient(
        [
            (200, {**dag_record([("parallel", 0, 300)], harvest=plan), "duration": 900}),
            (502, {"error": "boom"}),
            (200, {**dag_record([("parallel", 0, 100)], harvest={"applied": False}), "duration": 400}),
        ]
    )
    run = harvest.run_mode(client, "d", inputs(tmp_path, 3), True, Settings(), False)  # type: ignore[arg-type]
    assert run.mode == "on" and run.failed == 1 and run.applied == 1
    assert run.latency_ms[0] == 900.0 and math.isnan(run.latency_ms[1]) and run.latency_ms[2] == 400.0
    assert run.stage_ms[0] == 300.0 and math.isnan(run.stage_ms[1]) and run.stage_ms[2] == 100.0
    assert run.origins == {"harvest": 1, "user": 1}
    assert run.utilisation is not None
    assert [(p, body, params) for _, p, body, params in client.asked] == [
        ("/dags/d", {"i": i}, {"blocking": "true", "harvest": "true"}) for i in range(3)
    ]
    assert harvest._finite(run.latency_ms) == [900.0, 400.0]


def test_a_harvest_off_run_asks_for_harvest_false(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harvest, "NodeUtilisation", FakeNode)
    client = FakeClient([(200, dag_record([("parallel", 0, 1)]))])
    run = harvest.run_mode(client, "d", inputs(tmp_path, 1), False, Settings(), False)  # type: ignore[arg-type]
    assert run.mode == "off" and run.applied == 0 and run.origins == {}
    assert client.asked[0][3] == {"blocking": "true", "harvest": "false"}
