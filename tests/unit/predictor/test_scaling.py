"""Scaling curves: Amdahl's law, its fit from (cores, seconds) samples (exact,
noisy, bad, too few allocations), serialisation, and the fit from profile rows."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from predictor.dataset import ProfileRow
from predictor.scaling import (
    MAX_LOG_RMSE,
    Sample,
    ScalingCurve,
    fit_curve,
    fit_curves,
    parse_slot_key,
    slot_key,
)
from tests.unit.predictor import OURS

GRID = OURS.cpu  # 0.25..2 cores, step 0.25


def test_amdahl_time_and_speedup() -> None:
    curve = ScalingCurve(0.25, 8.0)
    assert curve.time_at(1.0) == 8.0
    assert curve.time_at(2.0) == pytest.approx(8.0 * (0.25 + 0.75 / 2))
    assert curve.speedup(1.0, 2.0) == pytest.approx(1 / 0.625)
    assert curve.speedup(2.0, 1.0) == pytest.approx(0.625)  # fewer cores: slower
    assert ScalingCurve(0.0).speedup(0.5, 2.0) == pytest.approx(4.0)  # linear
    assert ScalingCurve(1.0).speedup(0.25, 2.0) == 1.0  # no speedup at all
    with pytest.raises(ValueError, match="cores must be positive"):
        curve.time_at(0.0)


@pytest.mark.parametrize(("s", "t1"), [(-0.1, 1.0), (1.1, 1.0), (math.nan, 1.0), (0.5, 0.0), (0.5, math.inf)])
def test_out_of_range_parameters_are_refused(s: float, t1: float) -> None:
    with pytest.raises(ValueError):
        ScalingCurve(s, t1)


@settings(max_examples=100, deadline=None)
@given(
    st.floats(0.0, 1.0),
    st.floats(1e-3, 1e4),
    st.lists(st.floats(0.25, 8.0), max_size=5),
    st.floats(0.0, 1.0),
)
def test_serialisation_round_trip(s: float, t1: float, allocations: list[float], rmse: float) -> None:
    curve = ScalingCurve(s, t1, len(allocations), tuple(sorted(allocations)), rmse)
    assert ScalingCurve.from_dict(curve.to_dict()) == curve


@pytest.mark.parametrize(
    "data",
    [
        {"model": "power", "serial_fraction": 0.5},
        {"t1": 1.0},  # no serial fraction
        {"serial_fraction": 2.0},
        {"serial_fraction": "half"},
        {"serial_fraction": 0.5, "allocations": 3},
        ["not", "a", "mapping"],
    ],
)
def test_from_dict_refuses_what_to_dict_would_not_write(data: object) -> None:
    with pytest.raises(ValueError):
        ScalingCurve.from_dict(data)  # type: ignore[arg-type]


def test_slot_keys() -> None:
    assert slot_key((1, 3)) == "1.3" and parse_slot_key("1.3") == (1, 3)
    for bad in ("13", "a.b", ""):
        with pytest.raises(ValueError):
            parse_slot_key(bad)


# ---- the fit ------------------------------------------------------------------------


@pytest.mark.parametrize("s", [0.0, 0.2, 0.45, 0.8, 1.0])
def test_the_fit_recovers_an_exact_curve(s: float) -> None:
    true = ScalingCurve(s, 12.0)
    fit = fit_curve([(c, true.time_at(c)) for c in (0.5, 1.0, 2.0)])
    assert fit.curve is not None and fit.dropped == 0
    assert fit.curve.serial_fraction == pytest.approx(s, abs=1e-6)
    assert fit.curve.t1 == pytest.approx(12.0, rel=1e-6)
    assert fit.curve.allocations == (0.5, 1.0, 2.0) and fit.curve.samples == 3
    assert fit.curve.rmse_log == pytest.approx(0.0, abs=1e-6)
    assert f"Amdahl s={s:.3f}" in fit.reason


def test_inputs_of_different_sizes_share_one_shape() -> None:
    # Each input has its own t1 (1 s .. 100 s); the shape is common.
    samples = [
        Sample(c, ScalingCurve(0.3, t1).time_at(c), group)
        for group, t1 in enumerate((1.0, 7.0, 100.0))
        for c in (0.5, 1.0, 2.0)
    ]
    fit = fit_curve(samples)
    assert fit.curve is not None and fit.curve.serial_fraction == pytest.approx(0.3, abs=1e-6)
    assert fit.curve.t1 == pytest.approx((1.0 * 7.0 * 100.0) ** (1 / 3))  # geometric mean
    assert "over 3 inputs" in fit.reason


def test_the_serial_fractions_quoted_in_the_threshold_comment_match_the_measurements() -> None:
    # predictor.work_division.MIN_MARGINAL_SPEEDUP quotes these fits.
    for s, speedup in ((0.479, 1.42), (0.429, 1.47)):  # recognition2, 0.75 -> 1.5 cores
        assert ScalingCurve(s).speedup(0.75, 1.5) == pytest.approx(speedup, abs=0.005)
    for s, speed in ((0.46, 0.58), (0.59, 0.65)):  # recognition1, 1.25 -> 0.5 cores
        assert ScalingCurve(s).speedup(1.25, 0.5) == pytest.approx(speed, abs=0.005)
    for s, speedup in ((0.233, 3.9), (0.167, 4.2)):  # train4, 0.25 -> 1.25 cores
        assert ScalingCurve(s).speedup(0.25, 1.25) == pytest.approx(speedup, abs=0.01)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.0, 1.0), st.integers(0, 2**32 - 1))
def test_the_fit_recovers_a_curve_from_noisy_samples(s: float, seed: int) -> None:
    # 8 inputs, 3 allocations, two runs each, 5 % log-normal noise.
    rng = random.Random(seed)
    samples = [
        Sample(c, ScalingCurve(s, t1).time_at(c) * math.exp(rng.gauss(0.0, 0.05)), group)
        for group, t1 in enumerate(rng.uniform(0.5, 50.0) for _ in range(8))
        for c in (0.5, 1.0, 2.0)
        for _ in range(2)
    ]
    fit = fit_curve(samples)
    assert fit.curve is not None
    assert fit.curve.serial_fraction == pytest.approx(s, abs=0.08)
    assert fit.curve.rmse_log < 0.1


def test_fewer_than_three_allocations_give_no_curve_and_say_why() -> None:
    fit = fit_curve([(1.0, 2.0), (2.0, 1.2), (1.0, 2.1)])
    assert fit.curve is None
    assert fit.reason == "2 distinct CPU allocations (cores 1, 2) on a common input, 3 needed: linear"
    assert "0 distinct CPU allocations (cores none)" in fit_curve([]).reason
    # Three allocations, but never on a common input: each input alone fixes only its own t1.
    apart = fit_curve([Sample(0.5, 4.0, "a"), Sample(1.0, 2.0, "b"), Sample(2.0, 1.0, "c")])
    assert apart.curve is None and "0 distinct" in apart.reason


def test_bad_samples_are_dropped_and_counted() -> None:
    true = ScalingCurve(0.4, 3.0)
    good = [(c, true.time_at(c)) for c in (0.5, 1.0, 2.0)]
    bad = [
        (1.0, math.nan),
        (2.0, 0.0),
        (0.0, 3.0),
        (-1.0, 2.0),
        (1.0, -4.0),
        (math.inf, 1.0),
        (1.0, math.inf),
    ]
    fit = fit_curve(good + bad)
    assert fit.curve is not None and fit.dropped == len(bad)
    assert fit.curve.serial_fraction == pytest.approx(0.4, abs=1e-6)
    assert "7 bad samples dropped" in fit.reason
    only_bad = fit_curve(bad)
    assert (
        only_bad.curve is None and only_bad.dropped == len(bad) and "7 bad samples dropped" in only_bad.reason
    )


def test_more_cores_running_slower_clamps_to_no_speedup() -> None:
    # Noise that is not monotone (slower at 2 cores than at 1): s stays 1, never above.
    fit = fit_curve([(0.5, 1.0), (1.0, 0.97), (2.0, 1.03)])
    assert fit.curve is not None and fit.curve.serial_fraction == 1.0
    assert fit.curve.speedup(0.5, 2.0) == 1.0  # flat, never a slowdown


def test_faster_than_linear_clamps_to_linear() -> None:
    # Superlinear (cache effects, noise): s stays 0, never below.
    fit = fit_curve([(0.5, 4.4), (1.0, 2.0), (2.0, 0.9)])
    assert fit.curve is not None and fit.curve.serial_fraction == 0.0


def test_a_slow_repeat_moves_the_median_not_the_fit() -> None:
    true = ScalingCurve(0.3, 2.0)
    runs = [(c, true.time_at(c)) for c in (0.5, 1.0, 2.0) for _ in range(3)]
    runs.append((2.0, true.time_at(2.0) * 5))  # one run 5x slow (a cold start, a noisy neighbour)
    fit = fit_curve(runs)
    assert fit.curve is not None and fit.curve.serial_fraction == pytest.approx(0.3, abs=1e-6)


def test_samples_too_noisy_give_no_curve() -> None:
    fit = fit_curve([(0.5, 1.0), (0.75, 9.0), (1.0, 0.2), (1.5, 4.0), (2.0, 0.1)])
    assert fit.curve is None and f"> {MAX_LOG_RMSE:g}): linear" in fit.reason


# ---- from profile rows --------------------------------------------------------------


def row(index: int, dag_input: int, alloc: float, seconds: float, peak: float, **kw: object) -> ProfileRow:
    base = ProfileRow(
        request_id=f"r{dag_input}-{alloc}",
        dag="d",
        dag_input_size=dag_input,
        stage=1,
        index=index,
        action=f"f{index}",
        parallel=True,
        input_size=dag_input // 2,
        peak_cpu=peak,
        peak_memory_mb=100.0,
        alloc_cpu=alloc,
        alloc_memory_mb=512.0,
        duration_ms=round(seconds * 1000),
        success=True,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_curves_from_profile_rows_per_function() -> None:
    parallel = ScalingCurve(0.3)
    rows = []
    for dag_input, t1 in ((10_000, 4.0), (20_000, 8.0)):
        for alloc in (2.0, 1.0, 0.5):
            # f0 uses every core it gets; f1 is single-threaded: its peak at 2 cores is 1.
            rows.append(row(0, dag_input, alloc, replace(parallel, t1=t1).time_at(alloc), peak=alloc))
            rows.append(row(1, dag_input, alloc, t1 / min(alloc, 1.0), peak=min(alloc, 1.0)))
    rows.append(row(0, 30_000, 2.0, 1.0, 2.0, parallel=False, stage=0))  # not harvested: not fitted
    rows.append(row(0, 10_000, 0.5, 99.0, 0.5, success=False))  # a failed run says nothing
    fits = fit_curves(rows, GRID)
    assert set(fits.curves) == {(1, 0)} and set(fits.reasons) == {(1, 0), (1, 1)}
    assert fits.curves[(1, 0)].serial_fraction == pytest.approx(0.3, abs=0.01)
    # Cores above the peak count as the peak: a single-threaded function at 2 and 1
    # core is one allocation, so it has two (1 and 0.5), and stays linear up to its cap.
    assert fits.reasons[(1, 1)].startswith("2 distinct CPU allocations (cores 0.5, 1)")


def test_the_container_start_is_not_run_time() -> None:
    true = ScalingCurve(0.5, 2.0)
    rows = [row(0, 10_000, a, true.time_at(a), peak=a) for a in (2.0, 1.0, 0.5)]
    cold = [replace(rows[0], duration_ms=rows[0].duration_ms + 1500, init_ms=1500), *rows[1:]]
    fit = fit_curves(cold, GRID).curves[(1, 0)]
    assert fit.serial_fraction == pytest.approx(0.5, abs=0.01)
