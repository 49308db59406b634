"""The CPU sweep's plan: the lower allocations, how many and which inputs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gleaner.errors import GleanerError
from predictor.allocation import THESIS_TABLE_3_2
from predictor.sweep import CpuSweep, default_cpus, default_inputs, parse_cpus, pick_inputs
from tests.unit.predictor import OURS

GRID = OURS.cpu  # 0.25..2, step 0.25


def test_default_cpus_are_a_half_and_a_quarter_of_the_maximum_on_the_grid() -> None:
    assert default_cpus(2.0, GRID) == (1.0, 0.5)
    assert default_cpus(1.0, GRID) == (0.5, 0.25)
    assert default_cpus(1.5, GRID) == (0.75, 0.25)  # 0.375 -> 0.25 (down onto the grid)
    assert default_cpus(0.5, GRID) == (0.25,)  # a quarter is below the minimum: one lower allocation
    assert default_cpus(0.25, GRID) == ()
    assert default_cpus(8.0, THESIS_TABLE_3_2.cpu) == (4.0, 2.0)


def test_parse_cpus() -> None:
    assert parse_cpus("2,1,0.5", 2.0, GRID) == (1.0, 0.5)  # the maximum runs anyway
    assert parse_cpus(" 0.5, 1.5 ,0.5", 2.0, GRID) == (1.5, 0.5)
    for off in ("off", "none", "", " OFF "):
        assert parse_cpus(off, 2.0, GRID) == ()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1,x", "'x' is not a number of cores"),
        ("0.3", "0.3 is not an allowed allocation"),
        ("4", "4 is not an allowed allocation up to the profile's 2 cores"),
        ("0.1", "0.1 is not an allowed allocation"),
        ("nan", "nan is not an allowed allocation"),
    ],
)
def test_bad_cpus_are_refused_with_the_value(text: str, match: str) -> None:
    with pytest.raises(GleanerError, match=match):
        parse_cpus(text, 2.0, GRID)


def test_default_inputs_are_a_tenth_from_1_to_10() -> None:
    assert [default_inputs(n) for n in (0, 1, 5, 14, 15, 20, 100, 1000)] == [0, 1, 1, 1, 2, 2, 10, 10]


def test_picked_inputs_spread_over_the_larger_half() -> None:
    sizes = [10 * i for i in range(20)]  # already in size order
    assert pick_inputs(sizes, 2) == [12, 17]
    assert pick_inputs(sizes, 1) == [14]
    shuffled = [50, 10, 40, 20, 30]
    assert [shuffled[i] for i in pick_inputs(shuffled, 2)] == [30, 50]
    assert pick_inputs(sizes, 0) == [] and pick_inputs([], 3) == []


@given(st.lists(st.integers(0, 1000), max_size=40), st.integers(0, 50))
def test_picked_inputs_are_distinct_and_as_many_as_asked(sizes: list[int], k: int) -> None:
    picked = pick_inputs(sizes, k)
    assert len(picked) == len(set(picked)) == min(k, len(sizes))
    assert all(0 <= i < len(sizes) for i in picked)


def test_a_sweep_says_what_it_runs() -> None:
    assert CpuSweep((1.0, 0.5), 2).describe() == "CPU sweep at 1, 0.5 cores, 2 inputs each (4 requests)"
    assert CpuSweep((1.0,), 0).describe() == "no CPU sweep" and CpuSweep((), 5).requests == 0
    with pytest.raises(ValueError):
        CpuSweep((1.0,), -1)
