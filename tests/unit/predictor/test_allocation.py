"""Allowed values, A(P), the normalizer and the thesis's accuracy rule."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gleaner.errors import SettingsError
from gleaner.settings import load_settings
from predictor import allocation as allocation_module
from predictor.allocation import (
    THESIS_TABLE_3_2,
    AllowedValues,
    Grid,
    allowed_at_least,
    is_accurate,
    normalize,
    normalize_flagged,
)
from tests.unit.predictor import OURS


@pytest.mark.parametrize(
    ("value", "grid", "expected"),
    [
        (2.78, (1, 8, 1), 3.0),  # thesis §3.5.2
        (234.32, (128, 8192, 128), 256.0),  # thesis §3.5.2
        (0.75000000001, (0.25, 2, 0.25), 0.75),  # float noise does not cost a step
        (0.7499999999, (0.25, 2, 0.25), 0.75),
        (0.76, (0.25, 2, 0.25), 1.0),
        (0.75, (0.25, 2, 0.25), 0.75),  # on the grid: itself
        (0.0, (0.25, 2, 0.25), 0.25),  # below the minimum: the minimum
        (-3.0, (1, 8, 1), 1.0),
        (9.5, (1, 8, 1), 8.0),  # above the maximum: clamped
        (0.3, (0.1, 1, 0.1), 0.3),  # 0.1 * 3 is not exactly 0.3 in floats
        (1.9, (0.25, 1.9, 0.25), 1.75),  # max off the grid: the top grid value
        (math.inf, (1, 8, 1), 8.0),
        (math.nan, (1, 8, 1), 1.0),
    ],
)
def test_allowed_at_least(value: float, grid: tuple[float, float, float], expected: float) -> None:
    assert allowed_at_least(value, *grid) == expected


def test_grid_top_and_membership() -> None:
    g = Grid(0.25, 1.9, 0.25)
    assert g.top == 1.75 and g.units == 6
    assert g.contains(0.5) and g.contains(1.75) and not g.contains(1.9) and not g.contains(0.6)
    assert not g.contains(math.nan) and not g.contains(0.0)
    assert THESIS_TABLE_3_2.mem.top == 8192 and THESIS_TABLE_3_2.cpu.units == 7


@pytest.mark.parametrize("bad", [(0, 1, 0.25), (1, 0.5, 0.25), (0.25, 2, 0), (0.25, math.nan, 0.25)])
def test_bad_grids_are_settings_errors(bad: tuple[float, float, float]) -> None:
    with pytest.raises(SettingsError):
        Grid(*bad)


@given(
    st.floats(0.01, 10.0),
    st.floats(0.01, 10.0),
    st.floats(0.01, 2.0),
    st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 40)),
)
def test_the_grids_table_is_the_computed_grid(lo: float, span: float, step: float, probe: float) -> None:
    """The values kept at construction are the ones computed on demand, and A(P) is
    the formula's however the probe falls (NaN, infinities, off the grid)."""
    g = Grid(lo, lo + span, step)
    assert [g.value(k) for k in range(g.units + 1)] == [round(lo + k * step, 9) for k in range(g.units + 1)]
    assert g.value(g.units + 1) == round(lo + (g.units + 1) * step, 9)  # past the table: computed
    value = float(probe) if isinstance(probe, float) else probe * step + lo
    if math.isnan(value) or value <= lo:
        expected = 0
    elif value >= g.top:  # (value - lo) / step may overflow to inf for a huge probe
        expected = g.units
    else:
        expected = min(max(math.ceil((value - lo) / step - 1e-6), 0), g.units)
    assert g.ceil_units(value) == expected
    assert g.floor_units(value) <= g.ceil_units(value)


@pytest.mark.parametrize("probe", [8.99e307, 1.7976931348623157e308, math.inf])
def test_a_huge_probe_is_the_top_of_the_grid(probe: float) -> None:
    """Found on a fresh machine: 8.99e307 with step 0.5 overflowed (value - lo) / step to inf."""
    g = Grid(1.0, 2.0, 0.5)
    assert g.ceil_units(probe) == g.units == 2 and g.floor_units(probe) == 2
    assert g.at_least(probe) == 2.0


def test_allowed_values_build_their_grids_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    built: list[tuple[float, ...]] = []

    def counted(*args: float) -> Grid:
        built.append(args)
        return Grid(*args)

    monkeypatch.setattr(allocation_module, "Grid", counted)
    a = AllowedValues(0.25, 2.0, 0.25, 128.0, 8192.0, 128.0)
    assert built == [(0.25, 2.0, 0.25), (128.0, 8192.0, 128.0)]  # both, at construction
    for _ in range(3):
        assert a.cpu == Grid(0.25, 2.0, 0.25) and a.mem == Grid(128.0, 8192.0, 128.0)
    assert len(built) == 2  # reads do not build them again
    monkeypatch.undo()
    with pytest.raises(SettingsError):  # a bad grid fails when built, not at its first read
        AllowedValues(0.25, 2.0, 0.0, 128.0, 8192.0, 128.0)
    assert a.mem.top == 8192.0
    assert pickle.loads(pickle.dumps(a)) == a and pickle.loads(pickle.dumps(a)).cpu.units == 7
    assert hash(a) == hash(AllowedValues(0.25, 2.0, 0.25, 128.0, 8192.0, 128.0))


def test_allowed_values_from_settings() -> None:
    s = load_settings(env={}, cpu_max=2.0)
    a = AllowedValues.from_settings(s)
    assert a == AllowedValues(0.25, 2.0, 0.25, 128.0, 8192.0, 128.0)
    assert AllowedValues.from_dict(a.as_dict()) == a


def test_normalize_rounds_up_both_dimensions() -> None:
    assert normalize(2.78, 234.32, THESIS_TABLE_3_2) == (3.0, 256.0)
    assert normalize(0.3, 129.0, OURS) == (0.5, 256.0)
    assert normalize(0.1, 10.0, OURS) == (0.25, 128.0)  # below the minimum is normal, not flagged
    assert normalize_flagged(0.1, 10.0, OURS).notes == ()


@pytest.mark.parametrize(
    ("cpu", "mem", "expected", "flag"),
    [
        (math.nan, 300.0, (0.25, 384.0), "cpu prediction is NaN"),
        (-0.5, 300.0, (0.25, 384.0), "cpu prediction -0.5 cores is negative"),
        (1.0, -1.0, (1.0, 128.0), "memory prediction -1 MB is negative"),
        (3.7, 300.0, (2.0, 384.0), "cpu prediction 3.7 cores is above the maximum"),
        (1.0, math.inf, (1.0, 8192.0), "memory prediction inf MB is above the maximum"),
    ],
)
def test_normalize_flags_forced_values(
    cpu: float, mem: float, expected: tuple[float, float], flag: str
) -> None:
    n = normalize_flagged(cpu, mem, OURS)
    assert (n.cpu, n.mem) == expected
    assert len(n.notes) == 1 and flag in n.notes[0], n.notes


@given(
    value=st.floats(min_value=0, max_value=20, allow_nan=False),
    grid=st.sampled_from([OURS.cpu, OURS.mem, THESIS_TABLE_3_2.cpu, Grid(0.1, 3.3, 0.1), Grid(0.5, 4, 0.5)]),
)
def test_at_least_is_the_next_grid_value(value: float, grid: Grid) -> None:
    a = grid.at_least(value)
    assert grid.contains(a)
    if grid.minimum <= value <= grid.top:
        assert a >= value - 1e-6 * grid.step  # never rounds down (beyond float noise)
        assert a - value < grid.step  # and never skips a value
    else:
        assert a == (grid.minimum if value < grid.minimum else grid.top)


def test_accuracy_thesis_examples() -> None:
    cpu = THESIS_TABLE_3_2.cpu
    assert is_accurate(2.6, 2.9, cpu)  # 2.6 + 0.3 = 2.9 < 3
    assert is_accurate(2.6, 2.3, cpu)  # error is absolute
    assert not is_accurate(2.6, 3.01, cpu)  # 2.6 + 0.41 = 3.01 > 3
    assert not is_accurate(2.6, 2.19, cpu)  # 2.6 + 0.41 again
    assert is_accurate(2.0, 2.0, cpu)  # a perfect prediction on an allowed value (see is_accurate)
    assert not is_accurate(math.nan, 2.0, cpu)
