"""Evaluation arithmetic against hand-computed values (thesis chapter 4)."""

from __future__ import annotations

import math

import pytest

from benchmarks import report
from monitor.evaluation import (
    THESIS_SPEEDUP,
    THESIS_UTILISATION,
    LatencySummary,
    SpeedupSummary,
    ecdf,
    mean_utilisation,
    paired_speedups,
    percentile,
    speedup,
)

NAN = float("nan")


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0, 1.0),
        (50, 2.5),  # k = 1.5: halfway between 2 and 3
        (99, 3.97),  # k = 2.97: 3 + 0.97 * (4 - 3)
        (100, 4.0),
        (25, 1.75),  # k = 0.75
    ],
)
def test_percentile_interpolates_between_closest_ranks(q: float, expected: float) -> None:
    assert percentile([4.0, 2.0, 1.0, 3.0], q) == pytest.approx(expected)


def test_percentile_of_one_value_and_of_none() -> None:
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    assert math.isnan(percentile([NAN, NAN], 50))


def test_percentile_ignores_nan() -> None:
    assert percentile([1.0, NAN, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentile_rejects_q_outside_0_100(q: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        percentile([1.0, 2.0], q)


def test_report_percentile_is_the_same_function() -> None:
    assert report.percentile is percentile


def test_speedup_faster_and_slower() -> None:
    assert speedup(10, 4) == pytest.approx(0.6)
    assert speedup(4, 10) == pytest.approx(-1.5)
    assert speedup(5, 5) == 0.0


@pytest.mark.parametrize("off", [0.0, -1.0, NAN])
def test_speedup_needs_a_positive_baseline(off: float) -> None:
    with pytest.raises(ValueError, match="positive baseline"):
        speedup(off, 1.0)


def test_paired_speedups_skips_unpaired_failed_and_zero_baselines() -> None:
    off: dict[str, float | None] = {
        "b": 10.0,
        "a": 4.0,
        "only-off": 3.0,
        "on-none": 2.0,
        "off-none": None,
        "on-nan": 5.0,
        "off-nan": NAN,
        "zero": 0.0,
        "inf": 6.0,
    }
    on: dict[str, float | None] = {
        "a": 10.0,
        "b": 4.0,
        "only-on": 1.0,
        "on-none": None,
        "off-none": 1.0,
        "on-nan": NAN,
        "off-nan": 1.0,
        "zero": 1.0,
        "inf": math.inf,
    }
    got = paired_speedups(off, on)
    assert list(got) == ["b", "a"]  # the order of `off`
    assert got["b"] == pytest.approx(0.6)
    assert got["a"] == pytest.approx(-1.5)


def test_paired_speedups_of_nothing() -> None:
    assert paired_speedups({}, {"a": 1.0}) == {}


def test_ecdf_sorts_and_steps_by_one_over_n() -> None:
    xs, ys = ecdf([3.0, 1.0, 2.0])
    assert xs == [1.0, 2.0, 3.0]
    assert ys == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_ecdf_drops_nan_and_handles_empty() -> None:
    assert ecdf([2.0, NAN, 1.0]) == ([1.0, 2.0], [0.5, 1.0])
    assert ecdf([]) == ([], [])


def test_speedup_summary_by_hand() -> None:
    s = SpeedupSummary.from_speedups([0.5, -0.25, 0.1, 0.3])
    assert s.n == 4
    assert s.max == 0.5
    assert s.min == -0.25
    assert s.mean == pytest.approx(0.1625)  # 0.65 / 4
    assert s.median == pytest.approx(0.2)  # (0.1 + 0.3) / 2
    assert s.slower == 1
    assert s.slower_fraction == 0.25


def test_speedup_summary_zero_is_not_slower_and_nan_is_dropped() -> None:
    s = SpeedupSummary.from_speedups([0.0, NAN, -0.5])
    assert (s.n, s.slower, s.slower_fraction) == (2, 1, 0.5)
    assert s.mean == pytest.approx(-0.25)


def test_speedup_summary_of_nothing() -> None:
    s = SpeedupSummary.from_speedups([])
    assert (s.n, s.slower) == (0, 0)
    assert all(math.isnan(v) for v in (s.max, s.min, s.mean, s.median, s.slower_fraction))


def test_latency_summary_counts_none_and_nan_as_failed() -> None:
    s = LatencySummary.of([1.0, None, 2.0, NAN, 3.0, 4.0, None])
    assert (s.n, s.failed) == (4, 3)
    assert s.p50 == pytest.approx(2.5)
    assert s.p99 == pytest.approx(3.97)
    assert s.mean == pytest.approx(2.5)
    assert s.max == 4.0


def test_latency_summary_when_nothing_finished() -> None:
    s = LatencySummary.of([None, NAN])
    assert (s.n, s.failed) == (0, 2)
    assert all(math.isnan(v) for v in (s.p50, s.p99, s.mean, s.max))
    assert LatencySummary.of([]).failed == 0


def test_mean_utilisation_weights_by_time_under_uneven_sampling() -> None:
    # Samples at 1 s, 1.5 s and 4 s: intervals of 1, 0.5 and 2.5 s (the first since 0 s).
    timeline = [(1.0, 2.0, 100.0), (1.5, 4.0, 200.0), (4.0, 1.0, 400.0)]
    cpu, mem = mean_utilisation(timeline, cpu_capacity=4.0, memory_capacity_mb=1000.0)
    # cores: (1*2 + 0.5*4 + 2.5*1) / 4 = 6.5 / 4 = 1.625 -> / 4 cores = 0.40625
    assert cpu == pytest.approx(0.40625)
    # MB: (1*100 + 0.5*200 + 2.5*400) / 4 = 1200 / 4 = 300 -> / 1000 MB = 0.3
    assert mem == pytest.approx(0.3)
    # An unweighted mean would differ: (2 + 4 + 1) / 3 / 4 = 0.583
    assert cpu != pytest.approx((2 + 4 + 1) / 3 / 4)


def test_mean_utilisation_cpu_equals_core_seconds_over_seconds() -> None:
    # What NodeUtilisation reports: each value is the mean over the interval it ends.
    timeline = [(0.1, 1.0, 50.0), (0.3, 3.0, 50.0), (0.35, 0.0, 50.0), (1.0, 2.0, 50.0)]
    core_seconds = 0.1 * 1 + 0.2 * 3 + 0.05 * 0 + 0.65 * 2
    cpu, mem = mean_utilisation(timeline, 2.0, 100.0)
    assert cpu == pytest.approx(core_seconds / 1.0 / 2.0)
    assert mem == pytest.approx(0.5)


def test_mean_utilisation_edge_cases() -> None:
    assert all(math.isnan(v) for v in mean_utilisation([], 4.0, 1000.0))
    # one sample at 0 s has no interval: its value is the mean
    assert mean_utilisation([(0.0, 2.0, 500.0)], 4.0, 1000.0) == pytest.approx((0.5, 0.5))
    with pytest.raises(ValueError, match="capacities"):
        mean_utilisation([(1.0, 1.0, 1.0)], 0.0, 1000.0)


def test_thesis_reference_figures() -> None:
    assert list(THESIS_SPEEDUP) == ["low", "medium", "high"]
    for high, low, mean, median in THESIS_SPEEDUP.values():
        assert low <= mean <= high and low <= median <= high
    assert THESIS_SPEEDUP["high"] == (0.88, -1.63, 0.35, 0.44)
    assert THESIS_UTILISATION["off"][0] < THESIS_UTILISATION["on"][0]  # harvesting raised CPU use
