import orjson
import pytest

from gleaner.errors import MalformedEvent
from streams.events import (
    ActivationCompleted,
    ActivationRequest,
    InvokerHealth,
    decode,
    derived_activation_id,
    new_activation_id,
)


def _req(**kw):
    data = {
        "type": "activation.request",
        "version": 1,
        "activation_id": "a" * 32,
        "namespace": "guest",
        "action": "hello",
        "params": {"x": 1},
    }
    data.update(kw)
    return data


def test_request_round_trip():
    req = ActivationRequest.from_dict(_req())
    again = ActivationRequest.from_dict(decode(req.to_bytes()))
    assert again == req
    assert again.params == {"x": 1}
    urgent = ActivationRequest.from_dict(_req(deadline_ms=9_000, remaining_ms=400, run_ms=120))
    assert ActivationRequest.from_dict(decode(urgent.to_bytes())) == urgent
    assert (urgent.deadline_ms, urgent.remaining_ms, urgent.run_ms) == (9_000, 400, 120)


def test_missing_id_uses_the_stable_fallback():
    data = _req()
    del data["activation_id"]
    fallback = derived_activation_id("invocations", 2, 17)
    assert ActivationRequest.from_dict(data, fallback_id=fallback).activation_id == fallback
    assert derived_activation_id("invocations", 2, 17) == fallback  # same position, same id
    assert derived_activation_id("invocations", 2, 18) != fallback


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"[1,2]", "must be a JSON object"),
        (None, "empty message"),
    ],
)
def test_undecodable_bytes(raw, reason):
    with pytest.raises(MalformedEvent, match=reason):
        decode(raw)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"type": "other"}, "expected type"),
        ({"version": 9}, "unsupported version"),
        ({"namespace": None}, "missing field 'namespace'"),
        ({"action": 5}, "must be str"),
        ({"action": "bad/name"}, "not a valid entity name"),
        ({"params": [1]}, "must be dict"),
        ({"activation_id": "xyz"}, "32 lowercase hex"),
        ({"blocking": 1}, "must be bool"),
        ({"remaining_ms": -1}, "must not be negative"),
        ({"run_ms": "5"}, "must be int"),
        ({"deadline_ms": 1.5}, "must be int"),
    ],
)
def test_invalid_request_fields(change, reason):
    with pytest.raises(MalformedEvent, match=reason):
        ActivationRequest.from_dict(_req(**change))


def test_completion_and_health_round_trip():
    done = ActivationCompleted(
        activation_id=new_activation_id(),
        namespace="guest",
        action="a",
        invoker="i0",
        record={"activationId": "x"},
    )
    assert ActivationCompleted.from_dict(orjson.loads(done.to_bytes())) == done
    health = InvokerHealth(
        invoker="i0",
        incarnation="abc",
        ts_ms=1,
        cpu_capacity=2.0,
        memory_capacity_mb=100,
        cpu_free=1.5,
        memory_free_mb=50,
        queue_length=0,
        running=1,
    )
    assert InvokerHealth.from_dict(orjson.loads(health.to_bytes())) == health
    with pytest.raises(MalformedEvent):
        InvokerHealth.from_dict({**orjson.loads(health.to_bytes()), "queue_length": "many"})


def test_a_derived_id_tells_apart_records_at_an_offset_reused_after_a_broker_restart():
    # A memory-only broker starts offsets at 0 again; Redis still remembers the old ids.
    before = derived_activation_id("dag.requests", 0, 5, 1_700_000_000_000)
    assert derived_activation_id("dag.requests", 0, 5, 1_700_000_000_000) == before  # a redelivery
    assert derived_activation_id("dag.requests", 0, 5, 1_700_000_360_000) != before
