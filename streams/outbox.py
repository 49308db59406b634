"""Accepted work, kept until its record exists (the outbox pattern).

The embedded broker keeps its log in memory: a crash loses every event in it,
including DAG requests and invocations the gateway has already answered 202
for. So the gateway writes what it accepts here, in Redis (append-only file),
before it produces it, and the record sink settles an entry once the
activation's record is in CouchDB. After the broker was lost, what is still
pending is produced again. Every consumer is idempotent on the activation id
(the invoker, the composition stream, the record sink), so an entry that was
not lost after all changes nothing when it comes again.

The gateway writes on a thread of its own (:class:`OutboxWriter`), in batches: its
event loop never waits on Redis, and an event is produced only once its entry is in
Redis. When and what is sent again is :mod:`streams.outbox_resend`.

A Kafka client that produces straight to a topic bypasses the gateway: on the
memory broker, what it produced and was not yet consumed is lost with a crash.
"""

from __future__ import annotations

import base64
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

import orjson

from gleaner.errors import GleanerError
from streams.events import now_ms

log = logging.getLogger(__name__)

KEY = "gleaner:outbox"
KEEP_MS = 24 * 3600 * 1000  # an entry never settled (its record never written) is dropped after this


class HashStore(Protocol):
    """What the outbox needs of Redis (:class:`gleaner.redis_store.RedisStore` has it)."""

    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes, ttl_s: int) -> None: ...
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


@dataclass(frozen=True, slots=True)
class Sent:
    """When an entry was last produced again, and how many times it was."""

    at_ms: int
    times: int

    def to_bytes(self) -> bytes:
        return f"{self.at_ms} {self.times}".encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Sent:
        at_ms, times = raw.split()
        return cls(int(at_ms), int(times))


class Outbox:
    """The entries (one hash), when the broker was last seen to lose its log (one key), and
    what was produced again when (one more hash, written only after a broker loss)."""

    def __init__(self, store: HashStore, key: str = KEY, clock: Callable[[], int] = now_ms) -> None:
        self.store = store
        self.key = key
        self.lost_key = f"{key}:lost"
        self.sent_key = f"{key}:sent"
        self._clock = clock

    def keep(self, activation_id: str, topic: str, value: bytes) -> None:
        """Note an accepted event before it is produced (keyed by its activation id).
        Raises the store's error: the caller decides whether to accept without it."""
        self.keep_many([(activation_id, topic, value)])

    def keep_many(self, events: Iterable[tuple[str, str, bytes]]) -> None:
        """:meth:`keep` for ``(activation id, topic, value)`` triples, in one round trip."""
        now = self._clock()
        fields = {aid: Kept(topic, value, now).to_bytes() for aid, topic, value in events}
        self.store.hset_many(self.key, fields)

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

    # -- after a broker loss (streams.outbox_resend) ---------------------------------
    def lost_at(self) -> int | None:
        """When a broker loss was last noted (epoch ms), or None."""
        raw = self.store.get(self.lost_key)
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            return None

    def note_lost(self, at_ms: int, keep_ms: int = KEEP_MS) -> None:
        # Forgotten with the entries it concerns: none is older than ``keep_ms``.
        self.store.set(self.lost_key, str(at_ms).encode(), keep_ms // 1000)

    def sent(self) -> dict[str, Sent]:
        out = {}
        for activation_id, raw in self.store.hgetall(self.sent_key).items():
            try:
                out[activation_id] = Sent.from_bytes(raw)
            except ValueError:  # read as never sent again: at worst one more duplicate
                self.store.hdel(self.sent_key, activation_id)
        return out

    def mark_sent(self, sent: dict[str, Sent]) -> None:
        self.store.hset_many(self.sent_key, {aid: s.to_bytes() for aid, s in sent.items()})

    def forget_sent(self, activation_ids: Iterable[str]) -> None:
        self.store.hdel(self.sent_key, *activation_ids)


class Producer(Protocol):
    def produce(self, topic: str, value: bytes, key: str | bytes | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class _Accepted:
    activation_id: str
    topic: str
    value: bytes
    done: Future[None]


MAX_BATCH = 256  # events kept in one HSET
MAX_BATCH_BYTES = 4 * 2**20


class OutboxWriter:
    """Keeps accepted events in the outbox, then produces them, on a thread of its own.

    The gateway's event loop hands an event over and awaits its future: it never waits on
    Redis itself (a frozen Redis held the whole loop for its 2 s timeout on every request).
    What arrives while one batch is written goes into the next one, in one HSET. Redis
    away: the event is produced anyway (accepted without the outbox) and the log says so.
    An event its producer refuses is not accepted (its future raises), so its entry goes."""

    def __init__(
        self,
        outbox: Outbox,
        producer: Producer,
        max_batch: int = MAX_BATCH,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self.outbox = outbox
        self.producer = producer
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self._queue: queue.SimpleQueue[_Accepted | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="outbox-writer", daemon=True)
        self._redis_away = False
        self._closed = False

    def start(self) -> None:
        self._thread.start()

    def submit(self, activation_id: str, topic: str, value: bytes) -> Future[None]:
        """Done once the entry is in Redis (or Redis failed) and the event is produced."""
        if self._closed:
            raise RuntimeError("the outbox writer is closed")
        done: Future[None] = Future()
        self._queue.put(_Accepted(activation_id, topic, value, done))
        return done

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what was handed over, then end the thread."""
        self._closed = True
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            first = self._queue.get()  # blocks: no CPU while nothing is accepted
            if first is None:
                return
            batch, size, last = [first], len(first.value), False
            while len(batch) < self.max_batch and size < self.max_batch_bytes:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    last = True
                    break
                batch.append(item)
                size += len(item.value)
            self.write(batch)
            if last:
                return

    def write(self, batch: list[_Accepted]) -> None:
        """Keep the batch in one round trip, then produce each event; never raises."""
        # A caller that went away before its turn (its request cancelled) is not accepted.
        batch = [item for item in batch if item.done.set_running_or_notify_cancel()]
        if not batch:
            return
        try:
            kept = self._keep(batch)
            refused = []
            for item in batch:
                try:
                    self.producer.produce(item.topic, item.value, key=item.activation_id)
                except Exception as exc:  # EventTooLarge, KafkaError: the caller answers with it
                    refused.append(item.activation_id)
                    item.done.set_exception(exc)
                else:
                    item.done.set_result(None)
            if kept and refused:
                self._settle_refused(refused)
        except Exception as exc:  # a bug: no caller waits forever
            log.exception("outbox writer failed on a batch of %d", len(batch))
            for item in batch:
                if not item.done.done():
                    item.done.set_exception(exc)

    def _settle_refused(self, refused: list[str]) -> None:
        try:
            self.outbox.settle(refused)
        except GleanerError as exc:  # sent again after a broker loss: refused again, or a duplicate
            log.warning("%d refused events stay in the outbox: %s", len(refused), exc)

    def _keep(self, batch: list[_Accepted]) -> bool:
        try:
            self.outbox.keep_many((i.activation_id, i.topic, i.value) for i in batch)
        except GleanerError as exc:
            log.warning(
                "%d events (%s, ...) accepted without the outbox (a broker crash loses them): %s",
                len(batch),
                batch[0].activation_id,
                exc,
            )
            self._redis_away = True
            return False
        if self._redis_away:
            log.info("accepted events are kept in the outbox again")
            self._redis_away = False
        return True
