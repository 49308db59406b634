"""The floor under the control path, measured in the same run as the path.

One Kafka hop: produce -> consume on this broker with the platform's own client
settings (``producer_config`` / ``consumer_config``: linger 0, acks all,
read_committed, the configured fetch wait), one event at a time. A warm
single invoke crosses three such hops (invocations -> placement ->
``invoker.<id>`` -> invoker -> completed -> gateway); a sequence stage too
(completed -> composition -> invocations -> placement -> invoker). The other
floor, one warm ``/run`` round trip into a container, is in every record
(``gleaner.run_ms``), so the benches take it from there.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import confluent_kafka

from benchmarks.report import percentile
from gleaner.settings import Settings
from streams.kafka.client import consumer_config, ensure_topics, producer_config

HOPS_PER_STAGE = 3  # request/completion -> placement -> invoker -> completion


@dataclass(frozen=True, slots=True)
class Floor:
    hop_p50_ms: float
    hop_p99_ms: float
    n: int

    @property
    def path_ms(self) -> float:
        """The Kafka part of one warm stage: three hops at the median."""
        return HOPS_PER_STAGE * self.hop_p50_ms

    def ratio(self, overhead_ms: float) -> str:
        return f"{overhead_ms / self.path_ms:.1f}x" if self.path_ms > 0 else "-"


def kafka_hop(settings: Settings, n: int = 200, gap_s: float = 0.01) -> Floor:
    topic = f"{settings.topic_prefix}bench.floor"
    ensure_topics(settings.kafka, [topic], 1)
    consumer = confluent_kafka.Consumer(
        {**consumer_config(settings.kafka, f"bench-floor-{uuid.uuid4().hex[:8]}"), "log_level": 0}
    )
    producer = confluent_kafka.Producer(producer_config(settings.kafka))
    try:
        parts = [confluent_kafka.TopicPartition(topic, 0)]
        _low, high = consumer.get_watermark_offsets(parts[0], timeout=10)
        consumer.assign([confluent_kafka.TopicPartition(topic, 0, high)])
        _one(producer, consumer, topic, 10.0)  # connections and the first fetch
        samples = []
        for _ in range(n):
            time.sleep(gap_s)  # one event at a time, as a warm request
            samples.append(_one(producer, consumer, topic, 5.0))
    finally:
        consumer.close()
        producer.flush(5)
    return Floor(percentile(samples, 50), percentile(samples, 99), n)


def _one(
    producer: confluent_kafka.Producer, consumer: confluent_kafka.Consumer, topic: str, wait_s: float
) -> float:
    marker = uuid.uuid4().bytes
    start = time.perf_counter()
    producer.produce(topic, marker)
    producer.poll(0)
    deadline = start + wait_s
    while time.perf_counter() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error() and msg.value() == marker:
            return (time.perf_counter() - start) * 1000
    raise TimeoutError(f"no event back from {topic} within {wait_s} s")
