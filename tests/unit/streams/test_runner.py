"""The one consume runner, behind in-memory Kafka."""

from __future__ import annotations

import orjson

from composer import CompositionError
from gleaner.errors import ContainerError, CouchDBError, EventTooLarge, MalformedEvent, RedisError
from gleaner.settings import Settings
from streams.kafka.client import Record
from streams.kafka.deadletter import DeadLetters
from streams.kafka.runner import ConsumeRunner, Handler, RunnerConfig, Ticket, dead_letter_reason
from streams.kafka.testing import MemorySink, MemorySource

SETTINGS = Settings()
TOPIC = "t"
TP = (TOPIC, 0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Recorder(Handler):
    def __init__(self) -> None:
        self.seen: list[bytes | None] = []
        self.fail: dict[bytes, list[Exception]] = {}
        self.deferred: list[Ticket] = []
        self.defer_all = False
        self.revoked_tps: list[tuple[str, int]] = []
        self.commits = 0

    def handle(self, record: Record, ticket: Ticket) -> None:
        self.seen.append(record.value)
        errors = self.fail.get(record.value or b"")
        if errors:
            raise errors.pop(0)
        if self.defer_all:
            self.deferred.append(ticket.defer())

    def revoked(self, tps: list[tuple[str, int]]) -> None:
        self.revoked_tps += tps

    def committed(self) -> None:
        self.commits += 1


def make(records: list[bytes], handler: Handler | None = None, **config: float):
    source = MemorySource()
    for v in records:
        source.push(TOPIC, v)
    sink = MemorySink()
    clock = Clock()
    runner = ConsumeRunner(
        "test",
        source,
        sink,
        DeadLetters(SETTINGS, sink),
        handler or Recorder(),
        RunnerConfig(commit_interval_s=0.0, **config),  # type: ignore[arg-type]
        clock=clock,
    )
    return runner, source, sink, clock


def turns(runner: ConsumeRunner, n: int) -> None:
    for _ in range(n):
        runner.run_once()


def test_each_record_is_handled_then_committed_after_a_flush():
    runner, source, sink, _ = make([b"a", b"b"])
    turns(runner, 3)
    assert runner.handler.seen == [b"a", b"b"]  # type: ignore[attr-defined]
    assert source.committed(TP) == 2
    assert sink.flushes >= 1 and runner.handler.commits >= 1  # type: ignore[attr-defined]


def test_a_malformed_event_is_dead_lettered_and_the_stream_goes_on():
    handler = Recorder()
    handler.fail[b"bad"] = [MalformedEvent("not valid JSON")]
    runner, source, sink, _ = make([b"bad", b"good"], handler)
    turns(runner, 3)
    letters = sink.on(SETTINGS.deadletter_topic)
    assert [letter["reason"] for letter in letters] == ["not valid JSON"]
    assert letters[0]["payload"] == "bad" and letters[0]["offset"] == 0
    assert handler.seen == [b"bad", b"good"] and source.committed(TP) == 2


def test_a_handler_bug_is_dead_lettered_with_its_type_not_a_crash():
    handler = Recorder()
    handler.fail[b"boom"] = [KeyError("missing")]
    runner, source, sink, _ = make([b"boom", b"next"], handler)
    turns(runner, 3)
    (letter,) = sink.on(SETTINGS.deadletter_topic)
    assert letter["reason"].startswith("handler failed: KeyError")
    assert source.committed(TP) == 2


def test_an_event_too_large_to_produce_dead_letters_its_source():
    class Forwarder(Handler):
        def __init__(self, sink: MemorySink) -> None:
            self.sink = sink

        def handle(self, record: Record, ticket: Ticket) -> None:
            self.sink.produce("out", (record.value or b"") * 1000)

    sink = MemorySink(max_bytes=1000)
    source = MemorySource()
    source.push(TOPIC, b"x")
    source.push(TOPIC, b"x" * 50)
    runner = ConsumeRunner(
        "t", source, sink, DeadLetters(SETTINGS, sink), Forwarder(sink), RunnerConfig(commit_interval_s=0)
    )
    turns(runner, 3)
    (letter,) = sink.on(SETTINGS.deadletter_topic)
    assert "above the limit of 1000 bytes" in letter["reason"] and letter["offset"] == 1
    assert [p.topic for p in sink.produced] == ["out", SETTINGS.deadletter_topic]
    assert source.committed(TP) == 2
    assert issubclass(EventTooLarge, MalformedEvent)


def test_an_event_above_the_limit_is_dead_lettered_unread():
    runner, source, sink, _ = make([b"x" * 101, b"ok"], max_event_bytes=100)
    turns(runner, 3)
    (letter,) = sink.on(SETTINGS.deadletter_topic)
    assert letter["reason"] == "an event of 101 bytes is above the limit of 100 bytes"
    assert runner.handler.seen == [b"ok"]  # type: ignore[attr-defined]
    assert source.committed(TP) == 2


def test_the_event_limit_comes_from_the_kafka_setting(tmp_path):
    assert (
        RunnerConfig.for_settings(Settings(kafka_message_max_bytes=123, state_dir=tmp_path)).max_event_bytes
        == 123
    )


def test_a_transient_failure_is_retried_with_backoff_and_holds_later_records():
    handler = Recorder()
    handler.fail[b"a"] = [RedisError("connection refused"), RedisError("connection refused")]
    runner, source, _, clock = make([b"a", b"b"], handler, backoff_initial_s=1.0)
    turns(runner, 2)
    assert handler.seen == [b"a"] and source.paused  # b waits behind a
    assert source.committed(TP) is None
    clock.now = 1.0
    turns(runner, 1)
    assert handler.seen == [b"a", b"a"] and source.paused
    clock.now = 2.5  # second backoff is 2 s: not yet
    turns(runner, 1)
    assert handler.seen == [b"a", b"a"]
    clock.now = 3.0
    turns(runner, 3)
    assert handler.seen == [b"a", b"a", b"a", b"b"] and not source.paused
    assert source.committed(TP) == 2 and runner.retries == 2


def test_an_oom_killed_container_is_dead_lettered_with_its_cause_never_retried():
    handler = Recorder()
    handler.fail[b"a"] = [ContainerError("activation x: OOM-killed at 128 MB", oom_killed=True)]
    runner, source, sink, clock = make([b"a", b"b"], handler)
    turns(runner, 2)
    (letter,) = sink.on(SETTINGS.deadletter_topic)
    assert letter["reason"] == "ContainerError: activation x: OOM-killed at 128 MB"
    clock.now = 100.0  # long past any backoff: still not handled again
    turns(runner, 2)
    assert handler.seen == [b"a", b"b"] and runner.retries == 0 and not source.paused
    assert source.committed(TP) == 2 and runner.dead_lettered == 1


def test_only_the_transient_error_is_retried_the_dag_error_is_dead_lettered():
    handler = Recorder()
    handler.fail[b"a"] = [CouchDBError("couchdb: connection refused")]
    handler.fail[b"b"] = [CompositionError("the composition is not acyclic: a -> b -> a")]
    runner, source, sink, clock = make([b"a", b"b"], handler, backoff_initial_s=1.0)
    turns(runner, 2)
    assert handler.seen == [b"a"] and runner.retries == 1 and source.paused
    clock.now = 1.0
    turns(runner, 3)
    assert handler.seen == [b"a", b"a", b"b"] and runner.retries == 1
    (letter,) = sink.on(SETTINGS.deadletter_topic)
    assert letter["reason"] == "CompositionError: the composition is not acyclic: a -> b -> a"
    assert letter["offset"] == 1 and source.committed(TP) == 2


def test_a_dead_letter_says_why_by_what_failed():
    assert dead_letter_reason(MalformedEvent("missing field 'dag'")) == "missing field 'dag'"
    assert dead_letter_reason(ContainerError("gone")) == "ContainerError: gone"
    assert dead_letter_reason(ValueError("boom")) == "handler failed: ValueError: boom"


def test_deferred_tickets_hold_the_commit_until_settled_in_order():
    handler = Recorder()
    handler.defer_all = True
    runner, source, _, _ = make([b"a", b"b", b"c"], handler)
    turns(runner, 3)
    first, second, third = handler.deferred
    third.done()
    turns(runner, 1)
    assert source.committed(TP) is None  # a and b still run
    first.done()
    turns(runner, 1)
    assert source.committed(TP) == 1
    second.dead_letter("gone")
    second.done()  # a second settle is ignored
    turns(runner, 1)
    assert source.committed(TP) == 3 and runner.dead_lettered == 1


def test_back_pressure_stops_fetching_at_the_in_flight_limit():
    handler = Recorder()
    handler.defer_all = True
    runner, source, _, _ = make([b"a", b"b", b"c"], handler, max_in_flight=2)
    turns(runner, 5)
    assert handler.seen == [b"a", b"b"] and source.pending == 1
    handler.deferred[0].done()
    turns(runner, 1)
    assert handler.seen == [b"a", b"b", b"c"]


def test_a_failed_commit_is_tried_again():
    runner, source, _, _ = make([b"a"])
    source.fail_commits = 1
    turns(runner, 1)
    assert source.commits == [] and runner.checkpoint.failures == 1
    turns(runner, 1)
    assert source.committed(TP) == 1


def test_a_failed_flush_commits_nothing():
    runner, source, sink, _ = make([b"a"])
    sink.fail_flushes = 1
    turns(runner, 1)
    assert source.commits == []
    turns(runner, 1)
    assert source.committed(TP) == 1


def test_a_revoked_partition_commits_what_is_done_and_drops_the_rest():
    handler = Recorder()
    handler.defer_all = True
    runner, source, _, _ = make([b"a", b"b"], handler)
    turns(runner, 2)
    handler.deferred[0].done()
    source.rebalance(revoked=[TP])
    assert source.committed(TP) == 1 and handler.revoked_tps == [TP]
    handler.deferred[1].done()  # a late finish belongs to the next owner
    turns(runner, 1)
    assert source.committed(TP) == 1


def test_a_revoked_partition_ends_its_retry():
    handler = Recorder()
    handler.fail[b"a"] = [RedisError("down")] * 5
    runner, source, _, clock = make([b"a"], handler)
    turns(runner, 1)
    assert source.paused
    source.rebalance(revoked=[TP])
    assert not source.paused
    source.rebalance(assigned=[TP])
    clock.now = 100
    turns(runner, 2)
    assert handler.seen == [b"a"]


def test_run_commits_and_closes_on_stop():
    class StopAfterOne(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.runner: ConsumeRunner | None = None
            self.closed = False

        def handle(self, record: Record, ticket: Ticket) -> None:
            super().handle(record, ticket)
            assert self.runner is not None
            self.runner.stop()

        def close(self) -> None:
            self.closed = True

    handler = StopAfterOne()
    runner, source, _, _ = make([b"a", b"b"], handler)
    runner.config = RunnerConfig(commit_interval_s=60)
    handler.runner = runner
    runner.run()
    assert handler.seen == [b"a"] and handler.closed and source.closed
    assert source.committed(TP) == 1


def test_dead_letters_carry_the_source_position():
    handler = Recorder()
    handler.fail[b"x"] = [MalformedEvent("why")]
    source = MemorySource()
    source.push(TOPIC, b"ok", partition=3)
    source.push(TOPIC, b"x", partition=3)
    sink = MemorySink()
    runner = ConsumeRunner(
        "t", source, sink, DeadLetters(SETTINGS, sink), handler, RunnerConfig(commit_interval_s=0)
    )
    turns(runner, 2)
    (letter,) = sink.on(SETTINGS.deadletter_topic)
    assert (letter["source_topic"], letter["partition"], letter["offset"]) == (TOPIC, 3, 1)
    assert orjson.loads(sink.produced[0].value)["reason"] == "why"


def test_the_kafka_hop_of_each_new_record_is_observed_by_topic():
    import time

    from prometheus_client import REGISTRY

    labels = {"topic": "hop-topic"}
    before = REGISTRY.get_sample_value("gleaner_kafka_hop_seconds_count", labels) or 0.0
    source = MemorySource()
    source.add(Record("hop-topic", 0, 0, None, b"a", int(time.time() * 1000) - 20))
    source.add(Record("hop-topic", 0, 1, None, b"b", None))  # no timestamp: not observed
    runner = ConsumeRunner("test", source, MemorySink(), DeadLetters(SETTINGS, MemorySink()), Recorder())
    turns(runner, 3)
    assert REGISTRY.get_sample_value("gleaner_kafka_hop_seconds_count", labels) == before + 1
    assert (REGISTRY.get_sample_value("gleaner_kafka_hop_seconds_sum", labels) or 0.0) >= 0.02
