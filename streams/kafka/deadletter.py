"""Dead-letter topic: a malformed event goes here with the reason, and the
consumer that met it keeps going."""

from __future__ import annotations

import logging

from gleaner.settings_sections import KafkaSettings
from streams.events import DeadLetter, now_ms
from streams.kafka.client import EventProducer, Record

log = logging.getLogger(__name__)


PAYLOAD_CHARS = 65536  # enough to recognise the event, never too large to produce


def dead_letter_event(
    topic: str, partition: int, offset: int, value: bytes | None, reason: str
) -> DeadLetter:
    """The dead letter of one source event (its payload cut to :data:`PAYLOAD_CHARS`)."""
    log.warning("dead letter from %s[%d]@%d: %s", topic, partition, offset, reason)
    return DeadLetter(
        reason=reason,
        source_topic=topic,
        partition=partition,
        offset=offset,
        payload=(value or b"").decode("utf-8", errors="replace")[:PAYLOAD_CHARS],
        ts_ms=now_ms(),
    )


class DeadLetters:
    def __init__(self, settings: KafkaSettings, producer: EventProducer) -> None:
        self._topic = settings.deadletter_topic
        self._producer = producer

    def send(self, record: Record, reason: str) -> None:
        letter = dead_letter_event(record.topic, record.partition, record.offset, record.value, reason)
        self._producer.produce(self._topic, letter.to_bytes(), key=record.key)
