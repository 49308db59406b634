"""The ``policy`` field of ``dag.request`` events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gleaner.errors import MalformedEvent
from streams.events import DagRequest, decode

RID = "a" * 32


def raw(**fields: Any) -> dict[str, Any]:
    return {
        "type": "dag.request",
        "version": 1,
        "request_id": RID,
        "namespace": "guest",
        "dag": "video",
        "input": {"k": 1},
        "submitted_ms": 1_700_000_000_000,
        **fields,
    }


@pytest.mark.parametrize("policy", ["off", "thesis"])
def test_a_known_policy_is_accepted(policy):
    req = DagRequest.from_dict(raw(policy=policy))
    assert req.policy == policy
    assert req.harvest is None


def test_no_policy_is_none():
    assert DagRequest.from_dict(raw()).policy is None
    assert DagRequest.from_dict(raw(policy=None)).policy is None


@pytest.mark.parametrize("policy", ["greedy", "", "THESIS"])
def test_an_unknown_policy_is_malformed(policy):
    with pytest.raises(MalformedEvent, match="policy") as info:
        DagRequest.from_dict(raw(policy=policy))
    assert "off, thesis" in str(info.value)


def test_a_policy_that_is_not_a_string_is_malformed():
    with pytest.raises(MalformedEvent, match="'policy' must be str"):
        DagRequest.from_dict(raw(policy=1))


@pytest.mark.parametrize(("harvest", "policy"), [(True, "off"), (False, "thesis")])
def test_harvest_contradicting_the_policy_is_malformed(harvest, policy):
    with pytest.raises(MalformedEvent, match="contradict"):
        DagRequest.from_dict(raw(harvest=harvest, policy=policy))


@pytest.mark.parametrize(("harvest", "policy"), [(True, "thesis"), (False, "off")])
def test_harvest_agreeing_with_the_policy_is_kept(harvest, policy):
    req = DagRequest.from_dict(raw(harvest=harvest, policy=policy))
    assert (req.harvest, req.policy) == (harvest, policy)


@pytest.mark.parametrize("policy", ["off", "thesis", None])
def test_round_trip_through_to_dict_and_bytes(policy):
    req = DagRequest(
        request_id=RID,
        namespace="guest",
        dag="video",
        input={"k": [1, 2]},
        policy=policy,
        submitted_ms=1_700_000_000_000,
    )
    assert req.to_dict()["policy"] == policy
    assert DagRequest.from_dict(req.to_dict()) == req
    assert DagRequest.from_dict(decode(req.to_bytes())) == req
    assert orjson.loads(req.to_bytes())["policy"] == policy
