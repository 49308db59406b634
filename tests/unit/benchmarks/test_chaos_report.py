"""``gleaner bench chaos``'s verdict and report (pure parts of benchmarks/chaos.py)."""

from __future__ import annotations

import dataclasses

import pytest

from benchmarks.chaos import ChaosResult, expected, median, render, summary


def clean(fault: str = "none", requests: int = 10, **kw: object) -> ChaosResult:
    result = ChaosResult(fault, requests, completed=requests, correct=requests)
    return dataclasses.replace(result, **kw)  # type: ignore[arg-type]


def test_the_dag_computes_five_times_n_plus_one() -> None:
    # head: n + 1; left: 2x, right: 3x; tail sums them.
    assert [expected(n) for n in (0, 1, 7)] == [5, 10, 40]


@pytest.mark.parametrize(
    "fault",
    [
        {"correct": 9},  # one wrong or missing answer
        {"duplicates": 1},  # a function finished twice
        {"missing_records": 1},
        {"uncounted": 1},  # a finished run the counter never heard of
    ],
)
def test_a_run_is_ok_only_when_every_answer_is_right_once_and_recorded(fault: dict[str, int]) -> None:
    assert clean().ok
    assert not dataclasses.replace(clean(), **fault).ok  # type: ignore[arg-type]


def test_completion_is_a_percentage_of_the_requests() -> None:
    assert clean(completed=7).completion_pct == pytest.approx(70.0)
    assert ChaosResult("none", 0).completion_pct == 0.0  # no requests: nothing completed, no division


def test_median_of_nothing_is_zero() -> None:
    assert median([]) == 0.0
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5


def test_the_summary_has_one_row_per_fault_under_its_header() -> None:
    results = [
        clean(median_latency_s=1.26, worst_latency_s=3.0),
        clean(
            "kill placement",
            completed=9,
            correct=9,
            lost=1,
            duplicates=2,
            missing_records=3,
            stall_s=4.44,
            recovery_s=2.06,
            median_latency_s=1.5,
            worst_latency_s=12.0,
        ),
    ]
    header, rule, *rows = summary(results).splitlines()
    assert header.count("|") == rule.count("|") == 11  # ten columns
    assert rows == [
        "| none | 10 | 100 % | 10 | 0 | 0 | 0 | 0.0 | - | 1.3 / 3.0 |",  # no fault: no recovery
        "| kill placement | 10 | 90 % | 9 | 1 | 2 | 3 | 4.4 | 2.1 | 1.5 / 12.0 |",
    ]


def test_the_report_names_the_worst_recovery_among_the_faults() -> None:
    results = [
        clean(recovery_s=99.0),  # the run without a fault does not count
        clean("kill gateway", recovery_s=3.25),
        clean("freeze redis", recovery_s=None),  # no result after the fault's end: left out
        clean("kill invoker0", recovery_s=7.5),
    ]
    text = render(results, requests=10, rate=2.5)
    assert text.startswith("## Faults during a DAG replay (chaos)\n")
    assert "10 requests of `head -> parallel(left, right) -> tail` produced at 2.5/s" in text
    assert summary(results) in text and "| freeze redis | 10 | 100 % | 10 | 0 | 0 | 0 | 0.0 | - |" in text
    assert text.endswith("Worst fault-end-to-next-result here: 7.5 s.")


def test_a_report_without_faults_has_no_recovery_to_name() -> None:
    assert render([clean()], requests=10, rate=1.0).endswith("here: 0.0 s.")
