"""Issue 8's verdict (benchmarks/evaluation/verdict.py), from hand-made runs with
hand-computed figures: the cells against the baseline, who won where, each target met
or missed, and how often each live change happened."""

from __future__ import annotations

import math

import pytest

from benchmarks.evaluation import verdict as v
from benchmarks.evaluation.results import DagEvaluation, LoadResult, PolicyRun
from streams.replay.outcomes import FAILED, FunctionOutcome
from tests.unit.benchmarks.test_evaluation_report import dag_evaluation, outcome, row, run, utilisation


def _runs(policy: str, latencies: list[float | None], scale: float = 1.0) -> PolicyRun:
    return PolicyRun(
        policy, run(policy, [outcome(policy, i, ms) for i, ms in enumerate(latencies)]), utilisation(scale)
    )


def _load(load: str, *runs: PolicyRun) -> LoadResult:
    return LoadResult(row(load, 1.0, 0.5, 30), list(runs))


def _ev(*loads: LoadResult, dag: str = "demo") -> DagEvaluation:
    ev = dag_evaluation(list(loads), [r.policy for r in loads[0].runs])
    ev.dag = dag
    return ev


def _row(lines: list[str], *cells: str) -> str:
    prefix = "| " + " | ".join(cells) + " |"
    found = [line for line in lines if line.startswith(prefix)]
    assert len(found) == 1, f"{len(found)} rows start with {prefix!r} in {lines}"
    return found[0]


def test_fmt_says_n_a_for_what_could_not_be_measured() -> None:
    assert v.fmt(math.nan) == "n/a"
    assert v.fmt(0.123456) == "0.12"
    assert v.fmt(41.6, ".0f") == "42"
    assert v.met(True) == "yes" and v.met(False) == "**no**"


def test_a_cell_per_policy_and_load_against_that_loads_baseline() -> None:
    # off 1000/1000 ms at 1 core, gleaner 400/600 ms at 3 cores of 4:
    # speedups 0.6 and 0.4, P99 600 / 1000, utilisation 3x.
    ev = _ev(
        _load("low", _runs("off", [1000, 1000], 1.0), _runs("gleaner", [400, 600], 3.0)),
        _load("medium", _runs("off", [2000, 2000], 1.0), _runs("gleaner", [2000, 3000], 1.0)),
    )
    low, medium = v.cells(ev)
    assert (low.load, low.policy, medium.load, medium.policy) == ("low", "gleaner", "medium", "gleaner")
    assert low.speedup.n == 2 and math.isclose(low.speedup.mean, 0.5) and math.isclose(low.speedup.min, 0.4)
    assert math.isclose(low.p99_ratio, 0.598)  # P99 of [400, 600] is 598 ms
    assert math.isclose(low.util_ratio, 3.0)
    assert math.isclose(medium.speedup.min, -0.5) and math.isclose(medium.p99_ratio, 2990 / 2000)


def test_a_baseline_that_never_finished_or_used_nothing_gives_ratios_of_n_a() -> None:
    ev = _ev(_load("low", _runs("off", [None, None], 0.0), _runs("gleaner", [400, 600], 3.0)))
    (cell,) = v.cells(ev)
    assert cell.speedup.n == 0 and math.isnan(cell.speedup.mean)
    assert math.isnan(cell.p99_ratio)  # no finished baseline request: no P99 to divide by
    assert math.isnan(cell.util_ratio)  # a baseline at 0 cores: no ratio
    assert "| mean speedup >= 0.6 | low | n/a | **no** |" in v.targets_table(ev)


def test_the_winners_are_the_best_mean_and_the_best_min_and_gleaner_is_checked_against_its_rivals() -> None:
    # speedups vs off (1000, 1000): thesis 0.5/0.1 (mean 0.3, min 0.1), libra 0.2/0.2 (0.2, 0.2),
    # gleaner 0.7/0.0 (0.35, 0.0): gleaner has the best mean, libra the best min.
    ev = _ev(
        _load(
            "low",
            _runs("off", [1000, 1000]),
            _runs("thesis", [500, 900]),
            _runs("libra", [800, 800]),
            _runs("gleaner", [300, 1000]),
        )
    )
    table = v.winners_table(ev)
    assert _row(table, "low") == "| low | gleaner (0.35) | libra (0.20) | yes | **no** |"


def test_a_load_where_nothing_paired_or_gleaner_has_no_rival_says_n_a() -> None:
    ev = _ev(
        _load("low", _runs("off", [None]), _runs("gleaner", [500])),
        _load("high", _runs("off", [1000]), _runs("gleaner", [500])),
    )
    table = v.winners_table(ev)
    assert _row(table, "low") == "| low | n/a | n/a | n/a | n/a |"
    # gleaner alone: it is the best, and there is nobody to beat.
    assert _row(table, "high") == "| high | gleaner (0.50) | gleaner (0.50) | n/a | n/a |"


def test_a_policy_that_was_not_run_has_no_targets() -> None:
    ev = _ev(_load("low", _runs("off", [1000]), _runs("thesis", [500])))
    assert v.targets_table(ev) == ["Policy `gleaner` was not run."]
    assert _row(v.targets_table(ev, "thesis"), "mean speedup >= 0.6", "low") == (
        "| mean speedup >= 0.6 | low | 0.50 | **no** |"
    )


def test_each_target_is_met_or_missed_at_its_own_load() -> None:
    # low: speedups 0.7, 0.7 (mean and min met), utilisation 3.5 / 1 (met);
    # medium: speedups 0.5, -0.1 (both missed), P99 1094 of 1000 (9 % higher: missed).
    ev = _ev(
        _load("low", _runs("off", [1000, 1000], 1.0), _runs("gleaner", [300, 300], 3.5)),
        _load("medium", _runs("off", [1000, 1000], 1.0), _runs("gleaner", [500, 1100], 1.0)),
    )
    table = v.targets_table(ev)
    assert _row(table, "mean speedup >= 0.6", "low").endswith("| 0.70 | yes |")
    assert _row(table, "min speedup >= -0.05", "low").endswith("| 0.70 | yes |")
    assert (
        _row(table, "CPU utilisation >= 3x off", "low") == "| CPU utilisation >= 3x off | low | 3.50x | yes |"
    )
    assert _row(table, "mean speedup >= 0.6", "medium").endswith("| 0.20 | **no** |")
    assert _row(table, "min speedup >= -0.05", "medium").endswith("| -0.10 | **no** |")
    p99 = _row(table, "P99 >= 60% lower", "medium")
    assert p99 == "| P99 >= 60% lower | medium | -9 % lower | **no** |"
    # The P99 target is only read at medium load, the utilisation one only at low load.
    assert not [line for line in table if line.startswith("| P99") and "| low |" in line]
    assert not [line for line in table if line.startswith("| CPU") and "| medium |" in line]
    assert not [line for line in table if line.startswith("| video")]


def test_a_p99_sixty_percent_lower_at_medium_load_is_met() -> None:
    ev = _ev(_load("medium", _runs("off", [1000, 1000]), _runs("gleaner", [300, 300])))
    assert _row(v.targets_table(ev), "P99 >= 60% lower", "medium").endswith("| 70 % lower | yes |")


def test_a_video_dag_also_has_the_video_mean_target() -> None:
    loads = (_load("low", _runs("off", [1000, 1000]), _runs("gleaner", [600, 700])),)
    table = v.targets_table(_ev(*loads, dag="video-analytics"))
    assert _row(table, "video mean >= 0.3", "low") == "| video mean >= 0.3 | low | 0.35 | yes |"
    assert not [line for line in v.targets_table(_ev(*loads)) if line.startswith("| video")]


def _function(
    changes: str = "", *, origin: str = "harvest", cpu: float = 1.0, planned: float = 1.0, rerun: bool = False
) -> FunctionOutcome:
    return FunctionOutcome(
        request_id="r",
        activation_id="a",
        action="f",
        stage=1,
        index=0,
        status_code=0,
        wait_ms=0.0,
        duration_ms=100.0,
        cold=False,
        cpu=cpu,
        memory_mb=256.0,
        user_cpu=1.0,
        user_memory_mb=256.0,
        origin=origin,
        predicted_cpu=1.0,
        peak_cpu=1.0,
        peak_memory_mb=100.0,
        planned_cpu=planned,
        changes=changes,
        rerun=rerun,
    )


def test_live_changes_are_counted_per_reason_with_start_now_from_a_start_below_the_plan() -> None:
    gleaner = _runs("gleaner", [500, 600])
    first, second = gleaner.run.outcomes
    first.functions = [
        _function("grow;grow;lent"),
        _function("take-back", cpu=0.5, planned=1.0),  # started below its plan: start-now
        _function("", origin="", cpu=0.5, planned=1.0),  # no origin (never planned): not counted
    ]
    second.functions = [_function("reclaim;unknown-reason", rerun=True)]
    second.status = FAILED  # a failed request's functions changed too, and count
    ev = _ev(_load("low", _runs("off", [1000, 1000]), gleaner))
    table = v.live_changes_table(ev)
    header = table[0].split(" | ")
    assert header[3:-1] == list(v.LIVE_REASONS)
    assert table[1].count("---") == len(header)
    assert (
        _row(table, "low", "off") == "| low | off | 0 | " + " | ".join(["0"] * len(v.LIVE_REASONS)) + " | 0 |"
    )
    counts = dict(zip(v.LIVE_REASONS, _row(table, "low", "gleaner").split(" | ")[3:-1], strict=True))
    assert counts == {
        **dict.fromkeys(v.LIVE_REASONS, "0"),
        "grow": "2",
        "lent": "1",
        "take-back": "1",
        "start-now": "1",
        "reclaim": "1",
    }
    assert _row(table, "low", "gleaner").startswith("| low | gleaner | 4 |")
    assert _row(table, "low", "gleaner").endswith("| 1 |")  # one OOM re-run


@pytest.mark.parametrize("load", ["low", "medium", "high"])
def test_every_load_has_one_winners_row(load: str) -> None:
    ev = _ev(_load(load, _runs("off", [1000]), _runs("gleaner", [900])))
    assert len([line for line in v.winners_table(ev) if line.startswith(f"| {load} |")]) == 1
