"""Comparing the invokers' schedulers in one eval: configurations, run names and order."""

from __future__ import annotations

import pytest

from benchmarks.evaluation.run import pinned_from, variant_order, variants_of
from benchmarks.evaluation.scheduler_switch import (
    SCHEDULERS,
    configured,
    incarnations,
    label,
    schedulers_from,
)
from gleaner.errors import BadRequest
from gleaner.settings import load_settings


def test_schedulers_are_named_known_and_distinct():
    assert schedulers_from("fifo, lend") == ["fifo", "lend"]
    assert schedulers_from(None) == []
    with pytest.raises(BadRequest, match="unknown scheduler lifo"):
        schedulers_from("fifo,lifo")
    with pytest.raises(BadRequest, match="twice"):
        schedulers_from("fifo,fifo")


def test_each_configuration_is_valid_settings():
    base = load_settings(env={})
    for name in SCHEDULERS:
        s = configured(base, name)
        assert s.scheduler in ("fifo", "age", "slack")
    assert configured(base, "fifo").scheduler_lending is False
    assert configured(base, "lend").scheduler_lending and configured(base, "lend").scheduler_backfill


def test_the_last_schedulers_off_is_the_baseline_and_others_carry_their_name():
    variants = variants_of(["off", "gleaner"], ["fifo", "lend"])
    assert variants[0] == ("off", "lend")
    assert [label(p, s, "lend") for p, s in variants] == ["off", "gleaner", "off@fifo", "gleaner@fifo"]
    assert variants_of(["off", "gleaner"], []) == [("off", None), ("gleaner", None)]


def test_runs_go_scheduler_by_scheduler_rotated_per_load():
    variants = variants_of(["off", "gleaner"], ["fifo", "lend"])
    first = variant_order(variants, 0)
    second = variant_order(variants, 1)
    assert first == [("off", "lend"), ("gleaner", "lend"), ("off", "fifo"), ("gleaner", "fifo")]
    assert second == [("gleaner", "fifo"), ("off", "fifo"), ("gleaner", "lend"), ("off", "lend")]
    assert sorted(first) == sorted(second) == sorted(variants)


def test_incarnations_of_healthy_invokers():
    beats = [
        {"invoker": "invoker0", "incarnation": "a", "healthy": True},
        {"invoker": "invoker1", "incarnation": "b", "healthy": False},
        "junk",
    ]
    assert incarnations(beats) == {"invoker0": "a"}
    assert incarnations(None) == {}


def test_a_pinned_policy_runs_under_its_scheduler_only():
    plain, pinned, schedulers = pinned_from("off,gleaner,off@fifo", ["lend"])
    assert (plain, pinned, schedulers) == ("off,gleaner", [("off", "fifo")], ["fifo", "lend"])
    variants = variants_of(["off", "gleaner"], schedulers, pinned)
    assert variants == [("off", "lend"), ("gleaner", "lend"), ("off", "fifo")]
    assert [label(p, s, "lend") for p, s in variants] == ["off", "gleaner", "off@fifo"]
    # A scheduler named in --schedulers still runs every policy; the pinned run is not repeated.
    both = variants_of(["off", "gleaner"], ["fifo", "lend"], [("off", "age")])
    assert both == [
        ("off", "lend"),
        ("gleaner", "lend"),
        ("off", "fifo"),
        ("gleaner", "fifo"),
        ("off", "age"),
    ]


def test_a_pinned_policy_is_checked():
    with pytest.raises(BadRequest, match="needs --schedulers"):
        pinned_from("off,off@fifo", [])
    with pytest.raises(BadRequest, match="unknown scheduler"):
        pinned_from("off,off@lifo", ["lend"])
    with pytest.raises(BadRequest):
        pinned_from("off,nope@fifo", ["lend"])
