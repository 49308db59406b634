"""The ``profile_cpu`` field of ``dag.request`` events: the cores a profile request asks
every function to run with (the profiler's CPU sweep)."""

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


def test_an_event_without_it_reads_as_before_and_writes_without_it() -> None:
    req = DagRequest.from_dict(raw(profile=True))
    assert req.profile and req.profile_cpu is None
    assert "profile_cpu" not in req.to_dict()
    assert "profile_cpu" not in orjson.loads(req.to_bytes())
    assert DagRequest.from_dict(raw(profile=True, profile_cpu=None)) == req
    plain = DagRequest(RID, "guest", "video", {"k": 1}, submitted_ms=1)
    assert set(orjson.loads(plain.to_bytes())) == set(raw()) | {"harvest", "policy", "profile"}


@pytest.mark.parametrize("cores", [0.5, 1, 1.25, 64.0])
def test_round_trip_through_to_dict_and_bytes(cores: float) -> None:
    req = DagRequest(RID, "guest", "video", {"k": 1}, profile=True, profile_cpu=float(cores), submitted_ms=1)
    assert req.to_dict()["profile_cpu"] == cores
    assert DagRequest.from_dict(req.to_dict()) == req
    assert DagRequest.from_dict(decode(req.to_bytes())) == req
    read = DagRequest.from_dict(raw(profile=True, profile_cpu=cores))
    assert read.profile_cpu == cores and isinstance(read.profile_cpu, float)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (0, "positive, finite"),
        (-1.0, "positive, finite"),
        (float("nan"), "positive, finite"),
        (float("inf"), "positive, finite"),
        ("1", "'profile_cpu' must be"),
        (True, "'profile_cpu' must be"),
        ([1], "'profile_cpu' must be"),
    ],
)
def test_a_bad_value_is_malformed(value: Any, match: str) -> None:
    with pytest.raises(MalformedEvent, match=match):
        DagRequest.from_dict(raw(profile=True, profile_cpu=value))


@pytest.mark.parametrize("profile", [False, None])
def test_it_is_malformed_without_profile(profile: bool | None) -> None:
    fields: dict[str, Any] = {"profile_cpu": 1.0}
    if profile is not None:
        fields["profile"] = profile
    with pytest.raises(MalformedEvent, match="only meaningful with 'profile'"):
        DagRequest.from_dict(raw(**fields))
