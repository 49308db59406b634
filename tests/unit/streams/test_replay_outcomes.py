"""What a replayed request came to, read off its records, and the CSVs a replay writes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from streams.replay.outcomes import (
    FAILED,
    FUNCTION_COLUMNS,
    REQUEST_COLUMNS,
    SUCCESS,
    TIMEOUT,
    UNFINISHED,
    RequestOutcome,
    function_outcome,
    parallel_stage_ms,
    read_requests_csv,
    settle,
    write_functions_csv,
    write_requests_csv,
)


def child(
    name: str,
    stage: int | None,
    index: int | None,
    *,
    wait: float | None = 10,
    cold: bool = False,
    cpu: float = 1.0,
    origin: str = "user",
) -> dict[str, Any]:
    annotations: list[dict[str, Any]] = [{"key": "path", "value": f"guest/{name}"}]
    if wait is not None:
        annotations.append({"key": "waitTime", "value": wait})
    return {
        "activationId": f"id-{name}",
        "name": name,
        "duration": 120,
        "statusCode": 0,
        "annotations": annotations,
        "gleaner": {
            "allocation": {"cpu": cpu, "memory": 512},
            "user_allocation": {"cpu": 1.0, "memory": 256},
            "origin": origin,
            "stage": stage,
            "index": index,
            "cold": cold,
            "measured": {"peak_cpu": 0.8, "peak_memory": 300},
        },
    }


def dag(
    *,
    code: int = 0,
    status: str = "success",
    result: Any = None,
    stages: list[dict[str, Any]] | None = None,
    applied: bool = True,
) -> dict[str, Any]:
    return {
        "activationId": "r1",
        "duration": 900,
        "statusCode": code,
        "response": {"result": {} if result is None else result},
        "logs": [],
        "gleaner": {
            "dag": {"status": status, "stages": stages or []},
            "harvest": {"applied": applied},
        },
    }


def outcome(seq: int = 0, sent_s: float = 1.0) -> RequestOutcome:
    return RequestOutcome(
        seq=seq,
        request_id=f"r{seq}",
        dag="demo",
        policy="thesis",
        input=f"in{seq}.json",
        input_size=2048,
        scheduled_s=0.5,
        sent_s=sent_s,
    )


# --- function_outcome --------------------------------------------------------------------------


def test_function_outcome_reads_every_field():
    rec = child("work1", 1, 2, wait=35, cold=True, cpu=2.5, origin="harvest")
    rec["gleaner"]["predicted"] = {"cpu": 2.25}
    f = function_outcome("r1", rec)

    assert (f.request_id, f.activation_id, f.action) == ("r1", "id-work1", "work1")
    assert (f.stage, f.index, f.status_code) == (1, 2, 0)
    assert (f.wait_ms, f.duration_ms, f.cold) == (35, 120, True)
    assert (f.cpu, f.memory_mb, f.user_cpu, f.user_memory_mb) == (2.5, 512, 1.0, 256)
    assert (f.origin, f.predicted_cpu, f.peak_cpu, f.peak_memory_mb) == ("harvest", 2.25, 0.8, 300)


def test_function_outcome_of_a_bare_record_has_defaults():
    f = function_outcome("r1", {})
    assert (f.activation_id, f.action, f.origin) == ("", "", "")
    assert f.stage is None and f.index is None
    assert f.status_code == 3  # no status: counted as an internal error
    assert f.cold is False
    for value in (f.wait_ms, f.duration_ms, f.cpu, f.memory_mb, f.predicted_cpu, f.peak_cpu):
        assert math.isnan(value)


def test_function_outcome_does_not_take_booleans_or_strings_for_numbers():
    rec = {"duration": True, "statusCode": "0", "gleaner": {"allocation": {"cpu": "2"}}}
    f = function_outcome("r1", rec)
    assert math.isnan(f.duration_ms) and math.isnan(f.cpu)
    assert f.status_code == 3


# --- parallel_stage_ms -------------------------------------------------------------------------


def test_parallel_stage_ms_sums_parallel_and_map_stages():
    stages = [
        {"index": 0, "kind": "action", "start": 0, "end": 100},
        {"index": 1, "kind": "parallel", "start": 100, "end": 350},
        {"index": 2, "kind": "action", "start": 350, "end": 400},
        {"index": 3, "kind": "map", "start": 400, "end": 450},
    ]
    assert parallel_stage_ms(dag(stages=stages)) == 300.0


def test_parallel_stage_ms_skips_stages_that_did_not_end():
    stages = [
        {"index": 1, "kind": "parallel", "start": 100, "end": 300},
        {"index": 2, "kind": "map", "start": 300, "end": None},
    ]
    assert parallel_stage_ms(dag(stages=stages)) == 200.0


@pytest.mark.parametrize(
    "record",
    [
        dag(stages=[{"index": 0, "kind": "action", "start": 0, "end": 100}]),
        dag(stages=[]),
        dag(stages=[{"index": 1, "kind": "parallel", "start": 100, "end": None}]),
        {},
    ],
    ids=["only-actions", "no-stages", "unfinished-parallel", "no-gleaner"],
)
def test_parallel_stage_ms_is_nan_without_a_parallel_stage(record):
    assert math.isnan(parallel_stage_ms(record))


# --- settle ------------------------------------------------------------------------------------


def test_settle_a_success():
    stages = [{"index": 1, "kind": "parallel", "start": 1_000, "end": 1_600}]
    children = [
        child("b", 1, 1, wait=30, cold=True, cpu=2, origin="harvest"),
        child("a", 1, 0, wait=10, cold=False, cpu=0.5, origin="user"),
        child("first", 0, 0, wait=5, cold=True, cpu=1, origin="user"),
    ]
    o = settle(outcome(sent_s=1.0), dag(stages=stages), children, received_s=3.5, result_success=True)

    assert o.status == SUCCESS and o.succeeded and o.finished
    assert o.status_code == 0 and o.error == ""
    assert o.latency_ms == 2500.0
    assert o.dag_duration_ms == 900
    assert o.parallel_stage_ms == 600
    assert o.harvest_applied is True
    assert [f.action for f in o.functions] == ["first", "a", "b"]  # by (stage, index)
    assert (o.wait_ms_total, o.wait_ms_max, o.cold_starts) == (45, 30, 2)
    assert o.allocations == "first=1/512/user;a=0.5/512/user;b=2/512/harvest"


def test_settle_a_failure_takes_the_error_from_the_record():
    record = dag(code=2, status="failed", result={"error": "boom"})
    o = settle(outcome(), record, [], received_s=2.0, result_success=False)
    assert o.status == FAILED and not o.succeeded and o.finished
    assert (o.status_code, o.error) == (2, "boom")


def test_settle_truncates_a_long_error():
    record = dag(code=2, status="failed", result={"error": "x" * 500})
    o = settle(outcome(), record, [], received_s=2.0, result_success=False)
    assert o.error == "x" * 200


def test_settle_failure_without_an_error_names_the_status():
    o = settle(outcome(), dag(code=2, status="failed"), [], received_s=2.0, result_success=False)
    assert (o.status, o.error) == (FAILED, "failed")


def test_settle_timeout_wins_over_everything():
    o = settle(outcome(), dag(code=0, status="timeout"), [], received_s=2.0, result_success=True)
    assert o.status == TIMEOUT and o.finished and not o.succeeded
    assert o.error == "timeout"


@pytest.mark.parametrize(
    ("code", "result_success", "status"),
    [
        (0, None, SUCCESS),  # no dag.result: the record's statusCode decides
        (1, None, FAILED),
        (2, None, FAILED),
        (2, True, SUCCESS),  # the dag.result decides when there is one
        (0, False, FAILED),
    ],
)
def test_settle_result_success_falls_back_to_the_status_code(code, result_success, status):
    o = settle(outcome(), dag(code=code, status=""), [], received_s=2.0, result_success=result_success)
    assert o.status == status
    assert o.status_code == code


def test_settle_without_children_leaves_waits_nan():
    o = settle(outcome(), dag(applied=False), [], received_s=2.0, result_success=True)
    assert math.isnan(o.wait_ms_total) and math.isnan(o.wait_ms_max)
    assert (o.cold_starts, o.allocations, o.functions, o.harvest_applied) == (0, "", [], False)
    assert math.isnan(o.parallel_stage_ms)


def test_settle_ignores_missing_wait_times():
    children = [child("a", 1, 0, wait=None), child("b", 1, 1, wait=25)]
    o = settle(outcome(), dag(), children, received_s=2.0, result_success=True)
    assert (o.wait_ms_total, o.wait_ms_max) == (25, 25)


def test_an_outcome_starts_unfinished():
    o = outcome()
    assert o.status == UNFINISHED and not o.finished and not o.succeeded
    assert math.isnan(o.latency_ms)


# --- CSVs --------------------------------------------------------------------------------------


def _settled() -> list[RequestOutcome]:
    stages = [{"index": 1, "kind": "parallel", "start": 0, "end": 250}]
    ok = settle(
        outcome(0, sent_s=0.25),
        dag(stages=stages),
        [child("a", 1, 0, wait=12, cold=True), child("b", 1, 1, wait=8, cpu=1.5, origin="harvest")],
        received_s=1.48456789,
        result_success=True,
    )
    failed = dag(code=2, status="failed", result={"error": "boom"})
    bad = settle(outcome(1), failed, [], received_s=2.0, result_success=False)
    never = outcome(2, sent_s=math.nan)  # never sent nor answered: every measurement NaN
    return [ok, bad, never]


def test_requests_csv_round_trip(tmp_path: Path):
    path = write_requests_csv(tmp_path / "deep" / "off-requests.csv", _settled())
    assert path == tmp_path / "deep" / "off-requests.csv"
    rows = read_requests_csv(path)

    assert len(rows) == 3
    assert list(rows[0]) == REQUEST_COLUMNS and "functions" not in rows[0]
    ok, bad, never = rows
    assert (ok["seq"], ok["request_id"], ok["status"], ok["status_code"]) == ("0", "r0", SUCCESS, "0")
    assert float(ok["latency_ms"]) == 1234.568  # settle rounds to 3 decimals
    assert float(ok["parallel_stage_ms"]) == 250.0
    assert (ok["wait_ms_total"], ok["cold_starts"], ok["harvest_applied"]) == ("20.0", "1", "True")
    assert ok["allocations"] == "a=1/512/user;b=1.5/512/harvest"
    assert (bad["status"], bad["error"]) == (FAILED, "boom")
    assert never["status"] == UNFINISHED
    for column in ("sent_s", "latency_ms", "dag_duration_ms", "parallel_stage_ms", "wait_ms_total"):
        assert never[column] == ""  # NaN is an empty cell
    assert bad["parallel_stage_ms"] == "" and bad["wait_ms_max"] == ""


def test_floats_are_rounded_to_four_decimals(tmp_path: Path):
    o = outcome(sent_s=1.23456789)
    rows = read_requests_csv(write_requests_csv(tmp_path / "r.csv", [o]))
    assert rows[0]["sent_s"] == "1.2346"


def test_functions_csv_has_one_row_per_function(tmp_path: Path):
    path = write_functions_csv(tmp_path / "sub" / "off-functions.csv", _settled())
    rows = read_requests_csv(path)  # any CSV with a header row

    assert len(rows) == 2  # two functions of the first request, none of the others
    assert list(rows[0]) == FUNCTION_COLUMNS
    assert [(r["request_id"], r["action"], r["index"]) for r in rows] == [("r0", "a", "0"), ("r0", "b", "1")]
    assert (rows[0]["cold"], rows[1]["origin"], rows[1]["cpu"]) == ("True", "harvest", "1.5")
    assert rows[0]["predicted_cpu"] == ""  # nothing predicted: NaN, written empty


def test_empty_outcomes_write_only_the_header(tmp_path: Path):
    assert read_requests_csv(write_requests_csv(tmp_path / "r.csv", [])) == []
    assert (tmp_path / "r.csv").read_text().strip() == ",".join(REQUEST_COLUMNS)
    assert read_requests_csv(write_functions_csv(tmp_path / "f.csv", [])) == []
