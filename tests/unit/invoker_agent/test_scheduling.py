"""The scheduler's pure choices: order keys, latest starts and EASY reservations."""

from __future__ import annotations

import math

import pytest

from invoker_agent.scheduling import (
    Reservation,
    Running,
    check_order,
    latest_start,
    may_backfill,
    order_key,
    reservation,
    run_estimate_ms,
)


def test_orders_are_checked_by_name():
    assert check_order("slack") == "slack"
    with pytest.raises(ValueError, match="fifo, age, slack"):
        check_order("lifo")


def test_latest_start_is_deadline_less_remaining_clamped_by_the_bound():
    assert latest_start(10_000, 4_000, 5_000, 30_000) == 6_000
    assert latest_start(None, 4_000, 5_000, 30_000) == 5_000  # no deadline: no slack to spare
    assert latest_start(math.nan, 4_000, 5_000, 30_000) == 5_000
    assert latest_start(10**9, 0, 5_000, 30_000) == 35_000  # far deadline: at most bound later
    assert latest_start(0, 10**9, 5_000, 30_000) == -25_000  # hopeless: at most bound earlier


def test_order_keys():
    assert order_key("fifo", 3, 99.0, 1.0) == (0.0, 3)
    assert order_key("age", 3, 99.0, 1.0) == (99.0, 3)
    assert order_key("slack", 3, 99.0, 1.0) == (1.0, 3)


def test_run_estimates_stretch_linearly_below_the_plan():
    assert run_estimate_ms(1_000, 1.0, 0.5) == 2_000
    assert run_estimate_ms(1_000, 1.0, 2.0) == 1_000  # more cores than planned: not assumed faster
    assert run_estimate_ms(None, 1.0, 1.0) == math.inf
    assert run_estimate_ms(1_000, 1.0, 0.0) == math.inf


def test_the_reservation_is_when_enough_ends():
    running = [Running(1.0, 512, 9_000.0), Running(0.5, 256, 3_000.0), Running(0.25, 128, math.inf)]
    # 0.25 free; the head needs 1.0: the 0.5 ends at 3 s (0.75), the 1.0 at 9 s (1.75)
    held = reservation(1_000.0, 0.25, 1024, running, 1.0, 512)
    assert held == Reservation(9_000.0, 0.75, 1024 + 256 + 512 - 512)
    assert reservation(1_000.0, 1.0, 1024, running, 1.0, 512).start_ms == 1_000.0  # fits now
    assert reservation(0.0, 0.0, 0, running, 1.75, 128).start_ms == math.inf  # needs the unknown one
    assert reservation(0.0, 0.0, 0, [], 1.0, 128) == Reservation(math.inf, 0.0, 0)


def test_may_backfill_before_the_reserved_start_or_on_the_spare():
    held = Reservation(10_000.0, 0.5, 256)
    assert may_backfill(1_000.0, 9_000.0, 2.0, 4096, held)  # ends in time
    assert not may_backfill(1_000.0, 9_001.0, 1.0, 128, held)
    assert may_backfill(1_000.0, math.inf, 0.5, 256, held)  # runs long, on what is spare
    assert not may_backfill(1_000.0, math.inf, 0.5, 512, held)
    assert not may_backfill(0.0, math.inf, 0.25, 128, Reservation(math.inf, 0.0, 0))
