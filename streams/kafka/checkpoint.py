"""One object owns what is safe to commit and when (after quix-streams'
``checkpointing/checkpoint.py``): the offsets of records in flight, the commit
interval, the commit order (flush everything the finished records produced,
then commit their offsets) and the per-partition result of the last commit.
A crash between flush and commit replays the records; consumers are
idempotent on their ids, so the replay changes nothing."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from gleaner.errors import GleanerError
from streams.kafka.offsets import OffsetTracker, TopicPartition

log = logging.getLogger(__name__)


class Committer(Protocol):
    def commit(self, offsets: dict[TopicPartition, int]) -> None: ...


class Flusher(Protocol):
    def flush(self, timeout_s: float = 10.0) -> None: ...


class Checkpoint:
    def __init__(
        self,
        consumer: Committer,
        producer: Flusher,
        interval_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.offsets = OffsetTracker()
        self._consumer = consumer
        self._producer = producer
        self._interval_s = interval_s
        self._clock = clock
        self._last = clock()
        self.last_committed: dict[TopicPartition, int] = {}  # per partition, the last offset that held
        self.failures = 0

    def started(self, tp: TopicPartition, offset: int) -> None:
        self.offsets.started(tp, offset)

    def done(self, tp: TopicPartition, offset: int) -> None:
        self.offsets.done(tp, offset)

    def in_flight(self) -> int:
        return self.offsets.in_flight()

    def due(self) -> bool:
        return self._clock() - self._last >= self._interval_s

    def commit(self) -> bool:
        """Flush, then commit what is committable. False (logged) when either
        failed: the offsets stay uncommitted and are tried again next time."""
        self._last = self._clock()
        pending = self.offsets.committable(advance=False)
        try:
            self._producer.flush()
            if pending:
                self._consumer.commit(pending)
        except GleanerError as exc:
            self.failures += 1
            log.error("commit deferred: %s", exc)
            return False
        self.offsets.committed(pending)
        self.last_committed.update(pending)
        return True

    def revoke(self, tps: list[TopicPartition]) -> None:
        """Commit what is done on partitions about to go, then forget them."""
        self.commit()
        self.offsets.forget(tps)
        for tp in tps:
            self.last_committed.pop(tp, None)
