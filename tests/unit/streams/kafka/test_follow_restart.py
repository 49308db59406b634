"""A group-less reader (assign_latest) reads a partition again from its start once the
broker lost its log and began again; a growing log is left alone (librdkafka replaced by
a fake that plays a broker restart)."""

from __future__ import annotations

from typing import Any

import confluent_kafka
import pytest

from gleaner.settings import load_settings
from streams.kafka import client
from streams.kafka.client import EventConsumer, restarted_partitions

TOPIC = "gleaner.completed"


def test_a_log_end_that_went_back_is_a_restart():
    seen = {(TOPIC, 0): 120, (TOPIC, 1): 80}
    assert restarted_partitions(seen, {(TOPIC, 0): (0, 3), (TOPIC, 1): (0, 95)}) == {(TOPIC, 0): 0}
    assert restarted_partitions(seen, {(TOPIC, 0): (0, 120), (TOPIC, 1): (0, 80)}) == {}
    # An unknown end (-1: not answered) and a partition never seen are not restarts.
    assert restarted_partitions(seen, {(TOPIC, 0): (-1, -1), (TOPIC, 2): (0, 0)}) == {}


class Broker:
    def __init__(self) -> None:
        self.ends = {0: 120, 1: 80}
        self.down = False


class FakeConsumer:
    broker = Broker()

    def __init__(self, _config: dict[str, Any]) -> None:
        self.assigned: list[confluent_kafka.TopicPartition] = []

    def list_topics(self, timeout: float) -> Any:
        return type("Meta", (), {"topics": {TOPIC: type("T", (), {"partitions": {0: None, 1: None}})()}})()

    def get_watermark_offsets(self, tp: Any, timeout: float, cached: bool = False) -> tuple[int, int]:
        if self.broker.down:
            raise confluent_kafka.KafkaException("broker away")
        return 0, self.broker.ends[tp.partition]

    def assign(self, parts: list[confluent_kafka.TopicPartition]) -> None:
        self.assigned = list(parts)

    def assignment(self) -> list[confluent_kafka.TopicPartition]:
        return self.assigned

    def position(self, parts: list[confluent_kafka.TopicPartition]) -> list[confluent_kafka.TopicPartition]:
        return parts

    def poll(self, _timeout: float) -> None:
        return None


@pytest.fixture()
def reader(monkeypatch: pytest.MonkeyPatch) -> tuple[EventConsumer, FakeConsumer]:
    FakeConsumer.broker = Broker()
    monkeypatch.setattr(confluent_kafka, "Consumer", FakeConsumer)
    clock = [1000.0]
    monkeypatch.setattr(client.time, "monotonic", lambda: clock[0])
    settings = load_settings(env={"GLEANER_KAFKA_IDLE_AFTER_MS": "0"})
    consumer = EventConsumer(settings, "g", [TOPIC], assign_latest=True, hot=False)
    fake = consumer._consumer

    def idle_poll(seconds: float) -> None:
        clock[0] += seconds
        consumer.poll(0.0)

    consumer.idle_poll = idle_poll  # type: ignore[attr-defined]
    return consumer, fake


def offsets(fake: FakeConsumer) -> dict[int, int]:
    return {tp.partition: tp.offset for tp in fake.assigned}


def test_it_starts_at_the_end_and_leaves_a_growing_log_alone(reader):
    consumer, fake = reader
    assert offsets(fake) == {0: 120, 1: 80}
    fake.broker.ends = {0: 130, 1: 81}
    consumer.idle_poll(2.0)
    assert offsets(fake) == {0: 120, 1: 80}


def test_after_a_broker_restart_it_reads_the_new_log_from_its_start(reader):
    consumer, fake = reader
    fake.broker.down = True
    consumer.idle_poll(2.0)  # the broker away: nothing changes, no error
    assert offsets(fake) == {0: 120, 1: 80}
    fake.broker.down = False
    fake.broker.ends = {0: 2, 1: 0}  # back, empty but for what was produced since
    consumer.idle_poll(2.0)
    assert offsets(fake) == {0: 0, 1: 0}
    fake.broker.ends = {0: 5, 1: 1}
    consumer.idle_poll(2.0)  # growing again: not rewound twice
    assert offsets(fake) == {0: 0, 1: 0}


def test_it_tells_its_watcher_of_a_restart_once(monkeypatch):
    FakeConsumer.broker = Broker()
    monkeypatch.setattr(confluent_kafka, "Consumer", FakeConsumer)
    clock = [1000.0]
    monkeypatch.setattr(client.time, "monotonic", lambda: clock[0])
    told: list[str] = []

    def watcher() -> None:
        told.append("restart")
        raise RuntimeError("the watcher's own trouble")  # logged: the reader goes on

    settings = load_settings(env={"GLEANER_KAFKA_IDLE_AFTER_MS": "0"})
    consumer = EventConsumer(settings, "g", [TOPIC], assign_latest=True, hot=False, on_restart=watcher)
    fake = consumer._consumer
    for ends in ({0: 130, 1: 81}, {0: 2, 1: 0}, {0: 5, 1: 1}):  # grows, restarts, grows again
        FakeConsumer.broker.ends = ends
        clock[0] += 2.0
        consumer.poll(0.0)
    assert told == ["restart"] and offsets(fake) == {0: 0, 1: 0}


def test_it_checks_at_most_once_a_second_when_idle(reader):
    consumer, fake = reader
    fake.broker.ends = {0: 2, 1: 0}
    consumer.idle_poll(0.3)
    assert offsets(fake) == {0: 120, 1: 80}
    consumer.idle_poll(0.8)
    assert offsets(fake) == {0: 0, 1: 0}
