"""Work division: worked examples, and properties over random stages and grids
(including that it never predicts a longer makespan than the peak-ratio validator,
and that it is optimal against brute force on small stages); with scaling curves,
the marginal-speedup threshold and the core-second budget, and that without
curves nothing changed."""

from __future__ import annotations

import heapq
import itertools
import math

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from predictor.allocation import THESIS_TABLE_3_2, AllowedValues, Grid
from predictor.scaling import ScalingCurve
from predictor.validator import budget_units, validate_stage
from predictor.work_division import (
    MIN_MARGINAL_SPEEDUP,
    WorkDivision,
    divide_work,
    function_time,
    marginal_speedup,
    predicted_core_seconds,
    predicted_makespan,
)
from tests.unit.predictor import OURS

CPU = OURS.cpu  # 0.25..2 cores, step 0.25
MEM = 256.0


def test_equal_peaks_and_three_times_the_work_get_unequal_cores() -> None:
    # Peak ratio gives 1-1 (equal peaks) and a makespan of 3 s; by work, 1.5-0.5 finish together in 2 s.
    d = divide_work([3.0, 1.0], [2.0, 2.0], [1.0, 1.0], CPU)
    assert d == WorkDivision((1.5, 0.5), "divided", d.reason, 2.0)
    assert "divided over the budget 2: 1.5-0.5, predicted makespan 2 s" in d.reason
    validator = validate_stage([(2.0, MEM), (2.0, MEM)], [(1.0, MEM), (1.0, MEM)], OURS)
    assert [a[0] for a in validator.allocations] == [1.0, 1.0]
    assert predicted_makespan([3.0, 1.0], [2.0, 2.0], [1.0, 1.0]) == 3.0


def test_the_thesis_example_on_table_3_2() -> None:
    # 4 units for two functions: work 6 and 2 CPU-s -> 3-1, both done in 2 s.
    d = divide_work([6.0, 2.0], [8.0, 8.0], [2.0, 2.0], THESIS_TABLE_3_2.cpu)
    assert (d.cpu, d.mode, d.makespan_s) == ((3.0, 1.0), "divided", 2.0)


def test_cores_beyond_the_useful_maximum_stay_unspent() -> None:
    # The long function can use only 0.5 cores: it bounds the makespan; the other gets its cap.
    d = divide_work([3.0, 1.0], [0.5, 0.75], [1.0, 1.0], CPU)
    assert (d.cpu, d.makespan_s) == ((0.5, 0.75), 6.0)
    assert "0.75 cores unspent (every function at its useful maximum)" in d.reason
    # With room below a cap, the budget is spent, on whoever would finish last.
    assert divide_work([3.0, 1.0], [0.5, 2.0], [1.0, 1.0], CPU).cpu == (0.5, 1.5)


def test_caps_are_snapped_up_onto_the_grid() -> None:
    d = divide_work([1.0], [0.3], [2.0], CPU)  # A(0.3) = 0.5
    assert d.cpu == (0.5,) and d.makespan_s == 2.0
    assert divide_work([1.0], [9.0], [2.0], CPU).cpu == (2.0,)  # never above the grid's top


def test_ties_go_to_the_lower_index() -> None:
    assert divide_work([1.0, 1.0], [2.0, 2.0], [0.5, 0.25], CPU).cpu == (0.5, 0.25)


def test_user_allocations_below_the_minimums_are_rejected() -> None:
    d = divide_work([1.0, 1.0], [1.0, 1.0], [0.1, 0.1], CPU)
    assert (d.cpu, d.mode) == ((0.1, 0.1), "rejected")
    assert "do not cover the minimums, user cpu kept" in d.reason
    assert d.makespan_s == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("work", "caps", "match"),
    [
        ([1.0, 0.0], [1.0, 1.0], "function 1 has no usable predicted work"),
        ([math.nan, 1.0], [1.0, 1.0], "function 0 has no usable predicted work"),
        ([math.inf, 1.0], [1.0, 1.0], "function 0 has no usable predicted work"),
        ([1.0, -2.0], [1.0, 1.0], "function 1 has no usable predicted work"),
        ([1.0, 1.0], [1.0, math.nan], "function 1 has no usable cap"),
        ([1.0, 1.0], [0.0, 1.0], "function 0 has no usable cap"),
    ],
)
def test_unusable_work_or_caps_are_rejected(work: list[float], caps: list[float], match: str) -> None:
    d = divide_work(work, caps, [1.0, 1.0], CPU)
    assert (d.cpu, d.mode) == ((1.0, 1.0), "rejected") and match in d.reason
    assert math.isnan(d.makespan_s)


def test_edges() -> None:
    empty = divide_work([], [], [], CPU)
    assert (empty.cpu, empty.mode, empty.makespan_s) == ((), "divided", 0.0)
    with pytest.raises(ValueError, match="2 works, 1 caps"):
        divide_work([1.0, 1.0], [1.0], [1.0, 1.0], CPU)
    with pytest.raises(ValueError):
        predicted_makespan([1.0], [1.0, 1.0], [1.0])
    assert math.isnan(predicted_makespan([1.0], [1.0], [0.0]))
    assert predicted_makespan([2.0], [0.5], [2.0]) == 4.0  # cores above the cap do not count


# ---- properties ----------------------------------------------------------------


@st.composite
def cpu_grids(draw: st.DrawFn, max_units: int = 24) -> Grid:
    choice = draw(st.sampled_from(["thesis", "ours", "random"]))
    if choice == "thesis":
        return THESIS_TABLE_3_2.cpu
    if choice == "ours":
        return CPU
    minimum = draw(st.sampled_from([0.1, 0.25, 0.5, 1.0]))
    step = draw(st.sampled_from([0.1, 0.25, 0.5, 1.0]))
    units = draw(st.integers(0, max_units))
    off_grid = draw(st.sampled_from([0.0, 0.3]))  # a maximum between two grid values
    return Grid(minimum, minimum + (units + off_grid) * step, step)


Stage = tuple[Grid, list[float], list[float], list[float]]  # grid, work, caps, user cpu


@st.composite
def stages(draw: st.DrawFn, max_width: int = 8, max_units: int = 24) -> Stage:
    grid = draw(cpu_grids(max_units))
    n = draw(st.integers(1, max_width))
    work = [draw(st.floats(1e-3, 1e3)) for _ in range(n)]
    # Caps as the planner makes them: A(predicted peak) on the grid.
    caps = [grid.at_least(draw(st.floats(0.0, grid.top * 1.5))) for _ in range(n)]
    below = draw(st.integers(0, 9)) == 0  # now and then, user CPUs below the grid
    user = [grid.minimum * 0.5 if below else grid.value(draw(st.integers(0, grid.units))) for _ in range(n)]
    return grid, work, caps, user


def on_grid(value: float, grid: Grid) -> bool:
    return grid.minimum - 1e-9 <= value <= grid.top + 1e-9 and grid.contains(value)


def validator_cpu(grid: Grid, caps: list[float], user: list[float]) -> list[float]:
    allowed = AllowedValues(grid.minimum, grid.maximum, grid.step, 128.0, 8192.0, 128.0)
    d = validate_stage([(c, MEM) for c in caps], [(u, MEM) for u in user], allowed)
    return [a[0] for a in d.allocations]


@settings(max_examples=300, deadline=None)
@given(stages())
def test_within_the_budget_on_the_grid_between_minimum_and_cap(stage: Stage) -> None:
    grid, work, caps, user = stage
    d = divide_work(work, caps, user, grid)
    event(d.mode)
    if d.mode == "rejected":
        assert list(d.cpu) == user and sum(user) < len(user) * grid.minimum
        return
    assert len(d.cpu) == len(work)
    assert sum(d.cpu) <= sum(user) + 1e-6
    for c, cap in zip(d.cpu, caps, strict=True):
        assert on_grid(c, grid), (c, grid)
        assert grid.minimum - 1e-9 <= c <= cap + 1e-9
    # Cores are left over only when nobody could use another step.
    if sum(d.cpu) + grid.step <= sum(user) - 1e-6:
        assert all(math.isclose(c, cap) for c, cap in zip(d.cpu, caps, strict=True))
    assert d.makespan_s == pytest.approx(predicted_makespan(work, caps, d.cpu))


@settings(max_examples=300, deadline=None)
@given(stages())
def test_never_a_longer_makespan_than_the_peak_ratio_validator(stage: Stage) -> None:
    grid, work, caps, user = stage
    d = divide_work(work, caps, user, grid)
    theirs = predicted_makespan(work, caps, validator_cpu(grid, caps, user))
    same = math.isclose(d.makespan_s, theirs, rel_tol=1e-9)
    event(f"{d.mode}, {'equal' if same else 'shorter'}")
    assert d.makespan_s <= theirs * (1 + 1e-9), (d, theirs)


@settings(max_examples=300, deadline=None)
@given(stages(max_width=3, max_units=6))
def test_optimal_against_brute_force(stage: Stage) -> None:
    grid, work, caps, user = stage
    d = divide_work(work, caps, user, grid)
    if d.mode == "rejected":
        return
    cap_units = [grid.ceil_units(c) for c in caps]
    budget = math.floor((sum(user) - len(user) * grid.minimum) / grid.step + 1e-6)
    best = min(
        predicted_makespan(work, caps, [grid.value(u) for u in units])
        for units in itertools.product(*(range(cu + 1) for cu in cap_units))
        if sum(units) <= budget
    )
    assert d.makespan_s == pytest.approx(best, rel=1e-9)


# ---- scaling curves and the core-second budget -----------------------------------------


def reference_divide_work(
    work: list[float], caps: list[float], user_cpu: list[float], grid: Grid
) -> tuple[tuple[float, ...], str, str, float]:
    """The linear division as it was before scaling curves, kept verbatim (less its
    reasons' wording): a stage without curves must still divide exactly so."""
    user = tuple(float(u) for u in user_cpu)
    if any(not (math.isfinite(w) and w > 0) for w in work) or any(
        not (math.isfinite(c) and c > 0) for c in caps
    ):
        return user, "rejected", "", math.nan
    cap_units = [grid.ceil_units(cap) for cap in caps]
    cap_values = [grid.value(u) for u in cap_units]
    budget = budget_units(user, grid)
    if budget is None:
        return user, "rejected", "", predicted_makespan(work, cap_values, user)
    units = [0] * len(work)
    heap = [(-w / grid.minimum, i) for i, w in enumerate(work) if cap_units[i] > 0]
    heapq.heapify(heap)
    spent = 0
    while spent < budget and heap:
        _, i = heapq.heappop(heap)
        units[i] += 1
        spent += 1
        if units[i] < cap_units[i]:
            heapq.heappush(heap, (-work[i] / grid.value(units[i]), i))
    cpu = tuple(grid.value(u) for u in units)
    return cpu, "divided", "", predicted_makespan(work, cap_values, cpu)


@settings(max_examples=300, deadline=None)
@given(stages())
def test_without_curves_the_division_is_unchanged(stage: Stage) -> None:
    grid, work, caps, user = stage
    old = reference_divide_work(work, caps, user, grid)
    for curves in (None, [None] * len(work)):
        d = divide_work(work, caps, user, grid, curves)
        assert (d.cpu, d.mode) == old[:2]
        assert d.makespan_s == old[3] or (math.isnan(d.makespan_s) and math.isnan(old[3]))
        assert "scaling" not in d.reason and "stopped" not in d.reason


def test_the_reason_without_curves_is_the_old_one() -> None:
    d = divide_work([3.0, 1.0], [0.5, 0.75], [1.0, 1.0], CPU, [None, None])
    assert d.reason == (
        "cpu: work 3-1 CPU-s divided over the budget 2: 0.5-0.75, predicted makespan 6 s; "
        "0.75 cores unspent (every function at its useful maximum)"
    )


@pytest.mark.parametrize("s", [0.0, 0.2, 0.45, 0.8])
def test_marginal_speedup_is_amdahls_elasticity(s: float) -> None:
    r = s / (1 - s)
    for cores in (0.25, 0.75, 1.5):
        expected = 1 / (1 + r * (cores + 0.25))
        assert marginal_speedup(ScalingCurve(s), cores, 0.25) == pytest.approx(expected)
    assert marginal_speedup(None, 1.0, 0.25) == 1.0


def test_the_threshold_stops_a_sublinear_straggler_above_its_user_allocation() -> None:
    # The video stage: recognition1 (light, user 1.25) and recognition2 (3x the work,
    # user 0.75). Linear: recognition2 gets 1.5 cores. With s = 0.5 / 0.45 a step
    # from 1 to 1.25 cores turns only 0.49 of its cores into speed: it stops at 1,
    # and recognition1, already done sooner at the minimum, gets no more either.
    work, caps, user = [1.0, 3.0], [2.0, 2.0], [1.25, 0.75]
    assert divide_work(work, caps, user, CPU).cpu == (0.5, 1.5)
    curves = [ScalingCurve(0.5), ScalingCurve(0.45)]
    d = divide_work(work, caps, user, CPU, curves)
    assert d.cpu == (0.25, 1.0) and d.mode == "divided"
    assert "stopped: 1 at 1 (marginal speedup 0.49)" in d.reason
    assert "scaling s=0.50/s=0.45" in d.reason
    assert "0.75 cores unspent (more would not shorten the stage)" in d.reason
    assert d.core_s < d.user_core_s
    assert d.makespan_s == pytest.approx(predicted_makespan(work, caps, d.cpu, curves))
    assert d.makespan_s < predicted_makespan(work, caps, user, curves)  # still faster than the user's
    # A near-linear straggler (train4: s = 0.2) keeps growing: its steps stay above 0.5.
    assert divide_work(work, caps, user, CPU, [ScalingCurve(0.5), ScalingCurve(0.2)]).cpu[1] > 1.0


def test_below_its_user_allocation_a_function_is_never_stopped_by_the_threshold() -> None:
    # s = 0.8: every step from 0.25 cores up is below 0.5 marginal speedup, but the
    # straggler's own 1 core comes back to it.
    curves = [ScalingCurve(0.8), None]
    d = divide_work([3.0, 1.0], [2.0, 2.0], [1.0, 1.0], CPU, curves)
    assert d.cpu[0] == 1.0
    assert d.makespan_s <= predicted_makespan([3.0, 1.0], [2.0, 2.0], [1.0, 1.0], curves)


def test_the_core_second_budget_stops_a_step() -> None:
    # A linear light function cannot give core-seconds back (c x W / c = W at any c),
    # so the sublinear straggler cannot pass its own user allocation.
    curves = [ScalingCurve(0.2), None]
    d = divide_work([3.0, 1.0], [2.0, 2.0], [0.75, 1.25], CPU, curves)
    assert d.cpu == (0.75, 0.5)  # the light one keeps what finishes it before the straggler
    assert "0 at 0.75 (core-second budget)" in d.reason
    assert d.core_s == pytest.approx(d.user_core_s)


def test_minimums_above_the_core_second_budget_are_rejected() -> None:
    # A user allocation below the grid's minimum reserves fewer core-seconds than the minimum would.
    d = divide_work([1.0, 1.0], [1.0, 1.0], [0.1, 0.9], CPU, [ScalingCurve(0.5), None])
    assert d.mode == "rejected" and d.cpu == (0.1, 0.9)
    assert "the minimums alone would reserve" in d.reason


def test_curves_must_match_the_functions() -> None:
    with pytest.raises(ValueError, match="1 curves for 2 works"):
        divide_work([1.0, 1.0], [1.0, 1.0], [1.0, 1.0], CPU, [None])
    with pytest.raises(ValueError, match="1 curves for 2 works"):
        predicted_core_seconds([1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [None])


def test_function_time_with_a_curve_agrees_with_linear_at_the_cap() -> None:
    curve = ScalingCurve(0.4)
    assert function_time(3.0, 1.5, 1.5, curve) == pytest.approx(function_time(3.0, 1.5, 1.5))
    assert function_time(3.0, 1.5, 2.0, curve) == function_time(3.0, 1.5, 1.5, curve)  # above the cap
    assert function_time(3.0, 1.5, 0.5, curve) < function_time(3.0, 1.5, 0.5)  # sublinear: less slowdown
    assert function_time(3.0, 1.5, 0.5, ScalingCurve(0.0)) == pytest.approx(function_time(3.0, 1.5, 0.5))


CurvedStage = tuple[Grid, list[float], list[float], list[float], list[ScalingCurve | None]]


@st.composite
def curved_stages(draw: st.DrawFn, max_width: int = 6) -> CurvedStage:
    grid, work, caps, user = draw(stages(max_width=max_width))
    curve = st.one_of(st.none(), st.floats(0.0, 1.0).map(ScalingCurve))
    curves = [draw(curve) for _ in work]
    return grid, work, caps, user, curves


@settings(max_examples=400, deadline=None)
@given(curved_stages())
def test_a_division_never_reserves_more_core_seconds_than_the_user_allocations(stage: CurvedStage) -> None:
    grid, work, caps, user, curves = stage
    d = divide_work(work, caps, user, grid, curves)
    event(d.mode)
    if d.mode == "rejected":
        assert list(d.cpu) == user
        return
    event(f"budget {'binds' if 'core-second budget' in d.reason else 'free'}")
    event(f"threshold {'binds' if 'marginal speedup' in d.reason else 'free'}")
    cap_values = [grid.at_least(c) for c in caps]
    assert d.core_s == pytest.approx(predicted_core_seconds(work, cap_values, d.cpu, curves))
    assert d.user_core_s == pytest.approx(predicted_core_seconds(work, cap_values, user, curves))
    assert d.core_s <= d.user_core_s * (1 + 1e-9), (d, user)
    assert sum(d.cpu) <= sum(user) + 1e-6
    for c, cap in zip(d.cpu, caps, strict=True):
        assert on_grid(c, grid) and grid.minimum - 1e-9 <= c <= cap + 1e-9


@settings(max_examples=400, deadline=None)
@given(curved_stages())
def test_with_curves_never_a_longer_makespan_than_user_allocations_on_the_grid(stage: CurvedStage) -> None:
    grid, work, caps, user, curves = stage
    if not all(on_grid(u, grid) for u in user):
        return
    d = divide_work(work, caps, user, grid, curves)
    assert d.mode == "divided"
    theirs = predicted_makespan(work, [grid.at_least(c) for c in caps], user, curves)
    assert d.makespan_s <= theirs * (1 + 1e-9), (d, theirs)


@settings(max_examples=300, deadline=None)
@given(curved_stages())
def test_above_its_user_allocation_every_step_was_worth_its_cores(stage: CurvedStage) -> None:
    grid, work, caps, user, curves = stage
    d = divide_work(work, caps, user, grid, curves)
    if d.mode == "rejected":
        return
    for c, u, curve in zip(d.cpu, user, curves, strict=True):
        if curve is not None and c > u + 1e-9 and c > grid.minimum + 1e-9:
            last = c - grid.step
            assert marginal_speedup(curve, last, grid.step) >= MIN_MARGINAL_SPEEDUP - 1e-12
