"""The commit order that makes at-least-once honest (as quix-streams writes it
down): flush everything the processed records produced, then commit their
offsets. A crash in between replays the records; consumers are idempotent on
their ids, so the replay changes nothing."""

from __future__ import annotations

import logging

from gleaner.errors import GleanerError
from streams.kafka.client import EventConsumer, EventProducer
from streams.kafka.offsets import OffsetTracker

log = logging.getLogger(__name__)


def checkpoint(consumer: EventConsumer, producer: EventProducer, offsets: OffsetTracker) -> bool:
    """Flush, then commit what is committable. False (logged) when either failed:
    the records stay uncommitted and come back after a restart."""
    committable = offsets.committable()
    try:
        producer.flush()
        consumer.commit(committable)
    except GleanerError as exc:
        log.error("commit deferred: %s", exc)
        return False
    return True
