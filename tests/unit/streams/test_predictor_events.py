"""The predictor stream's per-event step: a plan, or a dead letter with the
reason, for every event a Kafka client can produce."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from gleaner.errors import CouchDBError, MalformedEvent, RedisError
from streams.events import DagPlan, DagRequest, decode
from streams.kafka.runner import dead_letter_reason
from streams.kafka.signing import Signer, normalize_headers, tenant_headers
from streams.predictor_stream.events import (
    DEADLETTERS,
    PLANS,
    Gate,
    Held,
    Incoming,
    Outgoing,
    Where,
    plan_event,
    plan_events,
    plan_or_hold,
)

WHERE = Where("dag.requests", 0, 7)
LIMIT = 10_000
RID = "a" * 32


class EchoPlanner:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def plan_batch(self, reqs: Sequence[DagRequest]) -> list[DagPlan | Exception]:
        if self.error is not None:
            raise self.error
        return [DagPlan(request=req.to_dict(), harvest=False) for req in reqs]


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


def test_without_a_hold_a_key_store_outage_parks_a_tenants_request_with_why():
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


def test_any_transient_error_of_the_key_store_holds_and_a_bug_is_dead_lettered_as_planning():
    def away(_credential: str) -> str | None:
        raise RedisError("connection refused")  # transient, though not CouchDB's

    def broken(_credential: str) -> str | None:
        raise KeyError("uuid")

    tenant = Incoming(b"k", request(), WHERE, normalize_headers(tenant_headers("u:guest-key")))
    (held,) = plan_or_hold(EchoPlanner(), [tenant], LIMIT, Gate(SIGNER, away), lambda _: True)
    assert isinstance(held, Held) and "the key store could not be read (connection refused)" in held.reason
    (out,) = plan_or_hold(EchoPlanner(), [tenant], LIMIT, Gate(SIGNER, broken), lambda _: True)
    assert not isinstance(out, Held)
    assert orjson.loads(out.value)["reason"] == dead_letter_reason(KeyError("uuid"), "planning")
    assert orjson.loads(out.value)["reason"] == "planning failed: KeyError: 'uuid'"


def test_the_reasons_of_dead_letters_are_the_runners():
    bad = letter(b"{not json")
    with pytest.raises(MalformedEvent) as caught:
        decode(b"{not json")
    assert bad["reason"] == dead_letter_reason(caught.value)
    failed = letter(request(), EchoPlanner(CouchDBError("down")))
    assert failed["reason"] == dead_letter_reason(CouchDBError("down")) == "CouchDBError: down"


# --- a batch of events ----------------------------------------------------------------------------


def at(offset: int) -> Where:
    return Where("dag.requests", 0, offset, 1_700_000_000_000)


def signed(raw: bytes, where: Where) -> Incoming:
    return Incoming(b"k", raw, where, normalize_headers(SIGNER.headers(where.topic, b"k", raw)))


def rid(n: int) -> str:
    return f"{n:032x}"


def test_a_batch_yields_one_outcome_per_event_in_order():
    good = [request(request_id=rid(i)) for i in range(3)]
    batch = [
        signed(good[0], at(0)),
        signed(request(input={"blob": "x" * LIMIT}), at(1)),  # too large
        signed(good[1], at(2)),
        signed(b"{not json", at(3)),
        Incoming(
            b"k", good[2], at(4), normalize_headers(Signer(b"o" * 32).headers("dag.requests", b"k", good[2]))
        ),
        Incoming(b"k", request(request_id=rid(5)), at(5), ()),  # no credential
        signed(good[2], at(6)),
    ]
    outs = plan_events(EchoPlanner(), batch, LIMIT, GATE)
    assert [o.topic for o in outs] == [
        PLANS,
        DEADLETTERS,
        PLANS,
        DEADLETTERS,
        DEADLETTERS,
        DEADLETTERS,
        PLANS,
    ]
    assert [o.key for o in outs if o.topic == PLANS] == [rid(0).encode(), rid(1).encode(), rid(2).encode()]
    reasons = [orjson.loads(o.value)["reason"] for o in outs if o.topic == DEADLETTERS]
    assert "above the limit" in reasons[0] and reasons[1].startswith("not valid JSON")
    assert "forged event" in reasons[2] and "not proven: no credential" in reasons[3]
    offsets = [orjson.loads(o.value)["offset"] for o in outs if o.topic == DEADLETTERS]
    assert offsets == [1, 3, 4, 5]


def comparable(out: Outgoing) -> tuple[str, bytes | None, dict[str, Any]]:
    value = orjson.loads(out.value)
    value.pop("ts_ms", None)  # when the dead letter was written
    return out.topic, out.key, value


def test_a_batch_has_the_outcomes_of_its_events_one_by_one():
    batch = [signed(request(request_id=rid(i), submitted_ms=1), at(i)) for i in range(4)]
    batch.append(signed(b"[]", at(9)))
    together = plan_events(EchoPlanner(), batch, LIMIT, GATE)
    alone = [plan_event(EchoPlanner(), e.key, e.raw, e.where, LIMIT, GATE, e.headers) for e in batch]
    assert [comparable(o) for o in together] == [comparable(o) for o in alone]


def test_a_plan_is_written_as_the_event_writes_itself():
    plan = DagPlan(request={"request_id": RID, "input": {"n": [1, 2.5, None]}}, harvest=True, reasons=["r"])

    class Fixed:
        def plan_batch(self, reqs: Sequence[DagRequest]) -> list[DagPlan | Exception]:
            return [plan for _ in reqs]

    out = plan_event(Fixed(), b"k", request(), WHERE, LIMIT)
    assert out.value == plan.to_bytes()


def test_a_redelivered_request_without_an_id_gets_the_same_plan_id_in_any_batch():
    raw = orjson.dumps({"type": "dag.request", "namespace": "guest", "dag": "d", "input": {"n": 1}})
    first = plan_events(EchoPlanner(), [signed(raw, at(7))], LIMIT, GATE)[0]
    again = plan_events(EchoPlanner(), [signed(request(), at(3)), signed(raw, at(7))], LIMIT, GATE)[1]
    assert first.topic == again.topic == PLANS and first.key == again.key
    assert first.key == SIGNER.position_id("dag.requests", 0, 7, 1_700_000_000_000).encode()


class PartlyFailing:
    """Fails the request for DAG ``bad``: alone with its own exception, or the whole batch."""

    def __init__(self, whole_batch: bool) -> None:
        self.whole_batch = whole_batch
        self.batches: list[int] = []

    def plan_batch(self, reqs: Sequence[DagRequest]) -> list[DagPlan | Exception]:
        self.batches.append(len(reqs))
        if self.whole_batch and len(reqs) > 1 and any(r.dag == "bad" for r in reqs):
            raise RuntimeError("a bug in batching")
        return [
            RuntimeError("the model exploded")
            if r.dag == "bad"
            else DagPlan(request=r.to_dict(), harvest=False)
            for r in reqs
        ]


def test_a_request_that_fails_to_plan_does_not_sink_the_others():
    for whole_batch in (False, True):
        planner = PartlyFailing(whole_batch)
        batch = [signed(request(request_id=rid(i), dag="bad" if i == 1 else "d"), at(i)) for i in range(3)]
        outs = plan_events(planner, batch, LIMIT, GATE)
        assert [o.topic for o in outs] == [PLANS, DEADLETTERS, PLANS]
        assert orjson.loads(outs[1].value)["reason"] == "planning failed: RuntimeError: the model exploded"
        # a bug in the batch itself: each request is planned alone
        assert planner.batches == ([3, 1, 1, 1] if whole_batch else [3])


def test_a_batch_of_dead_letters_never_calls_the_planner():
    planner = PartlyFailing(False)
    outs = plan_events(planner, [signed(b"{", at(0)), Incoming(b"k", None, at(1))], LIMIT, GATE)
    assert [o.topic for o in outs] == [DEADLETTERS, DEADLETTERS] and planner.batches == []


class CountingSigner(Signer):
    """Counts the HMACs the gate computes."""

    def __init__(self, secret: bytes) -> None:
        super().__init__(secret)
        self.hmacs = 0

    def signature(self, topic: str, key: str | bytes | None, value: bytes | None) -> bytes:
        self.hmacs += 1
        return super().signature(topic, key, value)

    def derive(self, purpose: str, *parts: str) -> str:
        self.hmacs += 1
        return super().derive(purpose, *parts)


def test_a_signed_request_with_its_id_costs_one_hmac():
    signer = CountingSigner(b"s" * 32)
    raw = request()
    headers = normalize_headers(signer.headers(WHERE.topic, b"k", raw))
    signer.hmacs = 0
    out = plan_event(EchoPlanner(), b"k", raw, WHERE, LIMIT, Gate(signer, KEYS.get), headers)
    assert out.topic == PLANS and out.key == RID.encode()
    assert signer.hmacs == 1  # the signature check; no position id (it has an id), no second check


# --- a key store outage: held, in each partition's order -------------------------------------------


class Flaky:
    """A key check that fails with a store error while ``down``, counting its calls."""

    def __init__(self) -> None:
        self.down = True
        self.calls = 0

    def __call__(self, credential: str) -> str | None:
        self.calls += 1
        if self.down:
            raise CouchDBError("connection refused")
        return KEYS.get(credential)


def tenant(raw: bytes, where: Where) -> Incoming:
    return Incoming(b"k", raw, where, normalize_headers(tenant_headers("u:guest-key")))


def on(partition: int, offset: int) -> Where:
    return Where("dag.requests", partition, offset, 1_700_000_000_000)


def test_a_tenants_request_the_key_store_cannot_check_is_held_with_the_rest_of_its_partition():
    store = Flaky()
    batch = [
        signed(request(request_id=rid(0)), on(0, 0)),
        tenant(request(request_id=rid(1)), on(0, 1)),  # the store is down: held
        signed(request(request_id=rid(2)), on(0, 2)),  # behind it: held, unread
        signed(b"{not json", on(0, 3)),  # even a dead letter waits its turn
        signed(request(request_id=rid(4)), on(1, 0)),  # another partition goes on
    ]
    outs = plan_or_hold(EchoPlanner(), batch, LIMIT, Gate(SIGNER, store), lambda _: True, 120.0)
    assert isinstance(outs[0], Outgoing) and outs[0].key == rid(0).encode()
    assert outs[1] == Held("the key store could not be read (connection refused)")
    behind = Held("an earlier request of dag.requests[0] waits", behind=True)
    assert outs[2] == outs[3] == behind
    assert isinstance(outs[4], Outgoing) and outs[4].topic == PLANS and outs[4].key == rid(4).encode()
    assert store.calls == 1


def test_a_blocked_partition_holds_its_events_without_reading_them():
    store = Flaky()
    batch = [tenant(request(request_id=rid(0)), on(0, 5)), tenant(request(request_id=rid(1)), on(1, 5))]
    blocked = {("dag.requests", 0)}
    outs = plan_or_hold(EchoPlanner(), batch, LIMIT, Gate(SIGNER, store), lambda _: True, 120.0, blocked)
    assert outs[0] == Held("an earlier request of dag.requests[0] waits", behind=True)
    assert outs[1] == Held("the key store could not be read (connection refused)")
    assert store.calls == 1  # only the unblocked partition's request asked the store


def test_a_request_that_has_waited_its_bound_is_dead_lettered_with_why_and_the_next_goes_on():
    store = Flaky()
    batch = [tenant(request(request_id=rid(0)), on(0, 0)), signed(request(request_id=rid(1)), on(0, 1))]
    outs = plan_or_hold(EchoPlanner(), batch, LIMIT, Gate(SIGNER, store), lambda _: False, 120.0)
    assert isinstance(outs[0], Outgoing) and outs[0].topic == DEADLETTERS
    assert orjson.loads(outs[0].value)["reason"] == (
        "namespace guest not proven: the key store could not be read (connection refused)"
        " and the request waited 120 s for it; send it again"
    )
    assert isinstance(outs[1], Outgoing) and outs[1].topic == PLANS


def test_a_platform_signed_request_never_asks_the_key_store():
    store = Flaky()
    batch = [signed(request(request_id=rid(i)), on(i % 2, i)) for i in range(4)]
    outs = plan_or_hold(EchoPlanner(), batch, LIMIT, Gate(SIGNER, store), lambda _: True, 120.0)
    assert [o.topic for o in outs if isinstance(o, Outgoing)] == [PLANS] * 4 and store.calls == 0
