"""Accepted work, kept until its record exists (the outbox pattern).

The embedded broker keeps its log in memory: a crash loses every event in it,
including DAG requests and invocations the gateway has already answered 202
for. So the gateway writes what it accepts here, in Redis (append-only file),
before it produces it, and the record sink settles an entry once the
activation's record is in CouchDB. After the broker was lost, what is still
pending is produced again. Every consumer is idempotent on the activation id
(the invoker, the composition stream, the record sink), so an entry that was
not lost after all changes nothing when it comes again.

A Kafka client that produces straight to a topic bypasses the gateway: on the
memory broker, what it produced and was not yet consumed is lost with a crash.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import orjson

from streams.events import now_ms
from streams.kafka.runner import Sink

log = logging.getLogger(__name__)

KEY = "gleaner:outbox"
KEEP_MS = 24 * 3600 * 1000  # an entry never settled (its record never written) is dropped after this


class HashStore(Protocol):
    """What the outbox needs of Redis (:class:`gleaner.redis_store.RedisStore` has it)."""

    def hset_many(self, key: str, fields: dict[str, bytes]) -> None: ...
    def hdel(self, key: str, *fields: str) -> None: ...
    def hgetall(self, key: str) -> dict[str, bytes]: ...
    def hlen(self, key: str) -> int: ...


@dataclass(frozen=True, slots=True)
class Kept:
    """One accepted event: where it goes and what it is (its key is its activation id,
    the hash field it is kept under)."""

    topic: str
    value: bytes
    accepted_ms: int

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "topic": self.topic,
                "value": base64.b64encode(self.value).decode(),
                "accepted_ms": self.accepted_ms,
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> Kept:
        data = orjson.loads(raw)
        value = base64.b64decode(data["value"])
        return cls(str(data["topic"]), value, int(data["accepted_ms"]))


class Outbox:
    def __init__(self, store: HashStore, key: str = KEY, clock: Callable[[], int] = now_ms) -> None:
        self.store = store
        self.key = key
        self._clock = clock

    def keep(self, activation_id: str, topic: str, value: bytes) -> None:
        """Note an accepted event before it is produced (keyed by its activation id).
        Raises the store's error: the caller decides whether to accept without it."""
        kept = Kept(topic, value, self._clock())
        self.store.hset_many(self.key, {activation_id: kept.to_bytes()})

    def settle(self, activation_ids: Iterable[str]) -> None:
        """Their records exist: nothing to send again."""
        self.store.hdel(self.key, *activation_ids)

    def pending(self) -> dict[str, Kept]:
        out = {}
        for activation_id, raw in self.store.hgetall(self.key).items():
            try:
                out[activation_id] = Kept.from_bytes(raw)
            except (ValueError, KeyError, TypeError):
                log.warning("outbox entry %s is unreadable; dropped", activation_id)
                self.store.hdel(self.key, activation_id)
        return out

    def __len__(self) -> int:
        return self.store.hlen(self.key)

    def send_again(self, producer: Sink, keep_ms: int = KEEP_MS) -> int:
        """Produce every pending entry again, oldest first (after a broker loss); entries
        older than ``keep_ms`` are dropped with a warning. Returns how many were sent."""
        now = self._clock()
        pending = sorted(self.pending().items(), key=lambda item: item[1].accepted_ms)
        stale = [aid for aid, kept in pending if now - kept.accepted_ms > keep_ms]
        if stale:
            log.warning("outbox: %d entries never settled in %d s, dropped", len(stale), keep_ms // 1000)
            self.settle(stale)
        sent = 0
        for activation_id, kept in pending:
            if activation_id in stale:
                continue
            producer.produce(kept.topic, kept.value, key=activation_id)
            sent += 1
        if sent:
            producer.flush()
            log.warning("outbox: %d accepted events produced again after the broker was lost", sent)
        return sent
