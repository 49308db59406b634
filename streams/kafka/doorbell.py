"""A doorbell per topic: how a dozing consumer hears that records are coming.

A dozing consumer (:mod:`streams.kafka.doze`) fetches nothing; without help it
would find a new record only at its next probe. So a platform producer that
writes to a topic rings the topic's bell, and every consumer of the topic that
listens resumes its partitions at once and counts the ring as traffic.

A producer rings a topic at most once per ``every_s`` (half a consumer's
quiet spell): while it keeps producing, every listening consumer of the topic
hears a ring before it would doze, so a busy topic costs a ring every few
seconds and the hot path nothing. The ring goes out before the record, from a
background thread, so it never delays a produce. A lost ring (Redis away, a
listener reconnecting) costs latency only, never a record: the consumer still
probes, just rarely, which also catches records from outside Kafka clients
(they ring no bell).

:class:`RedisBell` rings over Redis pub/sub (one channel per topic, one
listener thread per process blocked on its socket: no CPU at idle);
:class:`MemoryBell` rings in-process, for tests.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from gleaner.settings_sections import KafkaSettings, StoreSettings

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "gleaner:bell:"
Listener = Callable[[], None]


class Bell(Protocol):
    """What producers and consumers need of a doorbell."""

    def ring(self, topic: str) -> None:
        """Records for ``topic`` are coming (never blocks, never raises)."""
        ...

    def listen(self, topics: Iterable[str], on_ring: Listener) -> Callable[[], None]:
        """Call ``on_ring`` (on the bell's thread) when any of ``topics`` rings;
        returns the function that stops listening."""
        ...


class RingPacer:
    """When a producer rings (pure): a topic at most once per ``every_s``."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._last: dict[str, float] = {}

    def due(self, topic: str, now: float) -> bool:
        last = self._last.get(topic)
        if last is not None and now - last < self.every_s:
            return False
        self._last[topic] = now
        return True


class Listeners:
    """Who listens to which topic (thread-safe); the bells' shared bookkeeping."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_topic: dict[str, list[Listener]] = {}

    def add(self, topics: Iterable[str], on_ring: Listener) -> Callable[[], None]:
        wanted = list(dict.fromkeys(topics))
        with self._lock:
            for topic in wanted:
                self._by_topic.setdefault(topic, []).append(on_ring)

        def remove() -> None:
            with self._lock:
                for topic in wanted:
                    listeners = self._by_topic.get(topic, [])
                    if on_ring in listeners:
                        listeners.remove(on_ring)

        return remove

    def ring(self, topic: str) -> None:
        with self._lock:
            listeners = list(self._by_topic.get(topic, ()))
        _call(listeners)

    def ring_all(self) -> None:
        """Rings may have been lost: wake everyone (a spare wake costs one quiet spell of fetches)."""
        with self._lock:
            listeners = list(dict.fromkeys(f for fs in self._by_topic.values() for f in fs))
        _call(listeners)


def _call(listeners: list[Listener]) -> None:
    for on_ring in listeners:
        try:
            on_ring()
        except Exception:  # a listener's bug must not silence the others
            log.exception("doorbell listener failed")


class MemoryBell:
    """An in-process bell: a ring reaches this process's listeners at once."""

    def __init__(self, every_s: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._pacer = RingPacer(every_s)
        self._clock = clock
        self._listeners = Listeners()
        self.rung: list[str] = []  # every ring that went out, for tests

    def ring(self, topic: str) -> None:
        if self._pacer.due(topic, self._clock()):
            self.rung.append(topic)
            self._listeners.ring(topic)

    def listen(self, topics: Iterable[str], on_ring: Listener) -> Callable[[], None]:
        return self._listeners.add(topics, on_ring)


class RedisBell:
    """Rings over Redis pub/sub. ``client`` makes a Redis client (called again after a failure)."""

    def __init__(
        self,
        client: Callable[[], Any],
        every_s: float,
        clock: Callable[[], float] = time.monotonic,
        retry_s: float = 1.0,
    ) -> None:
        self._client = client
        self._pacer = RingPacer(every_s)
        self._pacer_lock = threading.Lock()
        self._clock = clock
        self._retry_s = retry_s
        self._listeners = Listeners()
        self._outbox: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._started = threading.Lock()
        self._threads: list[threading.Thread] = []

    def ring(self, topic: str) -> None:
        with self._pacer_lock:
            due = self._pacer.due(topic, self._clock())
        if due:
            self._start()
            self._outbox.put(topic)

    def listen(self, topics: Iterable[str], on_ring: Listener) -> Callable[[], None]:
        remove = self._listeners.add(topics, on_ring)
        self._start()
        return remove

    def close(self) -> None:
        self._stop.set()
        self._outbox.put("")  # wakes the ringer

    def _start(self) -> None:
        with self._started:
            if self._threads or self._stop.is_set():
                return
            for target, name in ((self._send, "doorbell-ring"), (self._hear, "doorbell-listen")):
                thread = threading.Thread(target=target, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)

    def _send(self) -> None:
        client = None
        while not self._stop.is_set():
            topic = self._outbox.get()  # blocks: no CPU while nothing rings
            if not topic:
                continue
            try:
                client = client or self._client()
                client.publish(CHANNEL_PREFIX + topic, b"")
            except Exception as exc:  # a lost ring costs latency, never a record
                log.debug("doorbell ring for %s lost: %s", topic, exc)
                client = None

    def _hear(self) -> None:
        while not self._stop.is_set():
            try:
                pubsub = self._client().pubsub(ignore_subscribe_messages=True)
                # One pattern for every topic: listeners come and go without touching
                # the subscription, which redis-py does not share across threads.
                pubsub.psubscribe(CHANNEL_PREFIX + "*")
                self._listeners.ring_all()  # rings sent while we were not subscribed are lost
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=30.0)  # blocks on the socket
                    if message is not None and message.get("type") == "pmessage":
                        channel = message["channel"]
                        name = channel.decode() if isinstance(channel, bytes) else str(channel)
                        self._listeners.ring(name.removeprefix(CHANNEL_PREFIX))
            except Exception as exc:
                log.warning("doorbell listener lost Redis (%s); retrying in %.0f s", exc, self._retry_s)
                self._stop.wait(self._retry_s)


_process_bell: RedisBell | None = None
_process_lock = threading.Lock()


def process_bell(settings: KafkaSettings, stores: StoreSettings) -> RedisBell | None:
    """This process's one Redis bell (one listener thread however many consumers),
    or None when dozing or the doorbell is off."""
    global _process_bell
    if not settings.kafka_doorbell or settings.kafka_idle_after_ms <= 0:
        return None
    with _process_lock:
        if _process_bell is None:
            from gleaner.redis_store import connect  # the bell is optional: Redis only when used

            _process_bell = RedisBell(
                # The health check pings a quiet listener's connection, so a dead one is
                # noticed (and replaced) within a minute rather than never.
                lambda: connect(
                    stores, socket_connect_timeout=2, socket_keepalive=True, health_check_interval=30
                ),
                every_s=settings.kafka_idle_after_ms / 2000,
            )
        return _process_bell
