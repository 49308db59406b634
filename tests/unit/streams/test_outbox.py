"""The outbox: accepted events kept (by the gateway's writer, before they are produced)
until their record exists, settled by the record sink; Redis trouble costs no record.
Sending again after a broker loss: test_outbox_resend."""

from __future__ import annotations

import asyncio

import pytest

from gleaner.errors import EventTooLarge, RedisError
from gleaner.settings import Settings
from streams.kafka.deadletter import DeadLetters
from streams.kafka.runner import ConsumeRunner, RunnerConfig
from streams.kafka.testing import MemorySink, MemorySource
from streams.outbox import Kept, Outbox, OutboxWriter, Sent
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


def test_entries_are_pending_until_settled_each_with_the_time_it_was_accepted():
    redis, clock = MemoryRedis(), Millis()
    outbox = Outbox(redis, clock=clock)
    outbox.keep(B, SETTINGS.dag_requests_topic, b'{"request_id": "b"}')
    clock.now += 5
    outbox.keep_many([(A, SETTINGS.invocations_topic, b"{}"), (C, SETTINGS.invocations_topic, b"{}")])
    outbox.settle([C])
    assert len(outbox) == 2
    assert outbox.pending() == {
        B: Kept(SETTINGS.dag_requests_topic, b'{"request_id": "b"}', 1_000_000),
        A: Kept(SETTINGS.invocations_topic, b"{}", 1_000_005),
    }


def test_an_unreadable_entry_is_dropped_not_fatal():
    redis = MemoryRedis()
    outbox = Outbox(redis)
    outbox.keep(A, SETTINGS.invocations_topic, b"{}")
    redis.hashes[outbox.key][B] = b"not json"
    assert set(outbox.pending()) == {A} and set(redis.hashes[outbox.key]) == {A}


def test_the_loss_time_and_the_send_times_are_kept_beside_the_entries():
    redis = MemoryRedis()
    outbox = Outbox(redis)
    assert outbox.lost_at() is None and outbox.sent() == {}
    outbox.note_lost(1_234)
    outbox.mark_sent({A: Sent(2_000, 1), B: Sent(2_000, 3)})
    redis.hashes[outbox.sent_key][C] = b"garbled"  # read as never sent again
    assert outbox.lost_at() == 1_234 and outbox.sent() == {A: Sent(2_000, 1), B: Sent(2_000, 3)}
    outbox.forget_sent([A])
    assert set(outbox.sent()) == {B} and set(redis.hashes[outbox.sent_key]) == {B}
    assert len(outbox) == 0  # none of it counts as an entry


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


class Ordered(MemoryRedis):
    """Redis that notes each write in a log shared with the producer."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def hset_many(self, key: str, fields: dict[str, bytes]) -> None:
        super().hset_many(key, fields)
        self.log.append("keep " + ",".join(sorted(fields)))


class OrderedSink(MemorySink):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def produce(self, topic: str, value: bytes, key: str | bytes | None = None, on_delivered=None) -> None:
        super().produce(topic, value, key, on_delivered)
        self.log.append(f"produce {key}")


def test_the_writer_keeps_what_arrived_together_in_one_write_before_producing_any_of_it():
    steps: list[str] = []
    redis, sink = Ordered(steps), OrderedSink(steps)
    writer = OutboxWriter(Outbox(redis), sink)
    done = [writer.submit(aid, SETTINGS.invocations_topic, b"{}") for aid in (A, B, C)]
    writer.start()  # the three wait in its queue: one batch
    assert [d.result(timeout=5) for d in done] == [None, None, None]
    writer.close()
    assert steps == [f"keep {A},{B},{C}", f"produce {A}", f"produce {B}", f"produce {C}"]
    assert set(writer.outbox.pending()) == {A, B, C}


def test_a_batch_is_bounded_by_count_and_bytes():
    steps: list[str] = []
    writer = OutboxWriter(Outbox(Ordered(steps)), OrderedSink(steps), max_batch=2, max_batch_bytes=10)
    done = [writer.submit(aid, SETTINGS.invocations_topic, b"{}") for aid in (A, B, C)]
    big = writer.submit("d" * 32, SETTINGS.invocations_topic, b"x" * 20)
    writer.start()
    for d in [*done, big]:
        d.result(timeout=5)
    writer.close()
    assert [s for s in steps if s.startswith("keep")] == [f"keep {A},{B}", f"keep {C},{'d' * 32}"]


def test_without_redis_the_writer_still_produces_and_keeps_again_once_redis_is_back():
    redis, sink = MemoryRedis(), MemorySink()
    writer = OutboxWriter(Outbox(redis), sink)
    writer.start()
    redis.down = 1
    writer.submit(A, SETTINGS.invocations_topic, b"{}").result(timeout=5)
    writer.submit(B, SETTINGS.invocations_topic, b"{}").result(timeout=5)
    writer.close()
    assert [p.key for p in sink.produced] == [A, B] and set(writer.outbox.pending()) == {B}


def test_an_event_the_producer_refuses_fails_its_caller_and_leaves_the_outbox():
    redis, sink = MemoryRedis(), MemorySink()
    sink.max_bytes = 10
    writer = OutboxWriter(Outbox(redis), sink)
    small = writer.submit(A, SETTINGS.invocations_topic, b"{}")
    large = writer.submit(B, SETTINGS.invocations_topic, b"x" * 11)
    writer.start()
    assert small.result(timeout=5) is None
    with pytest.raises(EventTooLarge):
        large.result(timeout=5)
    writer.close()
    assert [p.key for p in sink.produced] == [A] and set(writer.outbox.pending()) == {A}


def test_a_caller_gone_before_its_turn_is_neither_kept_nor_produced():
    redis, sink = MemoryRedis(), MemorySink()
    writer = OutboxWriter(Outbox(redis), sink)
    gone = writer.submit(A, SETTINGS.invocations_topic, b"{}")
    stays = writer.submit(B, SETTINGS.invocations_topic, b"{}")
    assert gone.cancel()
    writer.start()
    assert stays.result(timeout=5) is None
    writer.close()
    assert [p.key for p in sink.produced] == [B] and set(writer.outbox.pending()) == {B}


def test_close_writes_what_was_handed_over_and_refuses_more():
    redis, sink = MemoryRedis(), MemorySink()
    writer = OutboxWriter(Outbox(redis), sink)
    writer.start()
    handed = writer.submit(A, SETTINGS.invocations_topic, b"{}")
    writer.close()
    assert handed.done() and [p.key for p in sink.produced] == [A]
    with pytest.raises(RuntimeError):
        writer.submit(B, SETTINGS.invocations_topic, b"{}")


def test_the_gateway_keeps_an_event_before_producing_it_and_accepts_without_redis():
    from streams.gateway.intake import Intake

    steps: list[str] = []
    redis, sink = Ordered(steps), OrderedSink(steps)
    intake = Intake(SETTINGS.gateway, SETTINGS.kafka, SETTINGS.stores)
    intake.producer = sink  # type: ignore[assignment]
    intake.outbox = OutboxWriter(Outbox(redis), sink)
    intake.outbox.start()
    asyncio.run(intake.accept(SETTINGS.invocations_topic, A, b'{"activation_id": "a"}'))
    assert steps == [f"keep {A}", f"produce {A}"]
    redis.down = 1
    asyncio.run(intake.accept(SETTINGS.invocations_topic, B, b'{"activation_id": "b"}'))
    intake.outbox.close()
    assert [p.key for p in sink.produced] == [A, B] and set(intake.outbox.outbox.pending()) == {A}


def test_the_gateway_without_the_outbox_produces_at_once():
    from streams.gateway.intake import Intake

    sink = MemorySink()
    intake = Intake(SETTINGS.gateway, SETTINGS.kafka, SETTINGS.stores)
    intake.producer = sink  # type: ignore[assignment]
    asyncio.run(intake.accept(SETTINGS.invocations_topic, A, b"{}"))
    assert intake.outbox is None and [p.key for p in sink.produced] == [A]
