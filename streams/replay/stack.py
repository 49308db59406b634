"""The replay wired to the real stack: Kafka for requests and results, Redis
for inputs too large to travel inline (as the gateway does)."""

from __future__ import annotations

from gleaner.redis_store import RedisStore
from gleaner.settings_sections import KafkaSettings, ReplaySettings, TopicNames
from streams.kafka.client import EventConsumer, EventProducer, Record, signature_rejects
from streams.kafka.signing import Signer
from streams.payloads import DataStore
from streams.replay.runner import Listener, Replayer, Topics


class SignedOnly:
    """A listener that drops what no Gleaner component wrote: a forged result or
    completion must not count as a replayed request's outcome."""

    def __init__(self, consumer: EventConsumer, signer: Signer) -> None:
        self._consumer = consumer
        self._signer = signer

    def poll(self, timeout_s: float) -> Record | None:
        rec = self._consumer.poll(timeout_s)
        return rec if rec is None or signature_rejects(self._signer, rec) is None else None

    def close(self) -> None:
        self._consumer.close()


def topics_of(settings: TopicNames) -> Topics:
    return Topics(settings.dag_requests_topic, settings.dag_results_topic, settings.completed_topic)


def replayer_for(
    settings: ReplaySettings, kafka: KafkaSettings, namespace: str, producer: EventProducer, redis: RedisStore
) -> Replayer:
    topics = topics_of(settings)
    data = DataStore(redis, settings.inline_payload_bytes, settings.data_ttl_s)
    signer = Signer.for_settings(kafka)

    def listen() -> Listener:
        # Group-less, from the current end: every replay sees every result and keeps its own.
        consumer = EventConsumer(
            kafka, "gleaner-replay", [topics.results, topics.completed], assign_latest=True
        )
        return SignedOnly(consumer, signer)

    return Replayer(producer, listen, topics, namespace, offload=data.offload)
