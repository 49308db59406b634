"""The doorbell: paced rings, in-memory and over a fake Redis pub/sub."""

from __future__ import annotations

import queue
import threading
from typing import Any

from gleaner.settings import Settings
from streams.kafka.doorbell import CHANNEL_PREFIX, MemoryBell, RedisBell, RingPacer, process_bell


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_producer_rings_a_topic_at_most_once_per_interval() -> None:
    pacer = RingPacer(every_s=5.0)
    assert pacer.due("a", 0.0)
    assert not pacer.due("a", 4.9)
    assert pacer.due("b", 4.9)  # each topic on its own
    assert pacer.due("a", 5.0)


def test_a_ring_reaches_the_listeners_of_its_topic_only() -> None:
    bell = MemoryBell()
    heard: list[str] = []
    bell.listen(["a", "b"], lambda: heard.append("ab"))
    bell.listen(["c"], lambda: heard.append("c"))
    bell.ring("b")
    assert heard == ["ab"]
    bell.ring("z")  # nobody listens
    assert heard == ["ab"]


def test_a_listener_that_stops_hears_no_more_rings() -> None:
    bell = MemoryBell()
    heard: list[str] = []
    stop = bell.listen(["a"], lambda: heard.append("a"))
    bell.ring("a")
    stop()
    bell.ring("a")
    assert heard == ["a"]


def test_a_failing_listener_does_not_silence_the_others() -> None:
    bell = MemoryBell()
    heard: list[str] = []

    def broken() -> None:
        raise RuntimeError("consumer closed")

    bell.listen(["a"], broken)
    bell.listen(["a"], lambda: heard.append("a"))
    bell.ring("a")
    assert heard == ["a"]


def test_a_busy_producer_rings_once_per_interval() -> None:
    clock = Clock()
    bell = MemoryBell(every_s=5.0, clock=clock)
    for t in (0.0, 1.0, 4.0, 6.0, 7.0):
        clock.now = t
        bell.ring("a")
    assert bell.rung == ["a", "a"]


class FakePubSub:
    def __init__(self, redis: FakeRedis) -> None:
        self.redis = redis
        self.inbox: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()

    def psubscribe(self, pattern: str) -> None:
        assert pattern == CHANNEL_PREFIX + "*"
        self.redis.subscribers.append(self)
        self.redis.subscribed.set()

    def get_message(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None


class FakeRedis:
    """Redis pub/sub in memory: a publish reaches every pattern subscriber."""

    def __init__(self) -> None:
        self.subscribers: list[FakePubSub] = []
        self.subscribed = threading.Event()
        self.published: list[str] = []

    def pubsub(self, ignore_subscribe_messages: bool) -> FakePubSub:
        return FakePubSub(self)

    def publish(self, channel: str, _data: bytes) -> None:
        self.published.append(channel)
        for sub in self.subscribers:
            sub.inbox.put({"type": "pmessage", "channel": channel.encode(), "data": b""})


def test_a_ring_over_redis_wakes_a_listener_in_another_process() -> None:
    redis = FakeRedis()
    producer_side = RedisBell(lambda: redis, every_s=5.0)
    consumer_side = RedisBell(lambda: redis, every_s=5.0)
    woke = threading.Event()
    consumer_side.listen(["gleaner.invocations"], woke.set)
    assert redis.subscribed.wait(5)
    woke.clear()  # subscribing wakes every listener once: rings before it were lost
    producer_side.ring("gleaner.invocations")
    assert woke.wait(5)
    assert redis.published == [CHANNEL_PREFIX + "gleaner.invocations"]
    producer_side.close()
    consumer_side.close()


def test_a_ring_that_redis_refuses_is_dropped() -> None:
    class Down:
        def publish(self, _channel: str, _data: bytes) -> None:
            raise ConnectionError("redis is down")

    tried = threading.Event()

    def client() -> Down:
        tried.set()
        return Down()

    bell = RedisBell(client, every_s=0.0)
    bell.ring("a")  # never raises into the producer
    assert tried.wait(5)
    bell.close()


def test_the_process_bell_is_one_per_process_and_off_when_consumers_never_doze() -> None:
    settings = Settings()
    assert process_bell(settings.kafka, settings.stores) is process_bell(settings.kafka, settings.stores)
    assert process_bell(Settings(kafka_doorbell=False).kafka, settings.stores) is None
    assert process_bell(Settings(kafka_idle_after_ms=0).kafka, settings.stores) is None
