"""The one allocation type: round trips, validation, and the work it predicts."""

from __future__ import annotations

import math

import pytest

from gleaner.allocation import CHANGE_REASONS, Allocation, AllocationChange, Predicted
from gleaner.errors import MalformedEvent


def test_round_trip_keeps_every_field():
    a = Allocation(1.25, 384, "accelerate", Predicted(2048.0, 1.1, 300.0, 950.0), "why", 1.5)
    assert Allocation.from_dict(a.to_dict()) == a


def test_defaults_are_the_user_allocation():
    a = Allocation.from_dict({"cpu": 1, "memory": 256.0})
    assert a == Allocation(1.0, 256, "user") and a.to_dict() == {"cpu": 1.0, "memory": 256, "origin": "user"}


def test_work_is_duration_at_the_maximum_times_the_peak():
    assert Predicted(0, 1.5, 0, 2000.0).work_cpu_s == pytest.approx(3.0)
    assert Predicted(0, 1.5, 0).work_cpu_s is None
    assert Predicted(0, 1.5, 0, math.nan).work_cpu_s is None


@pytest.mark.parametrize("cpu", [0, -0.5, math.nan, math.inf])
def test_cpu_must_be_positive_and_finite(cpu):
    with pytest.raises(MalformedEvent):
        Allocation(cpu, 128)


def test_with_reason_keeps_the_rest():
    a = Allocation(0.5, 128, "harvest", cap=1.0).with_reason("capacity")
    assert (a.cpu, a.memory_mb, a.origin, a.cap, a.reason) == (0.5, 128, "harvest", 1.0, "capacity")


def test_a_change_is_a_point_of_the_trajectory():
    c = AllocationChange(1_700_000_000_000, 1.0, 256, "timely-release")
    assert c.to_dict() == {"at_ms": 1_700_000_000_000, "cpu": 1.0, "memory": 256, "reason": "timely-release"}
    assert "safeguard" in CHANGE_REASONS and "start-now" in CHANGE_REASONS
