"""The outbox: accepted events kept until their record exists, produced again (oldest
first) after a broker loss, settled by the record sink; Redis trouble costs no record."""

from __future__ import annotations

import pytest

from gleaner.errors import RedisError
from gleaner.settings import Settings
from streams.kafka.deadletter import DeadLetters
from streams.kafka.runner import ConsumeRunner, RunnerConfig
from streams.kafka.testing import MemorySink, MemorySource
from streams.outbox import Kept, Outbox
from streams.record_sink import RecordSink
from tests.unit.fakes import MemoryRedis
from tests.unit.streams.test_record_sink import Clock, MemoryCouch, completion

SETTINGS = Settings()
A, B, C = "a" * 32, "b" * 32, "c" * 32


class Millis:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


def test_an_entry_round_trips_byte_for_byte():
    kept = Kept("gleaner.invocations", b'{"x": "\\u00e9\\n"}\xff', 42)
    assert Kept.from_bytes(kept.to_bytes()) == kept


def test_pending_entries_are_sent_again_oldest_first_and_settled_ones_not():
    redis, clock, sink = MemoryRedis(), Millis(), MemorySink()
    outbox = Outbox(redis, clock=clock)
    outbox.keep(B, SETTINGS.dag_requests_topic, b'{"request_id": "b"}')
    clock.now += 5
    outbox.keep(A, SETTINGS.invocations_topic, b'{"activation_id": "a"}')
    clock.now += 5
    outbox.keep(C, SETTINGS.invocations_topic, b'{"activation_id": "c"}')
    outbox.settle([C])
    assert len(outbox) == 2
    assert outbox.send_again(sink) == 2
    sent = [(p.topic, p.key) for p in sink.produced]
    assert sent == [(SETTINGS.dag_requests_topic, B), (SETTINGS.invocations_topic, A)] and sink.delivered == 2
    assert len(outbox) == 2  # still pending until their records exist


def test_entries_never_settled_are_dropped_after_the_keep_time():
    redis, clock, sink = MemoryRedis(), Millis(), MemorySink()
    outbox = Outbox(redis, clock=clock)
    outbox.keep(A, SETTINGS.invocations_topic, b"{}")
    clock.now += 10_000
    outbox.keep(B, SETTINGS.invocations_topic, b"{}")
    assert outbox.send_again(sink, keep_ms=5_000) == 1
    assert [p.key for p in sink.produced] == [B] and set(outbox.pending()) == {B}


def test_an_unreadable_entry_is_dropped_not_fatal():
    redis, sink = MemoryRedis(), MemorySink()
    outbox = Outbox(redis)
    outbox.keep(A, SETTINGS.invocations_topic, b"{}")
    redis.hashes[outbox.key][B] = b"not json"
    assert outbox.send_again(sink) == 1 and set(outbox.pending()) == {A}


def test_a_store_error_reaches_the_caller():
    redis = MemoryRedis()
    redis.down = 1
    with pytest.raises(RedisError):
        Outbox(redis).keep(A, SETTINGS.invocations_topic, b"{}")


def _sink_runner(outbox: Outbox, couch: MemoryCouch, clock: Clock) -> tuple[ConsumeRunner, MemorySource]:
    source, sink = MemorySource(), MemorySink()
    handler = RecordSink(couch, window_s=0.02, clock=clock, settle=outbox.settle)
    config = RunnerConfig(commit_interval_s=0)
    return ConsumeRunner("records", source, sink, DeadLetters(SETTINGS, sink), handler, config, clock), source


def test_the_record_sink_settles_what_it_wrote_and_what_was_already_there():
    redis, couch, clock = MemoryRedis(), MemoryCouch(), Clock()
    outbox = Outbox(redis)
    for aid in (A, B, C):
        outbox.keep(aid, SETTINGS.invocations_topic, b"{}")
    couch.docs["guest/" + B] = {"_id": "guest/" + B}  # written before: a conflict, still settled
    couch.refuse = {"guest/" + C}  # refused: dead-lettered, stays pending
    runner, source = _sink_runner(outbox, couch, clock)
    for aid in (A, B, C):
        source.push(SETTINGS.completed_topic, completion(aid))
    for _ in range(6):
        runner.run_once()
        clock.now += 0.01
    assert set(outbox.pending()) == {C}


def test_redis_down_while_settling_costs_no_record():
    redis, couch, clock = MemoryRedis(), MemoryCouch(), Clock()
    outbox = Outbox(redis)
    outbox.keep(A, SETTINGS.invocations_topic, b"{}")
    runner, source = _sink_runner(outbox, couch, clock)
    source.push(SETTINGS.completed_topic, completion(A))
    redis.down = 1
    for _ in range(6):
        runner.run_once()
        clock.now += 0.01
    assert "guest/" + A in couch.docs and source.committed((SETTINGS.completed_topic, 0)) == 1
    assert set(outbox.pending()) == {A}  # sent again after a broker loss at worst: idempotent


def test_the_gateway_keeps_an_event_before_producing_it_and_accepts_without_redis():
    from streams.gateway.intake import Intake

    redis, sink = MemoryRedis(), MemorySink()
    intake = Intake(SETTINGS)
    intake.producer, intake.outbox = sink, Outbox(redis)  # type: ignore[assignment]
    intake.accept(SETTINGS.invocations_topic, A, b'{"activation_id": "a"}')
    assert set(intake.outbox.pending()) == {A} and [p.key for p in sink.produced] == [A]
    redis.down = 1
    intake.accept(SETTINGS.invocations_topic, B, b'{"activation_id": "b"}')
    assert [p.key for p in sink.produced] == [A, B] and set(intake.outbox.pending()) == {A}
