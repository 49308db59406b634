"""Peak sizing (the Libra / Freyr baseline): every function at its own rounded-up peak."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from predictor.allocation import THESIS_TABLE_3_2
from predictor.peak_sizing import PeakSize, size_to_peak
from tests.unit.predictor import OURS


def test_rounds_each_peak_up_to_an_allowed_value() -> None:
    assert size_to_peak(1.7, 300.0, OURS) == PeakSize(1.75, 384.0, ())
    assert size_to_peak(2.78, 234.32, THESIS_TABLE_3_2) == PeakSize(3.0, 256.0, ())  # thesis §3.5.2


def test_memory_margin_before_rounding() -> None:
    assert size_to_peak(0.3, 300.0, OURS, memory_margin=0.1).memory_mb == 384.0  # 330 -> 384
    assert size_to_peak(0.3, 350.0, OURS, memory_margin=0.1).memory_mb == 512.0  # 385 -> 512


def test_out_of_grid_predictions_are_clamped_with_notes() -> None:
    big = size_to_peak(5.0, 10_000.0, OURS)
    assert (big.cpu, big.memory_mb) == (2.0, 8192.0)
    assert any("cpu prediction 5 cores is above the maximum" in n for n in big.notes)
    small = size_to_peak(-0.2, 10.0, OURS)
    assert (small.cpu, small.memory_mb) == (0.25, 128.0)
    assert any("negative" in n for n in small.notes)


def test_invoker_capacity_bounds_each_function() -> None:
    s = size_to_peak(1.7, 1100.0, OURS, capacity=(1.5, 1000.0))
    assert (s.cpu, s.memory_mb) == (1.5, 896.0)  # the largest allowed values within the capacity
    assert any("cpu 1.75 cores is above the invoker capacity 1.5 cores" in n for n in s.notes)
    assert any("memory 1152 MB is above the invoker capacity 1000 MB: 896 MB" in n for n in s.notes)
    assert size_to_peak(0.3, 100.0, OURS, capacity=(1.5, 1000.0)) == PeakSize(0.5, 128.0, ())
    assert size_to_peak(1.0, 100.0, OURS, capacity=(0.1, 1000.0)).cpu == 0.25  # never below the minimum


@pytest.mark.parametrize(
    ("cpu", "memory", "kwargs", "match"),
    [
        (math.nan, 100.0, {}, "must be finite"),
        (0.5, math.inf, {}, "must be finite"),
        (0.5, 100.0, {"memory_margin": -0.1}, "memory margin"),
        (0.5, 100.0, {"capacity": (0.0, 1000.0)}, "invoker capacity"),
        (0.5, 100.0, {"capacity": (1.0, math.nan)}, "invoker capacity"),
    ],
)
def test_unusable_inputs_raise(cpu: float, memory: float, kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=match):
        size_to_peak(cpu, memory, OURS, **kwargs)


@settings(max_examples=300, deadline=None)
@given(
    st.floats(-1.0, 4.0),
    st.floats(-100.0, 20_000.0),
    st.floats(0.0, 0.5),
    st.none() | st.tuples(st.floats(0.1, 4.0), st.floats(64.0, 20_000.0)),
)
def test_on_the_grid_and_at_least_the_peak_unless_clamped(
    cpu: float, memory: float, margin: float, capacity: tuple[float, float] | None
) -> None:
    s = size_to_peak(cpu, memory, OURS, memory_margin=margin, capacity=capacity)
    assert OURS.cpu.contains(s.cpu) and OURS.mem.contains(s.memory_mb)
    cpu_limit = min(OURS.cpu.top, capacity[0] if capacity else math.inf)
    mem_limit = min(OURS.mem.top, capacity[1] if capacity else math.inf)
    assert s.cpu >= min(cpu, cpu_limit - OURS.cpu.step) - 1e-9
    assert s.memory_mb >= min(memory * (1 + margin), mem_limit - OURS.mem.step) - 1e-9
    if capacity is not None:
        assert s.cpu <= max(capacity[0], OURS.cpu.minimum) + 1e-9
        assert s.memory_mb <= max(capacity[1], OURS.mem.minimum) + 1e-9
