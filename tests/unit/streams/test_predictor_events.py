"""The predictor stream's per-event step: a plan, or a dead letter with the
reason, for every event a Kafka client can produce."""

from __future__ import annotations

from typing import Any

import orjson

from gleaner.errors import CouchDBError
from gleaner.kafka_auth import tenant_headers
from streams.events import DagPlan, DagRequest
from streams.kafka.signing import Signer, normalize_headers
from streams.predictor_stream.events import DEADLETTERS, PLANS, Gate, Where, plan_event

WHERE = Where("dag.requests", 0, 7)
LIMIT = 10_000
RID = "a" * 32


class EchoPlanner:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def plan(self, req: DagRequest) -> DagPlan:
        if self.error is not None:
            raise self.error
        return DagPlan(request=req.to_dict(), harvest=False)


def request(**kw: Any) -> bytes:
    event = {"type": "dag.request", "request_id": RID, "namespace": "guest", "dag": "d", "input": {"n": 1}}
    return orjson.dumps({**event, **kw})


def letter(raw: bytes | None, planner: EchoPlanner | None = None) -> dict[str, Any]:
    out = plan_event(planner or EchoPlanner(), b"k", raw, WHERE, LIMIT)
    assert out.topic == DEADLETTERS and out.key == b"k"
    value: dict[str, Any] = orjson.loads(out.value)
    assert (value["source_topic"], value["partition"], value["offset"]) == ("dag.requests", 0, 7)
    return value


def test_a_good_request_yields_its_plan_keyed_by_request_id():
    out = plan_event(EchoPlanner(), b"k", request(), WHERE, LIMIT)
    assert out.topic == PLANS and out.key == RID.encode()
    assert orjson.loads(out.value)["request"]["request_id"] == RID


def test_an_oversized_event_is_dead_lettered_with_its_size():
    raw = request(input={"blob": "x" * LIMIT})
    got = letter(raw)
    assert got["reason"] == f"an event of {len(raw)} bytes is above the limit of {LIMIT} bytes"


def test_malformed_events_are_dead_lettered_with_the_reason():
    assert letter(None)["reason"] == "empty message (no value)"
    assert letter(b"{not json")["reason"].startswith("not valid JSON")
    assert "missing field 'dag'" in letter(orjson.dumps({"type": "dag.request", "namespace": "g"}))["reason"]


def test_an_input_nested_past_what_json_can_write_is_dead_lettered():
    deep = b"[" * 300 + b"1" + b"]" * 300  # orjson reads this but writes at most 254 levels
    got = letter(request(input={"deep": 0}).replace(b'{"deep":0}', b'{"deep":' + deep + b"}"))
    assert got["reason"].startswith("the event cannot be written as JSON")


def test_a_planner_bug_is_dead_lettered_not_a_crash():
    got = letter(request(), EchoPlanner(KeyError("allocations")))
    assert got["reason"].startswith("planning failed: KeyError")


def test_a_plan_above_the_limit_is_dead_lettered():
    raw = request(input={"blob": "x" * (LIMIT - 200)})
    assert len(raw) <= LIMIT
    got = letter(raw)  # the plan carries the request, plus its own fields
    assert "its plan of" in got["reason"] and f"above the limit of {LIMIT} bytes" in got["reason"]


def test_a_store_error_in_the_planner_is_a_dead_letter_only_if_it_escapes():
    # The planner keeps user allocations on store trouble; if one escapes, the event is parked with why.
    got = letter(request(), EchoPlanner(CouchDBError("down")))
    assert "CouchDBError" in got["reason"]


# --- who may write a request --------------------------------------------------------------------

SIGNER = Signer(b"s" * 32)
KEYS = {"u:guest-key": "guest", "u:other-key": "other"}
GATE = Gate(SIGNER, KEYS.get)


def gated(raw: bytes, headers: tuple[tuple[str, bytes], ...]) -> tuple[str, str]:
    out = plan_event(EchoPlanner(), b"k", raw, WHERE, LIMIT, GATE, headers)
    return out.topic, orjson.loads(out.value).get("reason", "")


def test_the_gateways_signed_request_and_a_tenants_keyed_one_are_planned():
    raw = request()
    assert gated(raw, normalize_headers(SIGNER.headers(WHERE.topic, b"k", raw)))[0] == PLANS
    assert gated(raw, normalize_headers(tenant_headers("u:guest-key")))[0] == PLANS


def test_a_request_that_cannot_prove_its_namespace_is_dead_lettered_with_why():
    raw = request()
    assert gated(raw, ()) == (
        DEADLETTERS,
        "namespace guest not proven: no credential (a 'gleaner-auth' header with its uuid:key)",
    )
    assert gated(raw, normalize_headers(tenant_headers("u:other-key")))[1] == (
        "namespace guest not proven: the credential does not belong to namespace guest"
    )
    assert (
        gated(raw, normalize_headers(tenant_headers("u:wrong")))[1]
        == "namespace guest not proven: the credential is not a valid key"
    )
    forged = normalize_headers(Signer(b"o" * 32).headers(WHERE.topic, b"k", raw))
    assert gated(raw, forged)[1] == "forged event on dag.requests: its platform signature does not match"


def test_a_key_store_outage_parks_a_tenants_request_with_why():
    def down(_credential: str) -> str | None:
        raise CouchDBError("connection refused")

    out = plan_event(
        EchoPlanner(),
        b"k",
        request(),
        WHERE,
        LIMIT,
        Gate(SIGNER, down),
        normalize_headers(tenant_headers("u:guest-key")),
    )
    reason = orjson.loads(out.value)["reason"]
    assert out.topic == DEADLETTERS and "the key store could not be read (connection refused)" in reason
