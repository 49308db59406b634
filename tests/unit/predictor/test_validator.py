"""The harvesting validator: the thesis's worked examples and properties over
random stages, grids and user allocations."""

from __future__ import annotations

import math

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from predictor.allocation import THESIS_TABLE_3_2, AllowedValues, Grid, normalize
from predictor.validator import StageDecision, validate_stage
from tests.unit.predictor import OURS

MEM = 512.0


def cpu_of(d: StageDecision) -> list[float]:
    return [a[0] for a in d.allocations]


def mem_of(d: StageDecision) -> list[float]:
    return [a[1] for a in d.allocations]


# Thesis §3.5.2: a stage with 4 units and two functions (user 2 + 2).
USER_4 = [(2.0, MEM), (2.0, MEM)]


def test_thesis_3_1_split_is_accepted() -> None:
    d = validate_stage([(3.0, 256.0), (1.0, 256.0)], USER_4, THESIS_TABLE_3_2)
    assert (d.cpu_mode, d.mem_mode) == ("fit", "fit")
    assert d.allocations == ((3.0, 256.0), (1.0, 256.0))


def test_thesis_5_1_split_is_scaled_into_the_budget() -> None:
    # The thesis deems 5-1 with 4 units invalid; our rule keeps the ratio on the grid.
    d = validate_stage([(5.0, 256.0), (1.0, 256.0)], USER_4, THESIS_TABLE_3_2)
    assert d.cpu_mode == "scaled" and cpu_of(d) == [3.0, 1.0]
    assert "exceed the budget 4" in d.reason


def test_thesis_6_2_split_with_4_units_becomes_3_1() -> None:
    d = validate_stage([(6.0, 256.0), (2.0, 256.0)], USER_4, THESIS_TABLE_3_2)
    assert d.cpu_mode == "scaled" and cpu_of(d) == [3.0, 1.0]
    assert d.mem_mode == "fit" and mem_of(d) == [256.0, 256.0]


def test_scaling_fills_the_budget_on_the_grid() -> None:
    user = [(0.5, MEM)] * 4  # budget 2 cores
    d = validate_stage([(1.5, 128.0), (1.0, 128.0), (0.75, 128.0), (0.5, 128.0)], user, OURS)
    assert d.cpu_mode == "scaled"
    assert cpu_of(d) == [0.75, 0.5, 0.5, 0.25] and sum(cpu_of(d)) == 2.0


def test_scaling_never_goes_below_the_minimum() -> None:
    user = [(1.0, MEM)] * 3  # budget 3 cores
    d = validate_stage([(2.0, 128.0), (2.0, 128.0), (0.25, 128.0)], user, OURS)
    assert cpu_of(d) == [1.25, 1.5, 0.25] or cpu_of(d) == [1.5, 1.25, 0.25]
    assert min(cpu_of(d)) == 0.25 and sum(cpu_of(d)) == 3.0


def test_memory_over_the_budget_falls_back_to_the_user_memory() -> None:
    user = [(1.0, 256.0), (1.0, 256.0)]
    d = validate_stage([(0.5, 640.0), (0.5, 128.0)], user, OURS)
    assert d.mem_mode == "rejected" and mem_of(d) == [256.0, 256.0]
    assert d.cpu_mode == "fit" and cpu_of(d) == [0.5, 0.5]  # CPU is decided on its own
    assert "user memory kept" in d.reason


def test_user_allocations_below_the_minimums_are_rejected() -> None:
    user = [(0.1, 64.0), (0.1, 64.0)]  # not on the grid: the minimums do not fit the budget
    d = validate_stage([(0.25, 128.0), (0.25, 128.0)], user, OURS)
    assert (d.cpu_mode, d.mem_mode) == ("rejected", "rejected")
    assert d.allocations == ((0.1, 64.0), (0.1, 64.0))
    assert "do not cover the minimums" in d.reason


def test_edge_cases() -> None:
    assert validate_stage([], [], OURS).allocations == ()
    with pytest.raises(ValueError, match="2 demands for 1 user"):
        validate_stage([(1.0, 128.0), (1.0, 128.0)], [(1.0, 128.0)], OURS)
    # Unnormalized demands are snapped up, so outputs stay on the grid.
    d = validate_stage([(0.3, 130.0)], [(1.0, 512.0)], OURS)
    assert d.allocations == ((0.5, 256.0),)


# ---- properties ----------------------------------------------------------------


@st.composite
def grids(draw: st.DrawFn, kind: str) -> Grid:
    if kind == "cpu":
        minimum = draw(st.sampled_from([0.1, 0.25, 0.5, 1.0]))
        step = draw(st.sampled_from([0.1, 0.25, 0.5, 1.0]))
    else:
        minimum = draw(st.sampled_from([64.0, 128.0, 256.0]))
        step = draw(st.sampled_from([32.0, 64.0, 128.0]))
    units = draw(st.integers(0, 40))
    off_grid = draw(st.sampled_from([0.0, 0.3]))  # a maximum between two grid values
    return Grid(minimum, minimum + (units + off_grid) * step, step)


@st.composite
def allowed_values(draw: st.DrawFn) -> AllowedValues:
    choice = draw(st.sampled_from(["thesis", "ours", "random"]))
    if choice == "thesis":
        return THESIS_TABLE_3_2
    if choice == "ours":
        return OURS
    c, m = draw(grids("cpu")), draw(grids("mem"))
    return AllowedValues(c.minimum, c.maximum, c.step, m.minimum, m.maximum, m.step)


@st.composite
def stages(
    draw: st.DrawFn,
) -> tuple[AllowedValues, list[tuple[float, float]], list[tuple[float, float]], bool]:
    allowed = draw(allowed_values())
    n = draw(st.integers(1, 8))
    cpu, mem = allowed.cpu, allowed.mem
    user = [
        (cpu.value(draw(st.integers(0, cpu.units))), mem.value(draw(st.integers(0, mem.units))))
        for _ in range(n)
    ]
    raw = [
        (
            draw(st.floats(0, cpu.top * 1.5, allow_nan=False)),
            draw(st.floats(0, mem.top * 1.5, allow_nan=False)),
        )
        for _ in range(n)
    ]
    normalized = draw(st.booleans())
    demands = [normalize(c, m, allowed) for c, m in raw] if normalized else raw
    return allowed, demands, user, normalized


def on_grid(value: float, grid: Grid) -> bool:
    return grid.minimum - 1e-9 <= value <= grid.top + 1e-9 and grid.contains(value)


@settings(max_examples=400, deadline=None)
@given(stages())
def test_allocations_stay_in_the_budget_and_on_the_grid(
    stage: tuple[AllowedValues, list[tuple[float, float]], list[tuple[float, float]], bool],
) -> None:
    allowed, demands, user, _ = stage
    d = validate_stage(demands, user, allowed)
    assert len(d.allocations) == len(user)
    for c, m in d.allocations:
        assert on_grid(c, allowed.cpu), (c, allowed)
        assert on_grid(m, allowed.mem), (m, allowed)
    tol = 1e-6
    assert sum(cpu_of(d)) <= sum(u[0] for u in user) + tol
    assert sum(mem_of(d)) <= sum(u[1] for u in user) + tol


@settings(max_examples=400, deadline=None)
@given(stages())
def test_each_mode_does_what_it_says(
    stage: tuple[AllowedValues, list[tuple[float, float]], list[tuple[float, float]], bool],
) -> None:
    allowed, demands, user, _ = stage
    d = validate_stage(demands, user, allowed)
    want_cpu = [allowed.cpu.at_least(c) for c, _ in demands]
    want_mem = [allowed.mem.at_least(m) for _, m in demands]
    budget_cpu = sum(u[0] for u in user)
    event(f"cpu {d.cpu_mode}, memory {d.mem_mode}")
    if d.cpu_mode == "fit":
        assert cpu_of(d) == want_cpu
    elif d.cpu_mode == "scaled":
        assert sum(want_cpu) > budget_cpu
        assert math.isclose(sum(cpu_of(d)), budget_cpu, abs_tol=1e-6)  # the whole budget, no more
        assert all(a <= w + 1e-9 for a, w in zip(cpu_of(d), want_cpu, strict=True))  # never above demand
        # The ratio is kept: a larger demand never gets less than a smaller one.
        for i, wi in enumerate(want_cpu):
            for j, wj in enumerate(want_cpu):
                if wi > wj:
                    assert cpu_of(d)[i] >= cpu_of(d)[j], (want_cpu, cpu_of(d))
    else:
        assert cpu_of(d) == [u[0] for u in user]
    if d.mem_mode == "fit":
        assert mem_of(d) == want_mem  # never below a predicted memory demand
    else:
        assert mem_of(d) == [u[1] for u in user]
        assert sum(want_mem) > sum(u[1] for u in user) + 1e-6


@settings(max_examples=200, deadline=None)
@given(stages())
def test_demands_within_the_budget_are_always_accepted(
    stage: tuple[AllowedValues, list[tuple[float, float]], list[tuple[float, float]], bool],
) -> None:
    allowed, _, user, _ = stage
    # The user allocations themselves always fit: nothing to scale, nothing to reject.
    d = validate_stage(user, user, allowed)
    assert (d.cpu_mode, d.mem_mode) == ("fit", "fit") and list(d.allocations) == user


@settings(max_examples=200, deadline=None)
@given(stages())
def test_a_remembered_decision_is_the_decision(
    stage: tuple[AllowedValues, list[tuple[float, float]], list[tuple[float, float]], bool],
) -> None:
    from predictor.validator import _decide

    allowed, demands, user, _ = stage
    first, again = validate_stage(demands, user, allowed), validate_stage(list(demands), list(user), allowed)
    assert repr(first) == repr(again) == repr(_decide(demands, user, allowed))


def test_inputs_that_print_apart_are_never_served_from_memory() -> None:
    floats = validate_stage([(0.5, 256.0)], [(1.0, 512.0)], OURS)
    ints = validate_stage([(0.5, 256.0)], [(1, 512)], OURS)  # equal to the floats, printed alike
    assert floats.allocations == ints.allocations
    zero = validate_stage([(0.5, 256.0)], [(-0.0, 512.0)], OURS)  # == 0.0, yet prints "-0"
    assert zero.cpu_mode == "rejected" and "-0" in zero.cpu_why
    assert validate_stage([[0.5, 256.0]], [[1.0, 512.0]], OURS) == floats  # lists are not keys
    assert AllowedValues(1, 8, 1, 128, 8192, 128).cpu.value(2) == 3.0  # a grid of floats
    assert type(AllowedValues(1, 8, 1, 128, 8192, 128).cpu_min) is float
