"""The planned allocation travels on the invocation event and in the plan;
a malformed one is refused with the reason (a dead letter), never half-read."""

from __future__ import annotations

import orjson
import pytest

from gleaner.allocation import Allocation, Predicted
from gleaner.errors import MalformedEvent
from streams.composition.agent import planned_allocation
from streams.events import ActivationRequest, DagPlan, decode

PLANNED = Allocation(0.5, 256, "harvest", Predicted(1000.0, 0.4, 100.0, 1200.0), cap=1.0)


def test_an_invocation_carries_its_allocation_and_policy():
    req = ActivationRequest("a" * 32, "guest", "f", allocation=PLANNED, policy="gleaner")
    back = ActivationRequest.from_dict(decode(req.to_bytes()))
    assert back.allocation == PLANNED and back.policy == "gleaner"
    assert orjson.loads(req.to_bytes())["allocation"]["memory"] == 256


def test_an_invocation_without_one_runs_at_the_user_allocation():
    back = ActivationRequest.from_dict(decode(ActivationRequest("a" * 32, "guest", "f").to_bytes()))
    assert back.allocation is None and back.policy is None


@pytest.mark.parametrize(
    ("allocation", "why"),
    [
        ({"cpu": "1", "memory": 256}, "cpu must be a number"),
        ({"cpu": -1, "memory": 256}, "positive"),
        ({"cpu": 1, "memory": 256, "origin": "stolen"}, "origin"),
        ({"memory": 256}, "lacks"),
        ({"cpu": 1, "memory": 256, "predicted": {"cpu": 1}}, "predicted"),
        ("fast", "must be an object"),
    ],
)
def test_a_malformed_allocation_is_refused_with_the_reason(allocation, why):
    data = {"type": "activation.request", "activation_id": "a" * 32, "namespace": "g", "action": "f"}
    with pytest.raises(MalformedEvent, match=why):
        ActivationRequest.from_dict({**data, "allocation": allocation})


def test_an_unknown_policy_on_an_invocation_is_refused():
    data = {"type": "activation.request", "activation_id": "a" * 32, "namespace": "g", "action": "f"}
    with pytest.raises(MalformedEvent, match="policy"):
        ActivationRequest.from_dict({**data, "policy": "greedy"})


def test_a_plan_with_a_malformed_allocation_is_refused():
    data = {"type": "dag.plan", "request": {}, "harvest": True, "allocations": {"1.0": {"cpu": 0}}}
    with pytest.raises(MalformedEvent, match=r"allocations\.1\.0"):
        DagPlan.from_dict(data)


def test_the_composition_stream_hands_each_function_its_planned_allocation():
    plan = DagPlan(request={}, harvest=True, allocations={"1.2": PLANNED.to_dict()}, policy="gleaner")
    dag = {"harvest": plan.summary()}
    assert planned_allocation(dag, 1, 2) == PLANNED
    assert planned_allocation(dag, 1, 0) is None  # not planned: its user allocation
    assert planned_allocation({"harvest": None}, 1, 2) is None
    assert planned_allocation({"harvest": {"allocations": {"1.2": {"cpu": "x"}}}}, 1, 2) is None
    assert dag["harvest"]["policy"] == "gleaner"


def test_a_plan_that_applied_nothing_keeps_its_policy():
    """``harvest`` on a plan says whether a plan applied; it is no switch to contradict."""
    plan = DagPlan(request={}, harvest=False, policy="gleaner")
    assert DagPlan.from_dict(decode(plan.to_bytes())).policy == "gleaner"
    with pytest.raises(MalformedEvent, match="policy"):
        DagPlan.from_dict({**plan.to_dict(), "policy": "greedy"})
