"""Requests produced straight to Kafka by a tenant's own client (its key in a
header); dead letters; duplicates."""

from __future__ import annotations

import textwrap
import time
import uuid

import confluent_kafka
import orjson
import pytest

from tests.integration import kafka_clients
from tests.integration.conftest import TEST_AUTH, TEST_NAMESPACE, stored_record

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def producer(stack_up):
    p = kafka_clients.tenant(stack_up, TEST_AUTH)
    yield p
    p.flush(10)


@pytest.fixture(scope="module")
def echo(ow):
    code = "def main(args):\n    return {'echo': args}\n"
    ow.put_action("kafka-echo", {"exec": {"kind": "python:3", "code": code}}, overwrite=True)
    return "kafka-echo"


def request_event(action: str, params: dict, activation_id: str | None = None) -> dict:
    event = {
        "type": "activation.request",
        "version": 1,
        "namespace": TEST_NAMESPACE,
        "action": action,
        "params": params,
    }
    if activation_id:
        event["activation_id"] = activation_id
    return event


def read_topic(settings, topic: str, match: bytes, *, want: int = 1, seconds: float = 30.0) -> list[dict]:
    """Events on ``topic`` whose bytes contain ``match``, read from the start until
    ``want`` are found or time runs out."""
    c = confluent_kafka.Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": uuid.uuid4().hex,
            "enable.auto.commit": False,
        }
    )
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in parts])
    found: list[dict] = []
    deadline = time.monotonic() + seconds
    while len(found) < want and time.monotonic() < deadline:
        msg = c.poll(0.2)
        if msg is not None and not msg.error() and match in (msg.value() or b""):
            found.append(orjson.loads(msg.value()))
    c.close()
    return found


def _read_to_end(settings, topic: str, match: bytes) -> list[dict]:
    c = confluent_kafka.Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": uuid.uuid4().hex,
            "enable.auto.commit": False,
        }
    )
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {
        p: c.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=10)[1] for p in parts
    }
    c.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in parts])
    found, left = [], {p for p, end in ends.items() if end > 0}
    stop = time.monotonic() + 20
    while left and time.monotonic() < stop:
        msg = c.poll(0.2)
        if msg is None or msg.error():
            continue
        if match in (msg.value() or b""):
            found.append(orjson.loads(msg.value()))
        if msg.offset() >= ends[msg.partition()] - 1:
            left.discard(msg.partition())
    c.close()
    return found


def test_a_plain_kafka_producer_can_invoke(stack_up, producer, couch, echo):
    activation_id = uuid.uuid4().hex
    producer.produce(
        stack_up.invocations_topic, orjson.dumps(request_event(echo, {"via": "kafka"}, activation_id))
    )
    producer.flush(10)
    rec = stored_record(couch, activation_id)
    assert rec["response"]["result"] == {"echo": {"via": "kafka"}}


def test_malformed_events_go_to_the_dead_letter_topic(stack_up, producer, couch, echo):
    marker = uuid.uuid4().hex
    producer.produce(stack_up.invocations_topic, f"this is not json {marker}".encode())
    bad = request_event(echo, {}, "short-id")
    bad["marker"] = marker
    producer.produce(stack_up.invocations_topic, orjson.dumps(bad))
    # and the consumer keeps going: a valid request right behind them still runs
    good = uuid.uuid4().hex
    producer.produce(stack_up.invocations_topic, orjson.dumps(request_event(echo, {"after": marker}, good)))
    producer.flush(10)
    assert stored_record(couch, good)["response"]["result"] == {"echo": {"after": marker}}
    letters = read_topic(stack_up, stack_up.deadletter_topic, marker.encode(), want=2)
    reasons = sorted(letter["reason"] for letter in letters)
    assert len(letters) == 2, letters
    assert any("not valid JSON" in r for r in reasons) and any("activation_id" in r for r in reasons)
    assert all(letter["source_topic"] == stack_up.invocations_topic for letter in letters)


def test_unknown_action_on_kafka_is_dead_lettered(stack_up, producer):
    activation_id = uuid.uuid4().hex
    producer.produce(
        stack_up.invocations_topic, orjson.dumps(request_event("no-such-action", {}, activation_id))
    )
    producer.flush(10)
    letters = read_topic(stack_up, stack_up.deadletter_topic, activation_id.encode())
    assert letters and "does not exist" in letters[0]["reason"]


def test_a_duplicate_event_runs_once(stack_up, producer, couch, ow):
    code = textwrap.dedent("""
        import time
        def main(args):
            time.sleep(0.3)
            return {"ran": True}
    """)
    ow.put_action("dup-check", {"exec": {"kind": "python:3", "code": code}}, overwrite=True)
    activation_id = uuid.uuid4().hex
    payload = orjson.dumps(request_event("dup-check", {}, activation_id))
    for _ in range(3):
        producer.produce(stack_up.invocations_topic, payload)
    producer.flush(10)
    stored_record(couch, activation_id)
    time.sleep(2)  # give any duplicate run time to show up
    completions = _read_to_end(stack_up, stack_up.completed_topic, activation_id.encode())
    assert len(completions) == 1, f"{len(completions)} completions for one activation id"
