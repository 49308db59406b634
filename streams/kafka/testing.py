"""In-memory Kafka for unit tests (after bytewax's ``testing.py``): a source
that hands out records and takes commits, and a sink that keeps what was
produced, so every agent's handler runs behind the real runner without
services. Not used by the product."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from gleaner.errors import EventTooLarge, KafkaError
from streams.kafka.client import RebalanceListener, Record
from streams.kafka.offsets import TopicPartition
from streams.kafka.signing import Headers, Signer, normalize_headers


def record(
    topic: str,
    value: bytes | dict[str, Any] | str,
    *,
    partition: int = 0,
    offset: int = 0,
    key: bytes | None = None,
    headers: Headers = (),
    signer: Signer | None = None,
) -> Record:
    """A record; with ``signer``, signed as a Gleaner component would produce it."""
    if isinstance(value, dict):
        value = orjson.dumps(value)
    elif isinstance(value, str):
        value = value.encode()
    if signer is not None:
        headers = (*headers, *normalize_headers(signer.headers(topic, key, value)))
    return Record(topic=topic, partition=partition, offset=offset, key=key, value=value, headers=headers)


class MemorySource:
    """Records in the order given; offsets count per partition unless set."""

    def __init__(self, records: Iterable[Record] = ()) -> None:
        self._queue: deque[Record] = deque()
        self._next: dict[TopicPartition, int] = {}
        self.commits: list[dict[TopicPartition, int]] = []
        self.paused = False
        self.closed = False
        self.fail_commits = 0  # the next N commits raise
        self._listener: RebalanceListener | None = None
        for r in records:
            self.add(r)

    def add(self, r: Record) -> Record:
        tp = (r.topic, r.partition)
        if r.offset < self._next.get(tp, 0):
            r = Record(r.topic, r.partition, self._next[tp], r.key, r.value, r.timestamp_ms, r.headers)
        self._next[tp] = r.offset + 1
        self._queue.append(r)
        return r

    def push(
        self,
        topic: str,
        value: bytes | dict[str, Any] | str,
        *,
        partition: int = 0,
        key: bytes | None = None,
        headers: Headers = (),
        signer: Signer | None = None,
    ) -> Record:
        return self.add(record(topic, value, partition=partition, key=key, headers=headers, signer=signer))

    @property
    def pending(self) -> int:
        return len(self._queue)

    def poll(self, timeout_s: float) -> Record | None:
        if self.paused or not self._queue:
            return None
        return self._queue.popleft()

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail_commits:
            self.fail_commits -= 1
            raise KafkaError("offset commit failed: broker gone")
        self.commits.append(dict(offsets))

    def committed(self, tp: TopicPartition) -> int | None:
        """The last offset committed for ``tp`` (the next one to read)."""
        for commit in reversed(self.commits):
            if tp in commit:
                return commit[tp]
        return None

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def listen(self, listener: RebalanceListener) -> None:
        self._listener = listener

    def rebalance(
        self, *, revoked: list[TopicPartition] | None = None, assigned: list[TopicPartition] | None = None
    ) -> None:
        """Simulate a group rebalance, as librdkafka calls it from inside poll."""
        assert self._listener is not None
        if revoked:
            self._listener.revoked(list(revoked))
            gone = set(revoked)
            self._queue = deque(r for r in self._queue if (r.topic, r.partition) not in gone)
        if assigned:
            self._listener.assigned(list(assigned))

    def close(self) -> None:
        self.closed = True


@dataclass(slots=True)
class Produced:
    topic: str
    value: bytes
    key: str | bytes | None
    headers: Headers = ()

    def record(self, offset: int = 0) -> Record:
        """This event as its consumer would read it."""
        key = self.key.encode() if isinstance(self.key, str) else self.key
        return Record(self.topic, 0, offset, key, self.value, headers=self.headers)

    def json(self) -> dict[str, Any]:
        out = orjson.loads(self.value)
        assert isinstance(out, dict)
        return out


@dataclass
class MemorySink:
    """Keeps produced events; a flush makes them ``delivered``. With ``signer``,
    each event is signed as :class:`~streams.kafka.client.EventProducer` signs it."""

    max_bytes: int = 8 * 2**20
    signer: Signer | None = None
    produced: list[Produced] = field(default_factory=list)
    delivered: int = 0
    flushes: int = 0
    fail_flushes: int = 0  # the next N flushes raise
    fail_produces: int = 0  # the next N produces raise
    _callbacks: list[Callable[[], None]] = field(default_factory=list)

    def produce(
        self,
        topic: str,
        value: bytes,
        key: str | bytes | None = None,
        on_delivered: Callable[[], None] | None = None,
    ) -> None:
        if len(value) > self.max_bytes:
            raise EventTooLarge(
                f"an event of {len(value)} bytes for {topic} is above the limit of {self.max_bytes} bytes"
            )
        if self.fail_produces:
            self.fail_produces -= 1
            raise KafkaError(f"produce to {topic} failed: broker gone")
        headers = normalize_headers(self.signer.headers(topic, key, value)) if self.signer is not None else ()
        self.produced.append(Produced(topic, value, key, headers))
        if on_delivered is not None:
            self._callbacks.append(on_delivered)

    def flush(self, timeout_s: float = 10.0) -> None:
        self.flushes += 1
        if self.fail_flushes:
            self.fail_flushes -= 1
            raise KafkaError("1 events not delivered")
        self.delivered = len(self.produced)
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [p.json() for p in self.produced if p.topic == topic]

    def close(self) -> None:
        self.flush()
