"""Work division: worked examples, and properties over random stages and grids
(including that it never predicts a longer makespan than the peak-ratio validator,
and that it is optimal against brute force on small stages)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from predictor.allocation import THESIS_TABLE_3_2, AllowedValues, Grid
from predictor.validator import validate_stage
from predictor.work_division import WorkDivision, divide_work, predicted_makespan
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
