"""The eval's run order: every policy takes every place in turn, none is always last."""

from __future__ import annotations

from benchmarks.evaluation.run import run_order

POLICIES = ["off", "thesis", "libra", "gleaner"]


def test_the_first_load_runs_in_the_order_given():
    assert run_order(POLICIES, 0) == POLICIES


def test_each_load_rotates_by_one():
    assert run_order(POLICIES, 1) == ["thesis", "libra", "gleaner", "off"]
    assert run_order(POLICIES, 2) == ["libra", "gleaner", "off", "thesis"]
    assert run_order(POLICIES, 4) == POLICIES


def test_over_as_many_loads_as_policies_each_runs_last_once():
    lasts = [run_order(POLICIES, i)[-1] for i in range(len(POLICIES))]
    assert sorted(lasts) == sorted(POLICIES)
    assert all(sorted(run_order(POLICIES, i)) == sorted(POLICIES) for i in range(7))
