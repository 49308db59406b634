"""After a broker that lost its log: topics first, then the loss noted and the outbox sent
again once (the gateway's resender goes on from there); Redis or Kafka trouble is logged,
never raised into ``gleaner up`` or the supervisor."""

from __future__ import annotations

import pytest

from deploy import broker_loss
from gleaner.settings import Settings
from streams.kafka.testing import MemorySink
from streams.outbox import Outbox
from streams.outbox_resend import Resender
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
    assert broker_loss.after_broker_loss(Settings()) == 1
    assert calls == ["topics"] and [p.key for p in sink.produced] == ["a" * 32] and redis.closed


def test_redis_away_sends_nothing_and_raises_nothing(wired):
    _, redis, sink = wired
    redis.down = 5
    assert broker_loss.after_broker_loss(Settings()) == 0 and not sink.produced


def test_kafka_refusing_raises_nothing(wired):
    _, redis, sink = wired
    Outbox(redis).keep("a" * 32, "gleaner.invocations", b"{}")
    sink.fail_produces = 1
    assert broker_loss.after_broker_loss(Settings()) == 0


def test_the_loss_is_noted_for_the_gateway_which_sends_again_only_what_stays_unsettled(wired):
    _, redis, sink = wired
    outbox = Outbox(redis)
    outbox.keep("a" * 32, "gleaner.invocations", b"{}")
    assert broker_loss.after_broker_loss(Settings()) == 1 and sink.delivered == 1
    assert outbox.lost_at() is not None and set(outbox.sent()) == {"a" * 32}
    gateway = Resender(outbox, sink)
    assert not gateway.broker_lost()  # its reader saw the same loss: noted once
    assert gateway.resend_due() == 0  # sent a moment ago: waiting for its record
