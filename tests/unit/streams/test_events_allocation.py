"""The planned allocation travels on the invocation event and in the plan;
a malformed one is refused with the reason (a dead letter), never half-read."""

from __future__ import annotations

import orjson
import pytest

from gleaner.allocation import Allocation, Predicted
from gleaner.errors import MalformedEvent
from streams.composition.agent import Planned, planned_allocation, stored_allocations
from streams.events import ActivationRequest, DagPlan, allocations_from_wire, allocations_to_wire, decode

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
    plan = DagPlan(request={}, harvest=True, allocations={(1, 2): PLANNED}, policy="gleaner")
    assert planned_allocation(plan.allocations, 1, 2) == PLANNED
    assert planned_allocation(plan.allocations, 1, 0) is None  # not planned: its user allocation
    assert planned_allocation(plan.allocations, None, 2) is None  # a function outside the DAG's stages
    dag = {"harvest": plan.summary()}  # what Redis keeps: the wire form, the record shows it
    assert stored_allocations(dag) == {(1, 2): PLANNED}
    assert dag["harvest"]["allocations"] == {"1.2": PLANNED.to_dict()}
    assert stored_allocations({"harvest": None}) == {}
    assert stored_allocations({"harvest": {"allocations": {"1.2": {"cpu": "x"}}}}) == {}
    assert dag["harvest"]["policy"] == "gleaner"


def test_the_stored_plan_is_decoded_once_per_event_and_only_when_used():
    dag = {"harvest": {"allocations": {"1.2": PLANNED.to_dict()}}}
    planned = Planned(dag)
    first = planned.allocations()
    assert first == {(1, 2): PLANNED}
    dag["harvest"]["allocations"] = {}  # a second call does not decode again
    assert planned.allocations() is first
    carried = {(0, 0): PLANNED}
    assert Planned({}, carried).allocations() is carried  # a plan just decoded is used as it is


def test_the_allocations_codec_round_trips_typed_in_their_order():
    typed = {(2, 1): PLANNED, (0, 0): Allocation(1.0, 512), (10, 12): PLANNED.with_reason("why")}
    wire = allocations_to_wire(typed)
    assert list(wire) == ["2.1", "0.0", "10.12"]
    assert wire["0.0"] == {"cpu": 1.0, "memory": 512, "origin": "user"}
    back = allocations_from_wire(orjson.loads(orjson.dumps(wire)))
    assert back == typed and list(back) == list(typed)
    assert allocations_from_wire({}) == {}


def test_a_plan_keeps_its_allocations_typed_across_the_wire():
    allocations = {(1, 0): PLANNED, (1, 1): PLANNED}
    plan = DagPlan(request={"request_id": "a" * 32}, harvest=True, allocations=allocations)
    raw = orjson.loads(plan.to_bytes())
    assert raw["allocations"] == {"1.0": PLANNED.to_dict(), "1.1": PLANNED.to_dict()}
    back = DagPlan.from_dict(decode(plan.to_bytes()))
    assert back.allocations == {(1, 0): PLANNED, (1, 1): PLANNED}
    assert back == plan


def test_an_old_format_plan_already_in_kafka_still_decodes():
    """What the predictor wrote before the allocations were typed: the same bytes."""
    old = (
        b'{"request": {"request_id": "' + b"a" * 32 + b'", "namespace": "guest", "dag": "d"},'
        b' "harvest": true, "allocations": {"1.0": {"cpu": 0.5, "memory": 256, "origin": "harvest",'
        b' "predicted": {"input_size": 1000, "cpu": 0.4, "memory": 100.0, "duration_ms": 1200.0},'
        b' "cap": 1.0}}, "stages": [], "reasons": [], "model_version": "v1", "inference_ms": 1.5,'
        b' "policy": "gleaner", "type": "dag.plan", "version": 1}'
    )
    plan = DagPlan.from_dict(decode(old))
    assert plan.allocations == {(1, 0): PLANNED} and plan.policy == "gleaner"
    assert orjson.loads(plan.to_bytes())["allocations"] == orjson.loads(old)["allocations"]
    none = {"type": "dag.plan", "request": {}, "harvest": False, "allocations": None}
    no_allocations = DagPlan.from_dict(none)
    assert no_allocations.allocations == {}


@pytest.mark.parametrize("key", ["x", "1", "1.0.0", "-1.0", "01.0", "1.", ".1", " 1.0"])
def test_a_plan_whose_allocation_key_is_no_slot_is_refused(key):
    data = {"type": "dag.plan", "request": {}, "harvest": True, "allocations": {key: PLANNED.to_dict()}}
    with pytest.raises(MalformedEvent, match=r"stage\.index"):
        DagPlan.from_dict(data)
    with pytest.raises(MalformedEvent, match="must be dict"):
        DagPlan.from_dict({**data, "allocations": [PLANNED.to_dict()]})


def test_a_plan_that_applied_nothing_keeps_its_policy():
    """``harvest`` on a plan says whether a plan applied; it is no switch to contradict."""
    plan = DagPlan(request={}, harvest=False, policy="gleaner")
    assert DagPlan.from_dict(decode(plan.to_bytes())).policy == "gleaner"
    with pytest.raises(MalformedEvent, match="policy"):
        DagPlan.from_dict({**plan.to_dict(), "policy": "greedy"})
