"""After a broker that lost its log: topics first, then the outbox sent again; Redis or
Kafka trouble is logged, never raised into ``gleaner up`` or the supervisor."""

from __future__ import annotations

import pytest

from deploy import broker_loss
from gleaner.settings import Settings
from streams.kafka.testing import MemorySink
from streams.outbox import Outbox
from tests.unit.fakes import MemoryRedis


class ClosingRedis(MemoryRedis):
    closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture()
def wired(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], ClosingRedis, MemorySink]:
    calls: list[str] = []
    redis, sink = ClosingRedis(), MemorySink()
    monkeypatch.setattr(broker_loss.services, "ensure_topics", lambda *_a: calls.append("topics") or [])
    monkeypatch.setattr(broker_loss, "RedisStore", lambda _s: redis)
    monkeypatch.setattr(broker_loss, "EventProducer", lambda _s: sink)
    return calls, redis, sink


def test_topics_come_back_then_the_outbox_is_sent_again(wired):
    calls, redis, sink = wired
    Outbox(redis).keep("a" * 32, "gleaner.invocations", b"{}")
    assert broker_loss.after_broker_loss(Settings(), again_after_s=()) == 1
    assert calls == ["topics"] and [p.key for p in sink.produced] == ["a" * 32] and redis.closed


def test_redis_away_sends_nothing_and_raises_nothing(wired):
    _, redis, sink = wired
    redis.down = 5
    assert broker_loss.after_broker_loss(Settings(), again_after_s=()) == 0 and not sink.produced


def test_kafka_refusing_raises_nothing(wired):
    _, redis, sink = wired
    Outbox(redis).keep("a" * 32, "gleaner.invocations", b"{}")
    sink.fail_produces = 1
    assert broker_loss.after_broker_loss(Settings(), again_after_s=()) == 0


def test_the_outbox_is_sent_once_more_later_for_what_came_in_meanwhile(wired, monkeypatch):
    _, redis, sink = wired
    slept: list[float] = []
    monkeypatch.setattr(broker_loss.time, "sleep", slept.append)
    Outbox(redis).keep("a" * 32, "gleaner.invocations", b"{}")
    broker_loss._send_later(Settings(), (10.0, 30.0))
    assert slept == [10.0, 20.0] and [p.key for p in sink.produced] == ["a" * 32] * 2
