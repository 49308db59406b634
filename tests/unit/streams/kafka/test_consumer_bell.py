"""A dozing EventConsumer hears its doorbell (librdkafka replaced by a recording fake)."""

from __future__ import annotations

from typing import Any

import pytest

from gleaner.settings import Settings
from streams.kafka import client
from streams.kafka.client import EventConsumer, EventProducer, consumer_config
from streams.kafka.doorbell import MemoryBell
from streams.kafka.doze import DozeState

TOPIC = "gleaner.invocations"


class FakeConsumer:
    """What EventConsumer calls on confluent_kafka.Consumer, recorded."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.paused = False
        self.calls: list[str] = []

    def subscribe(self, topics: list[str], **_callbacks: Any) -> None:
        self.calls.append("subscribe")

    def assignment(self) -> list[str]:
        return [f"{TOPIC}[0]"]

    def pause(self, _parts: list[str]) -> None:
        self.paused = True
        self.calls.append("pause")

    def resume(self, _parts: list[str]) -> None:
        self.paused = False
        self.calls.append("resume")

    def get_watermark_offsets(self, _part: str, timeout: float, cached: bool) -> tuple[int, int]:
        self.calls.append("kick")  # a request to the leader wakes librdkafka's fetcher
        return 0, 0

    def poll(self, _timeout: float) -> None:
        return None

    def close(self) -> None:
        self.calls.append("close")


class FakeProducer:
    def __init__(self, _config: dict[str, Any]) -> None:
        self.topics: list[str] = []

    def produce(self, topic: str, **_kwargs: Any) -> None:
        self.topics.append(topic)

    def poll(self, _timeout: float) -> int:
        return 0

    def flush(self, _timeout: float) -> int:
        return 0


@pytest.fixture(autouse=True)
def fake_kafka(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client.confluent_kafka, "Consumer", FakeConsumer)
    monkeypatch.setattr(client.confluent_kafka, "Producer", FakeProducer)


def dozing(consumer: EventConsumer) -> FakeConsumer:
    """Let the consumer's quiet spell pass and poll it into a doze."""
    assert consumer._doze is not None
    consumer._doze.last_record -= consumer._doze.idle_after_s
    consumer.poll(0.0)
    fake: FakeConsumer = consumer._consumer
    assert fake.paused and consumer._doze.state is DozeState.DOZING
    return fake


def test_a_ring_resumes_a_dozing_consumer_and_counts_as_traffic() -> None:
    bell = MemoryBell()
    consumer = EventConsumer(Settings(), "g", [TOPIC], bell=bell)
    fake = dozing(consumer)
    bell.ring(TOPIC)
    assert not fake.paused
    assert fake.calls[-2:] == ["resume", "kick"]
    assert consumer._doze is not None and consumer._doze.state is DozeState.AWAKE


def test_a_ring_of_a_topic_it_wakes_on_resumes_it_too() -> None:
    bell = MemoryBell()
    consumer = EventConsumer(
        Settings(), "g", ["gleaner.dag.plans"], bell=bell, wake_on=["gleaner.dag.requests"]
    )
    fake = dozing(consumer)
    bell.ring("gleaner.other")
    assert fake.paused
    bell.ring("gleaner.dag.requests")
    assert not fake.paused


def test_a_ring_never_undoes_a_retry_hold() -> None:
    bell = MemoryBell()
    consumer = EventConsumer(Settings(), "g", [TOPIC], bell=bell)
    fake: FakeConsumer = consumer._consumer
    consumer.pause()
    bell.ring(TOPIC)
    assert fake.paused


def test_a_closed_consumer_hears_no_ring() -> None:
    bell = MemoryBell()
    consumer = EventConsumer(Settings(), "g", [TOPIC], bell=bell)
    fake = dozing(consumer)
    consumer.close()
    bell.ring(TOPIC)
    assert fake.calls[-1] == "close"


def test_with_a_bell_probes_are_rare_without_one_frequent() -> None:
    settings = Settings(kafka_doze_probe_every_ms=100, kafka_doorbell_probe_every_ms=2000)
    with_bell = EventConsumer(settings, "g", [TOPIC], bell=MemoryBell())
    without = EventConsumer(settings, "g", [TOPIC])
    assert with_bell._doze is not None and with_bell._doze.probe_every_s == 2.0
    assert without._doze is not None and without._doze.probe_every_s == 0.1


def test_a_heartbeat_reader_gets_its_own_fetch_wait() -> None:
    settings = Settings()
    assert consumer_config(settings, "g", wait_ms=500)["fetch.wait.max.ms"] == 500
    assert consumer_config(settings, "g", hot=False)["fetch.wait.max.ms"] == settings.kafka_fetch_wait_idle_ms
    assert consumer_config(settings, "g")["fetch.wait.max.ms"] == settings.kafka_fetch_wait_max_ms


def test_a_producer_rings_the_topic_it_writes_to() -> None:
    bell = MemoryBell()
    producer = EventProducer(Settings(), bell)
    try:
        producer.produce(TOPIC, b"{}", key="k")
        assert bell.rung == [TOPIC]
        assert producer._producer.topics == [TOPIC]
    finally:
        producer.close()
