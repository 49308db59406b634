"""Recorded ``dag.requests`` events as a trace: spacing, filters, inputs and policies."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from streams.events import DagPlan, DagRequest
from streams.replay.recorded import entries_from_events, known
from streams.replay.trace import TraceEntry

T0 = 1_700_000_000_000  # ms


def req(
    at_ms: int,
    *,
    dag: str = "video",
    namespace: str = "guest",
    input: dict[str, Any] | None = None,
    harvest: bool | None = None,
    policy: str | None = None,
    profile: bool = False,
) -> bytes:
    return DagRequest(
        request_id=uuid.uuid4().hex,
        namespace=namespace,
        dag=dag,
        input=input if input is not None else {"at": at_ms},
        harvest=harvest,
        policy=policy,
        profile=profile,
        submitted_ms=at_ms,
    ).to_bytes()


def test_offsets_keep_the_recorded_spacing_relative_to_the_first():
    values = [req(T0 + 2_500), req(T0), req(T0 + 1_000)]
    entries, skipped = entries_from_events(values)

    assert skipped == 0
    assert [e.offset_s for e in entries] == [0.0, 1.0, 2.5]
    assert [e.input for e in entries] == [{"at": T0}, {"at": T0 + 1_000}, {"at": T0 + 2_500}]
    assert [e.line for e in entries] == [1, 2, 3]
    assert all(e.dag == "video" and e.input_path is None for e in entries)


def test_profile_requests_and_malformed_events_are_skipped_and_counted():
    plan = DagPlan(request={}, harvest=False).to_bytes()
    bad_id = orjson.dumps({"type": "dag.request", "request_id": "nope", "namespace": "guest", "dag": "video"})
    values = [
        req(T0),
        req(T0 + 100, profile=True),
        b"not json",
        None,
        b"[1, 2]",
        plan,
        bad_id,
        orjson.dumps({"type": "dag.request", "namespace": "guest", "dag": "video", "policy": "greedy"}),
        req(T0 + 500),
    ]
    entries, skipped = entries_from_events(values)
    assert skipped == 7
    assert [e.offset_s for e in entries] == [0.0, 0.5]


def test_a_request_recorded_without_an_id_is_kept():
    raw = orjson.dumps(
        {"type": "dag.request", "namespace": "guest", "dag": "video", "input": {"k": 1}, "submitted_ms": T0}
    )
    entries, skipped = entries_from_events([raw, req(T0 + 250)])
    assert skipped == 0
    assert [(e.offset_s, e.input) for e in entries] == [(0.0, {"k": 1}), (0.25, {"at": T0 + 250})]


def test_dag_and_namespace_filters():
    values = [
        req(T0, dag="video"),
        req(T0 + 100, dag="aes"),
        req(T0 + 200, dag="video", namespace="other"),
        req(T0 + 300, dag="video"),
    ]
    entries, skipped = entries_from_events(values, dag="video", namespace="guest")
    assert skipped == 2
    assert [e.offset_s for e in entries] == [0.0, 0.3]

    by_dag, skipped = entries_from_events(values, dag="aes")
    assert skipped == 3
    assert [(e.dag, e.offset_s) for e in by_dag] == [("aes", 0.0)]  # offsets from the first kept

    by_namespace, skipped = entries_from_events(values, namespace="other")
    assert skipped == 3 and [e.input for e in by_namespace] == [{"at": T0 + 200}]


def test_limit_keeps_the_earliest_requests():
    values = [req(T0 + 300), req(T0 + 100), req(T0), req(T0 + 200)]
    entries, skipped = entries_from_events(values, limit=2)
    assert skipped == 0
    assert [e.input for e in entries] == [{"at": T0}, {"at": T0 + 100}]
    assert [e.offset_s for e in entries] == [0.0, 0.1]


def test_resolve_turns_references_back_into_inputs():
    seen: list[dict[str, Any]] = []

    def resolve(value: dict[str, Any], namespace: str) -> Any:
        assert namespace == "guest"  # in the request's own namespace
        seen.append(value)
        return {"resolved": value["$ref"]} if "$ref" in value else value

    values = [req(T0, input={"$ref": "k1"}), req(T0 + 10, input={"inline": True})]
    entries, _ = entries_from_events(values, resolve=resolve)
    assert seen == [{"$ref": "k1"}, {"inline": True}]
    assert [e.input for e in entries] == [{"resolved": "k1"}, {"inline": True}]


def test_an_input_that_does_not_resolve_to_an_object_becomes_empty():
    entries, _ = entries_from_events([req(T0, input={"$ref": "gone"})], resolve=lambda _v, _ns: None)
    assert entries[0].input == {}


@pytest.mark.parametrize(
    ("harvest", "policy", "expected"),
    [
        (True, None, "thesis"),  # harvest: true is the default harvesting policy
        (False, None, "off"),
        (None, None, None),  # the replay's own policy will apply
        (None, "off", "off"),
        (None, "thesis", "thesis"),
        (True, "thesis", "thesis"),
        (False, "off", "off"),
    ],
)
def test_harvest_maps_to_a_policy_and_an_explicit_policy_is_kept(harvest, policy, expected):
    entries, skipped = entries_from_events([req(T0, harvest=harvest, policy=policy)])
    assert skipped == 0
    assert entries[0].policy == expected


def test_a_contradicting_harvest_and_policy_is_skipped():
    entries, skipped = entries_from_events([req(T0, harvest=True, policy="off"), req(T0 + 1)])
    assert skipped == 1 and len(entries) == 1


def test_nothing_to_replay():
    assert entries_from_events([]) == ([], 0)
    assert entries_from_events([b"junk", req(T0, profile=True)]) == ([], 2)
    assert entries_from_events([req(T0)], dag="aes") == ([], 1)


def test_known_names_the_dags_that_are_not_deployed():
    entries = [
        TraceEntry(offset_s=0.0, dag="video", input={}),
        TraceEntry(offset_s=1.0, dag="zeta", input={}),
        TraceEntry(offset_s=2.0, dag="aes", input={}),
        TraceEntry(offset_s=3.0, dag="zeta", input={}),
    ]
    assert known(entries, ["video"]) == ["aes", "zeta"]
    assert known(entries, {"video", "aes", "zeta", "ml"}) == []
    assert known([], ["video"]) == []


def test_a_recorded_request_without_submitted_ms_is_not_scheduled_at_replay_time():
    no_time = orjson.dumps({"type": "dag.request", "namespace": "guest", "dag": "video", "input": {"k": 1}})
    entries, skipped = entries_from_events([req(T0), no_time, req(T0 + 2_500)])
    assert skipped == 1  # without a time and without a broker timestamp, it is skipped
    assert [e.offset_s for e in entries] == [0.0, 2.5]  # the two timed ones keep their spacing


def test_a_request_whose_input_expired_is_skipped_and_the_spacing_starts_at_the_first_kept():
    from gleaner.errors import BadRequest

    def resolve(value: dict[str, Any], _namespace: str) -> dict[str, Any]:
        if value.get("$gleaner_ref") == "gone":
            raise BadRequest("data gone expired or never existed")
        return value

    events = [req(T0, input={"$gleaner_ref": "gone"}), req(T0 + 1_000), req(T0 + 3_000)]
    entries, skipped = entries_from_events(events, resolve=resolve, limit=2)
    assert skipped == 1
    assert [e.offset_s for e in entries] == [0.0, 2.0]
    assert [e.line for e in entries] == [1, 2]
