"""The replay wired to the real stack: Kafka for requests and results, Redis
for inputs too large to travel inline (as the gateway does)."""

from __future__ import annotations

from gleaner.redis_store import RedisStore
from gleaner.settings import Settings
from streams.kafka.client import EventConsumer, EventProducer
from streams.payloads import DataStore
from streams.replay.runner import Listener, Replayer, Topics


def topics_of(settings: Settings) -> Topics:
    return Topics(settings.dag_requests_topic, settings.dag_results_topic, settings.completed_topic)


def replayer_for(settings: Settings, namespace: str, producer: EventProducer, redis: RedisStore) -> Replayer:
    topics = topics_of(settings)
    data = DataStore(redis, settings.inline_payload_bytes, settings.data_ttl_s)

    def listen() -> Listener:
        # Group-less, from the current end: every replay sees every result and keeps its own.
        return EventConsumer(
            settings, "gleaner-replay", [topics.results, topics.completed], assign_latest=True
        )

    return Replayer(producer, listen, topics, namespace, offload=data.offload)
