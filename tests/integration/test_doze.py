"""Requests after a quiet spell, when every consumer on their path dozes: one from
the gateway (its producer rings the doorbell) and one from a tenant's own Kafka
client (no bell: the consumers find it at a probe). Both must run; the time each
took is printed (``-s``), not asserted."""

from __future__ import annotations

import time
import uuid

import orjson
import pytest

from tests.integration import kafka_clients
from tests.integration.conftest import TEST_AUTH, TEST_NAMESPACE, stored_record

pytestmark = pytest.mark.integration

ECHO = "def main(args):\n    return {'echo': args}\n"


@pytest.fixture(scope="module")
def echo(ow) -> str:
    name = "doze-echo"
    ow.put_action(name, {"exec": {"kind": "python:3", "code": ECHO}}, overwrite=True)
    ow.invoke(name, {}, blocking=True, result=False)  # warm: the quiet spell is the only delay
    return name


def quiet_spell(settings) -> None:
    """Long enough for every consumer on the path to doze."""
    time.sleep(settings.kafka_idle_after_ms / 1000 + 3)


def test_a_gateway_request_after_a_quiet_spell_runs(stack_up, ow, echo):
    quiet_spell(stack_up)
    start = time.monotonic()
    status, rec = ow.invoke(echo, {"after": "quiet"}, blocking=True, result=False)
    took_ms = (time.monotonic() - start) * 1000
    assert status == 200, rec
    assert rec["response"]["result"] == {"echo": {"after": "quiet"}}
    _, warm = ow.invoke(echo, {"after": "warm"}, blocking=True, result=False)
    print(
        f"\nfirst request after idle: {took_ms:.0f} ms (action {rec['duration']} ms);"
        f" the next: action {warm['duration']} ms"
    )


def test_a_tenant_kafka_request_after_a_quiet_spell_runs(stack_up, couch, echo):
    producer = kafka_clients.tenant(stack_up, TEST_AUTH)
    quiet_spell(stack_up)
    activation_id = uuid.uuid4().hex
    event = {
        "type": "activation.request",
        "version": 1,
        "namespace": TEST_NAMESPACE,
        "action": echo,
        "params": {"via": "kafka"},
        "activation_id": activation_id,
    }
    producer.produce(stack_up.invocations_topic, orjson.dumps(event))
    producer.flush(10)
    rec = stored_record(couch, activation_id)
    assert rec["response"]["result"] == {"echo": {"via": "kafka"}}
