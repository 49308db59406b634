"""Dead-letter topic: a malformed event goes here with the reason, and the
consumer that met it keeps going."""

from __future__ import annotations

import logging

from gleaner.settings import Settings
from streams.events import DeadLetter, now_ms
from streams.kafka.client import EventProducer, Record

log = logging.getLogger(__name__)


class DeadLetters:
    def __init__(self, settings: Settings, producer: EventProducer) -> None:
        self._topic = settings.deadletter_topic
        self._producer = producer

    def send(self, record: Record, reason: str) -> None:
        payload = (record.value or b"").decode("utf-8", errors="replace")
        letter = DeadLetter(
            reason=reason,
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            payload=payload[:65536],
            ts_ms=now_ms(),
        )
        log.warning("dead letter from %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)
        self._producer.produce(self._topic, letter.to_bytes(), key=record.key)
