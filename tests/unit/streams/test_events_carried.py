"""What a DAG request carries from where it enters: its ``input_size`` (measured once) and
``dag_rev`` (the DAG version read for it). Both optional on the wire, so a request from any
Kafka client, or one already in Kafka, reads as "not measured / not read yet"."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gleaner.errors import MalformedEvent
from streams.events import DagPlan, DagRequest, decode

RID = "a" * 32
BASE = {"type": "dag.request", "version": 1, "request_id": RID, "namespace": "guest", "dag": "d"}


def test_a_request_without_it_reads_as_not_measured_and_writes_without_it() -> None:
    old = orjson.dumps({**BASE, "input": {"n": 1}, "harvest": None, "policy": None, "profile": False})
    req = DagRequest.from_dict(decode(old))
    assert req.input_size is None and req.dag_rev is None and req.input == {"n": 1}
    for name in ("input_size", "dag_rev"):
        assert name not in req.to_dict() and name not in orjson.loads(req.to_bytes())


@pytest.mark.parametrize("size", [0, 3, 20_000_000])
def test_it_round_trips(size: int) -> None:
    req = DagRequest(RID, "guest", "d", {"n": 1}, submitted_ms=5, input_size=size)
    assert orjson.loads(req.to_bytes())["input_size"] == size
    assert DagRequest.from_dict(decode(req.to_bytes())) == req


def test_it_travels_inside_the_plan_to_the_composition_stream() -> None:
    req = DagRequest(RID, "guest", "d", {"n": 1}, submitted_ms=5, input_size=7)
    plan = DagPlan(request=req.to_dict(), harvest=False)
    carried = DagPlan.from_dict(decode(plan.to_bytes())).request
    assert DagRequest.from_dict(carried).input_size == 7


@pytest.mark.parametrize(
    ("value", "match"),
    [(-1, "must not be negative"), (1.5, "must be int"), (True, "got bool"), ("12", "must be int")],
)
def test_a_bad_value_is_malformed(value: Any, match: str) -> None:
    with pytest.raises(MalformedEvent, match=match):
        DagRequest.from_dict({**BASE, "input_size": value})


def test_the_dag_revision_round_trips_and_travels_inside_the_plan() -> None:
    req = DagRequest(RID, "guest", "d", {"n": 1}, submitted_ms=5, dag_rev="3-abc")
    assert orjson.loads(req.to_bytes())["dag_rev"] == "3-abc"
    assert DagRequest.from_dict(decode(req.to_bytes())) == req
    plan = DagPlan(request=req.to_dict(), harvest=False)
    assert DagRequest.from_dict(DagPlan.from_dict(decode(plan.to_bytes())).request).dag_rev == "3-abc"


@pytest.mark.parametrize("value", [3, True, {"rev": "1-a"}])
def test_a_dag_revision_that_is_no_string_is_malformed(value: Any) -> None:
    with pytest.raises(MalformedEvent, match="dag_rev"):
        DagRequest.from_dict({**BASE, "dag_rev": value})
