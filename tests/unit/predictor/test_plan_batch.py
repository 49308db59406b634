"""The batch normalizer (numpy, once per batch) gives exactly the plans of the
per-request normalizer, including every note on NaN, negative and too large
predictions, on several grids and margins."""

from __future__ import annotations

import math
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composer import analyze, parallel, sequence
from predictor import allocation
from predictor.allocation import AllowedValues, normalize_flagged, normalize_many
from predictor.inference import Prediction
from predictor.plan import normalize_batch, plan_predicted, select_stages
from tests.unit.predictor import OURS

GRIDS = [
    OURS,
    AllowedValues(1.0, 8.0, 1.0, 128.0, 8192.0, 128.0),  # thesis Table 3.2
    AllowedValues(0.1, 1.95, 0.1, 100.0, 3000.0, 64.0),  # steps that are not exact in binary
]

# Predictions as models make them, and as they go wrong: NaN, infinities, negative, huge.
finite_odd = st.sampled_from([-0.0, 0.0, -1.5, 1e300, 2.0, 0.25, 8192.0, 0.75000000001])
odd = st.one_of(finite_odd, st.sampled_from([math.nan, math.inf, -math.inf]))
cpu_values = st.one_of(st.floats(-1.0, 12.0), odd)
mem_values = st.one_of(st.floats(-100.0, 20_000.0), odd)
# In a plan a non-finite prediction rejects its whole stage before the normalizer, so the
# plans' predictions are finite: the normalizer's notes (negative, above the maximum) show.
plan_cpu = st.one_of(st.floats(-1.0, 12.0), st.floats(0.0, 2.5), finite_odd)
plan_mem = st.one_of(st.floats(-100.0, 20_000.0), st.floats(0.0, 3000.0), finite_odd)
duration_values = st.one_of(st.none(), st.floats(-10.0, 1e6), st.just(math.nan))


@given(st.sampled_from(GRIDS), st.lists(st.tuples(cpu_values, mem_values), max_size=40))
def test_normalize_many_is_normalize_flagged_for_every_pair(allowed, pairs):
    cpu, mem = [c for c, _ in pairs], [m for _, m in pairs]
    expected = [normalize_flagged(c, m, allowed) for c, m in pairs]
    with patch.object(allocation, "VECTOR_MIN_PAIRS", 0):  # numpy however few the pairs
        assert normalize_many(cpu, mem, allowed) == expected
        assert normalize_many(cpu, mem, allowed) == expected  # the kept demands again
    assert normalize_many(cpu, mem, allowed) == expected


def test_normalize_many_needs_pairs():
    with pytest.raises(ValueError, match="2 cpu predictions for 1 memory"):
        normalize_many([1.0, 2.0], [1.0], OURS)


# Two parallel stages of different widths, so a request's predictions are split per stage.
ANALYSIS = analyze(sequence("a", parallel("b1", "b2", "b3"), "c", parallel("d1", "d2")))
SLOTS = [(1, 0), (1, 1), (1, 2), (3, 0), (3, 1)]
prediction = st.builds(Prediction, st.floats(0, 1e8), plan_cpu, plan_mem, duration_values)
user = st.tuples(st.sampled_from([0.1, 0.25, 0.5, 0.75, 1.0, 2.0]), st.sampled_from([64, 128, 256, 1024]))


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(GRIDS),
    st.sampled_from([0.0, 0.25]),
    st.lists(
        st.tuples(st.lists(prediction, min_size=5, max_size=5), st.sampled_from(["thesis", "gleaner"])),
        min_size=1,
        max_size=4,
    ),
    st.lists(user, min_size=5, max_size=5),
)
def test_a_batch_normalized_at_once_plans_exactly_as_each_request_alone(allowed, margin, requests, users):
    user_of = {slot: (float(c), float(m)) for slot, (c, m) in zip(SLOTS, users, strict=True)}
    selection = select_stages(ANALYSIS, user_of)
    with patch.object(allocation, "VECTOR_MIN_PAIRS", 0):  # numpy however small the batch
        batch = normalize_batch([p for p, _ in requests], allowed, memory_margin=margin)
    for (predictions, policy), normalized in zip(requests, batch, strict=True):
        common = {"memory_margin": margin, "policy": policy, "capacity": (2.0, 8192.0)}
        alone = plan_predicted(selection, predictions, user_of, allowed, **common)
        batched = plan_predicted(selection, predictions, user_of, allowed, normalized=normalized, **common)
        # repr: every float exactly (NaN included), every reason and note, in order.
        assert repr(batched) == repr(alone)
        assert batched.to_dict() == alone.to_dict()


def test_normalized_demands_must_match_the_predictions():
    selection = select_stages(ANALYSIS, {slot: (0.5, 256.0) for slot in SLOTS})
    predictions = [Prediction(1000.0, 0.5, 200.0) for _ in SLOTS]
    normalized = normalize_batch([predictions], OURS)[0]
    with pytest.raises(ValueError, match="4 normalized demands for 5 predictions"):
        plan_predicted(
            selection, predictions, {s: (0.5, 256.0) for s in SLOTS}, OURS, normalized=normalized[:4]
        )
