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


def _beat(**kw):
    data = InvokerHealth("i0", "abc", 1, 2.0, 4096, 0.5, 1024, 4, 2).to_dict()
    data.update(kw)
    return data


def test_health_carries_the_schedulers_queue_and_lent_cores():
    health = InvokerHealth("i0", "abc", 1, 2.0, 4096, 0.5, 1024, 4, 2, waiting=3, cpu_lent=0.75)
    data = orjson.loads(health.to_bytes())
    assert (data["waiting"], data["cpu_lent"]) == (3, 0.75)
    assert InvokerHealth.from_dict(data) == health
    # a whole number of cores is still a float once read
    again = InvokerHealth.from_dict({**data, "cpu_lent": 1})
    assert again.cpu_lent == 1.0 and isinstance(again.cpu_lent, float)


def test_an_older_invokers_heartbeat_without_the_schedulers_fields_reads_as_zero():
    old = {k: v for k, v in _beat().items() if k not in ("waiting", "cpu_lent")}
    health = InvokerHealth.from_dict(old)
    assert (health.waiting, health.cpu_lent) == (0, 0.0)
    assert InvokerHealth.from_dict(_beat(waiting=None, cpu_lent=None)) == health


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("waiting", -1),
        ("waiting", 1.5),
        ("waiting", "3"),
        ("waiting", True),
        ("waiting", [1]),
        ("cpu_lent", -0.25),
        ("cpu_lent", "0.5"),
        ("cpu_lent", False),
        ("cpu_lent", float("nan")),
        ("cpu_lent", float("inf")),
        ("cpu_lent", {"cores": 1}),
    ],
)
def test_a_bad_queue_or_lent_value_is_a_malformed_heartbeat(field, value):
    with pytest.raises(MalformedEvent, match=field):
        InvokerHealth.from_dict(_beat(**{field: value}))


def test_a_derived_id_tells_apart_records_at_an_offset_reused_after_a_broker_restart():
    # A memory-only broker starts offsets at 0 again; Redis still remembers the old ids.
    before = derived_activation_id("dag.requests", 0, 5, 1_700_000_000_000)
    assert derived_activation_id("dag.requests", 0, 5, 1_700_000_000_000) == before  # a redelivery
    assert derived_activation_id("dag.requests", 0, 5, 1_700_000_360_000) != before
