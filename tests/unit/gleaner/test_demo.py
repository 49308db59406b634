"""The pure parts of ``make demo``: step planning, the requests' input sizes, the
speedup and its table, the timing summary; and the demo DAG's functions run
locally end to end (split -> checksums -> merge)."""

from __future__ import annotations

import math
import runpy
from pathlib import Path

import orjson
import pytest

from gleaner.cli.demo import _stage_cpu
from gleaner.cli.demo_report import (
    MIN_PROFILE_INPUTS,
    Pair,
    plan_steps,
    run_sizes,
    speedup,
    speedup_table,
    timing_table,
)
from gleaner.errors import GleanerError
from workloads.demo.workload import DEMO_SKEW, MAX_BYTES, MIN_BYTES, generate_inputs, inputs_of_sizes


def test_the_steps_run_in_the_mission_order_and_say_their_counts():
    steps = plan_steps(20, 5)
    assert [s.key for s in steps] == ["stack", "deploy", "profile", "train", "off", "on", "timeline"]
    assert "20 inputs" in steps[2].title and "5 requests" in steps[4].title
    assert plan_steps(20, 5, stack=False)[0].key == "deploy"


@pytest.mark.parametrize(
    ("profile", "runs"), [(MIN_PROFILE_INPUTS - 1, 5), (0, 5), (20, 0), (20, 21), (201, 5)]
)
def test_counts_that_cannot_make_a_demo_are_refused_with_a_reason(profile, runs):
    with pytest.raises(GleanerError, match="demo"):
        plan_steps(profile, runs)


def test_run_sizes_spread_over_the_upper_range_and_end_at_the_largest():
    sizes = run_sizes(5, 8_000, 120_000)
    assert sizes == sorted(sizes) and len(set(sizes)) == 5
    assert sizes[0] == 30_000 and sizes[-1] == 120_000
    assert run_sizes(1, 8_000, 120_000) == [120_000]
    assert run_sizes(3, 100, 120) == [100, 110, 120]  # a quarter of high is below low: start at low
    with pytest.raises(ValueError):
        run_sizes(0, 1, 2)


def test_speedup_is_the_thesis_definition_and_nan_when_a_side_failed():
    assert speedup(2000, 1000) == 0.5
    assert speedup(1000, 1250) == -0.25  # slower with harvesting: negative
    assert math.isnan(speedup(float("nan"), 1000)) and math.isnan(speedup(1000, float("nan")))
    assert math.isnan(speedup(0, 10))
    assert Pair(1, 4000, 1000).speedup == 0.75


def test_the_speedup_table_has_a_row_per_request_and_a_mean_over_the_requests_that_ran_both_ways():
    table = speedup_table(
        [Pair(30_000, 2000, 1000), Pair(60_000, float("nan"), 900), Pair(120_000, 4000, 3000)]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["request", "input", "harvest", "off", "harvest", "on", "speedup"]
    assert lines[2].split() == ["1", "30", "KB", "2,000", "ms", "1,000", "ms", "+0.50"]
    assert lines[3].split()[-2:] == ["ms", "-"] and "failed" in lines[3]
    assert lines[-1].split() == ["mean", "3,000", "ms", "2,000", "ms", "+0.38"]  # (0.5 + 0.25) / 2
    assert len({len(line.rstrip()) for line in lines if line.startswith("-")}) == 1


def test_a_table_where_nothing_ran_both_ways_has_no_mean():
    table = speedup_table([Pair(1_000, float("nan"), float("nan"))])
    assert "mean" not in table and "failed" in table


def test_the_timing_table_ends_with_the_total():
    lines = timing_table([("stack", 10.0), ("profile", 20.5)]).splitlines()
    assert lines[0].split() == ["stack", "10.0", "s"] and lines[-1].split() == ["total", "30.5", "s"]
    measured = timing_table([("stack", 10.0)], total_s=12.34).splitlines()  # time between steps counts
    assert measured[-1].split() == ["total", "12.3", "s"]


def test_the_stage_cores_come_from_the_plan_in_slot_order():
    record = {
        "gleaner": {
            "harvest": {"allocations": {"1.2": {"cpu": 0.75}, "1.0": {"cpu": 0.25}, "1.1": {"cpu": 0.5}}}
        }
    }
    assert _stage_cpu(record) == "0.25/0.5/0.75"
    assert _stage_cpu(None) == "-" and _stage_cpu({"gleaner": {}}) == "-"


def test_the_demo_dag_is_mis_provisioned_so_harvesting_has_something_to_move():
    cpu = {f.name: f.cpu for f in DEMO_SKEW.functions}
    assert cpu["demo-checksum1"] > cpu["demo-checksum2"] > cpu["demo-checksum3"]  # straggler gets least
    assert sum(cpu[f"demo-checksum{i}"] for i in (1, 2, 3)) <= 2.0  # fits a 2-core invoker


def test_inputs_are_reproducible_and_within_the_sizes(tmp_path: Path):
    a = generate_inputs(6, 1, tmp_path / "a")
    b = generate_inputs(6, 1, tmp_path / "b")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert all(MIN_BYTES <= len(orjson.loads(p.read_bytes())["text"]) <= MAX_BYTES for p in a)
    sized = inputs_of_sizes([1_000, 5_000], 3, tmp_path / "c")
    assert [len(orjson.loads(p.read_bytes())["text"]) for p in sized] == [1_000, 5_000]


def _main(name: str):
    return runpy.run_path(str(Path(DEMO_SKEW.function(name).source)))["main"]


def test_the_functions_split_checksum_and_merge_with_the_skew_the_dag_promises():
    text = "word " * 2_000
    split = _main("demo-split")({"text": text})
    assert [len(s) for s in split["segments"]] == [1_500, 3_000, 5_500] and "".join(split["segments"]) == text
    parts = [_main("demo-checksum1")({**split, "segment": i, "rounds": 1}) for i in range(3)]
    assert [p["bytes"] for p in parts] == [1_500, 3_000, 5_500]
    merged = _main("demo-merge")({"value": list(reversed(parts))})
    assert merged["checksums"] == [p["fnv1a"] for p in parts] and merged["bytes"] == [1_500, 3_000, 5_500]


def test_the_functions_answer_bad_input_with_an_error_not_a_crash():
    assert "error" in _main("demo-split")({})
    assert "error" in _main("demo-split")({"text": "x", "fractions": [0, 1]})
    assert "error" in _main("demo-checksum1")({"segments": ["a"], "segment": 3})
    assert "error" in _main("demo-merge")({"value": []})
    assert "error" in _main("demo-merge")({"value": [{"segment": 0}]})


def test_gleaner_up_refuses_bad_demo_counts_before_starting_anything(capsys):
    from gleaner.cli.main import main

    assert main(["up", "--demo", "--demo-profile", "2"]) == 1
    assert "the demo profiles 5 to 200 inputs" in capsys.readouterr().err
