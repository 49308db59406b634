"""The placement comparison's aggregation, from hand-built runs with hand-computed figures."""

from __future__ import annotations

import math

import pytest

from benchmarks.evaluation.placement_report import (
    PlacementEvaluation,
    SlotRun,
    completion_span_s,
    plot,
    section,
    shares,
    summarise,
    table,
)
from streams.replay.arrivals import rate_table
from streams.replay.outcomes import FAILED, SUCCESS, FunctionOutcome, RequestOutcome

POLICIES = ["greedy-jsq", "hash"]


def fn(aid: str) -> FunctionOutcome:
    nan = math.nan
    return FunctionOutcome("r", aid, "f", 0, None, 0, 1.0, 1.0, False, 1, 128, 1, 128, "user", nan, nan, nan)


def outcome(
    seq: int, sent_s: float, latency_s: float | None, status: str = SUCCESS, fns=()
) -> RequestOutcome:
    o = RequestOutcome(seq, f"r{seq}", "d", "thesis", f"{seq}.json", 10, sent_s, sent_s=sent_s)
    if latency_s is not None:
        o.status, o.latency_ms = status, latency_s * 1000
    o.functions = [fn(a) for a in fns]
    return o


def slots() -> list[SlotRun]:
    # greedy-jsq: two rounds, every request on one invoker; hash: one request split, one failed.
    return [
        SlotRun(
            "medium",
            0,
            "greedy-jsq",
            [outcome(0, 0.0, 2.0, fns=["a", "b"]), outcome(1, 1.0, 4.0, fns=["c", "d"])],
            {"a": "invoker0", "b": "invoker0", "c": "invoker1", "d": "invoker1"},
        ),
        SlotRun("medium", 1, "greedy-jsq", [outcome(2, 0.0, 6.0, fns=["e"])], {"e": "invoker0"}),
        SlotRun(
            "medium",
            0,
            "hash",
            [outcome(0, 0.0, 3.0, fns=["a", "b"]), outcome(1, 1.0, 5.0, FAILED, fns=["c"])],
            {"a": "invoker0", "b": "invoker1", "c": "invoker1"},
        ),
        SlotRun("medium", 1, "hash", [outcome(2, 0.0, None)], {}),
    ]


def test_completion_runs_from_the_first_send_to_the_last_answer():
    assert completion_span_s([outcome(0, 0.0, 2.0), outcome(1, 1.0, 4.0)]) == 5.0
    assert math.isnan(completion_span_s([outcome(0, 0.0, 2.0), outcome(1, 1.0, None)]))
    assert math.isnan(completion_span_s([]))


def test_summaries_count_latency_failures_and_where_activations_ran():
    base, other = summarise(slots(), POLICIES, ["medium"])
    assert (base.requests, base.ok, base.failed, base.unfinished) == (3, 3, 0, 0)
    assert base.mean_s == pytest.approx(4.0) and base.p50_s == pytest.approx(4.0)
    assert base.p99_s == pytest.approx(5.96)
    assert base.completion_s == pytest.approx(5.0 + 6.0)
    assert base.activations == {"invoker0": 3, "invoker1": 2}
    assert base.one_invoker == 1.0
    assert (other.requests, other.ok, other.failed, other.unfinished) == (3, 1, 1, 1)
    assert other.mean_s == pytest.approx(3.0)
    assert math.isnan(other.completion_s)  # a round never finished
    assert other.activations == {"invoker0": 1, "invoker1": 2}
    assert other.one_invoker == 0.0  # its one success was split over both invokers


def test_shares_name_every_invoker_even_an_idle_one():
    assert shares({"invoker0": 3, "invoker1": 1}, ["invoker0", "invoker1"]) == "invoker0 75 % / invoker1 25 %"
    assert shares({"invoker1": 2}, ["invoker0", "invoker1"]) == "invoker0 0 % / invoker1 100 %"
    assert shares({}, ["invoker0"]) == "n/a"


def test_the_table_puts_the_ratio_to_the_baseline_beside_each_figure():
    rows = table(summarise(slots(), POLICIES, ["medium"]), ["invoker0", "invoker1"])
    base, other = rows[2], rows[3]
    assert "| greedy-jsq | 3 | 3 | 0 | 0 | 4.00 | 4.00 | 5.96 | 11.0 |" in base
    assert "| hash | 3 | 1 | 1 | 1 | 3.00 (0.75x) | 3.00 (0.75x) | 3.00 (0.50x) | n/a |" in other
    assert other.endswith("| invoker0 33 % / invoker1 67 % | 0 % |")


def evaluation() -> PlacementEvaluation:
    return PlacementEvaluation(
        dag="d",
        harvest_policy="thesis",
        policies=POLICIES,
        rows=[r for r in rate_table(2.0, 2.0, 3) if r.load == "medium"],
        requests=3,
        rounds=2,
        orders=["medium 1: greedy-jsq, hash", "medium 2: hash, greedy-jsq"],
        cpu_seconds=2.0,
        capacities={"invoker0": 1.0, "invoker1": 1.0},
        deadline_s=300.0,
        seconds=90.0,
        switch_s=[4.0, 6.0],
        slots=slots(),
        notes=["A note."],
    )


def test_the_section_says_how_it_was_measured_and_lists_what_failed():
    text = section(evaluation(), "eval/img/d-placement.png")
    assert text.startswith("## Placement policies under load, d")
    assert "3 requests per policy and load on 2 invokers (1 + 1 cores; medium: 30.0 req/min" in text
    assert "medium 1: greedy-jsq, hash | medium 2: hash, greedy-jsq" in text
    assert "(mean 5.0 s, not measured)" in text
    assert "![mean and P99 per placement policy](eval/img/d-placement.png)" in text
    assert "- A note." in text
    assert "- medium / hash (round 1): #1 r1 (1.json): failed" in text
    assert "- medium / hash (round 2): #2 r2 (2.json): never finished" in text


def test_the_plot_is_a_png(tmp_path):
    out = plot(evaluation(), tmp_path / "img" / "d-placement.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
