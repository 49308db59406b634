"""The follower: the consume runner of a group-less reader. It commits nothing, produces
nothing and passes over (logs) what it refuses; behind it, a group-less EventConsumer
still reads a partition again from its start once the broker restarted its log."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from gleaner.errors import KafkaError, MalformedEvent
from gleaner.settings import Settings, load_settings
from streams.kafka import client
from streams.kafka.client import EventConsumer, Record
from streams.kafka.runner import Follower, Handler, RunnerConfig, Ticket
from streams.kafka.signing import Signer
from streams.kafka.testing import MemorySource
from tests.unit.streams.kafka.test_follow_restart import TOPIC, Broker, FakeConsumer, offsets

SIGNER = Signer(b"s" * 32)


class Seen(Handler):
    def __init__(self) -> None:
        self.values: list[bytes | None] = []

    def handle(self, record: Record, ticket: Ticket) -> None:
        if record.value == b"bad":
            raise MalformedEvent("not an event")
        self.values.append(record.value)


class Letters:
    """A dead-letter sink that keeps (offset, reason); it fails while ``failing``."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []
        self.failing = False

    def send(self, record: Record, reason: str) -> None:
        if self.failing:
            raise KafkaError("produce to gleaner.deadletter failed: broker gone")
        self.sent.append((record.offset, reason))


class BrokenAfter(MemorySource):
    """Hands out its records, then fails every poll as a lost broker does."""

    def poll(self, timeout_s: float) -> Record | None:
        if self.pending:
            return super().poll(timeout_s)
        raise KafkaError("consume failed: broker gone")


def follower(source: MemorySource, handler: Handler) -> Follower:
    return Follower("f", source, handler, RunnerConfig(signer=SIGNER, max_event_bytes=100))


def test_it_hands_signed_records_over_and_commits_nothing() -> None:
    source = MemorySource()
    for value in (b"a", b"b"):
        source.push(TOPIC, value, signer=SIGNER)
    seen = Seen()
    runner = follower(source, seen)
    for _ in range(3):
        runner.run_once()
    runner.checkpoint.commit()
    assert seen.values == [b"a", b"b"]
    assert source.commits == []
    assert runner.checkpoint.in_flight() == 0 and runner.checkpoint.failures == 0


def test_what_it_refuses_is_logged_and_passed_over(caplog: pytest.LogCaptureFixture) -> None:
    source = MemorySource()
    source.push(TOPIC, b"unsigned")
    source.push(TOPIC, b"forged", headers=(("gleaner-sig", b"0" * 64),))
    source.push(TOPIC, b"x" * 101, signer=SIGNER)  # above max_event_bytes
    source.push(TOPIC, b"bad", signer=SIGNER)  # the handler finds it malformed
    source.push(TOPIC, b"good", signer=SIGNER)
    seen = Seen()
    runner = follower(source, seen)
    with caplog.at_level(logging.WARNING, "streams.kafka.runner"):
        for _ in range(5):
            runner.run_once()
    assert seen.values == [b"good"]
    assert (runner.passed_over, runner.dead_lettered) == (4, 0)
    ignored = [r.getMessage() for r in caplog.records if "ignoring" in r.getMessage()]
    assert len(ignored) == 4
    assert "unsigned event" in ignored[0] and "forged event" in ignored[1]
    assert "above the limit" in ignored[2] and "not an event" in ignored[3]


def test_it_produces_nothing_and_closes_its_source() -> None:
    source = MemorySource()
    runner = follower(source, Seen())
    with pytest.raises(KafkaError, match="produces nothing"):
        runner.sink.produce("elsewhere", b"v")
    runner.stop()
    runner.run()
    assert source.closed and source.commits == []


def test_the_runner_reads_a_restarted_partition_again_from_its_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The follower's turns poll the group-less EventConsumer, whose idle polls notice
    that the broker began a partition's log again, and read it from its start."""
    FakeConsumer.broker = Broker()
    monkeypatch.setattr(client.confluent_kafka, "Consumer", FakeConsumer)
    clock = [1000.0]
    monkeypatch.setattr(client.time, "monotonic", lambda: clock[0])
    settings = load_settings(env={"GLEANER_KAFKA_IDLE_AFTER_MS": "0"})
    consumer = EventConsumer(settings, "g", [TOPIC], assign_latest=True, hot=False)
    fake = consumer._consumer
    runner = Follower("f", consumer, Seen(), RunnerConfig.for_settings(Settings(state_dir=tmp_path)))
    assert offsets(fake) == {0: 120, 1: 80}  # from the end
    fake.broker.ends = {0: 2, 1: 0}  # the broker lost its log and began again
    clock[0] += 2.0
    runner.run_once()
    assert offsets(fake) == {0: 0, 1: 0}


def test_given_dead_letters_it_parks_what_it_refuses_once_and_goes_on() -> None:
    """The one follower of a topic no group reads (placement's heartbeats) parks what it
    refuses; a dead letter it cannot send is logged, and the follower goes on anyway."""
    source = MemorySource()
    source.push(TOPIC, b"unsigned")
    source.push(TOPIC, b"x" * 101, signer=SIGNER)
    source.push(TOPIC, b"bad", signer=SIGNER)
    source.push(TOPIC, b"good", signer=SIGNER)
    source.push(TOPIC, b"unsigned again")
    source.push(TOPIC, b"good again", signer=SIGNER)
    letters, seen = Letters(), Seen()
    config = RunnerConfig(signer=SIGNER, max_event_bytes=100)
    runner = Follower("f", source, seen, config, deadletters=letters)
    for _ in range(4):
        runner.run_once()
    letters.failing = True
    for _ in range(2):
        runner.run_once()
    runner.checkpoint.commit()
    assert seen.values == [b"good", b"good again"]
    assert [offset for offset, _ in letters.sent] == [0, 1, 2]
    reasons = [reason for _, reason in letters.sent]
    assert "unsigned event" in reasons[0] and "above the limit" in reasons[1] and reasons[2] == "not an event"
    assert (runner.dead_lettered, runner.passed_over) == (4, 0)  # the 4th's letter failed: counted, logged
    assert runner.checkpoint.in_flight() == 0 and source.commits == []


def test_it_ends_with_the_stop_event_it_was_given_and_counts_its_turns() -> None:
    source = BrokenAfter()
    source.push(TOPIC, b"a", signer=SIGNER)
    stop = threading.Event()
    runner = Follower("f", source, Seen(), RunnerConfig(signer=SIGNER), stop=stop)
    assert runner.stopping_event is stop
    runner.run_once()
    assert runner.turns == 1
    with pytest.raises(KafkaError, match="broker gone"):
        runner.run_once()
    assert runner.turns == 1  # a turn whose poll failed does not count
    stop.set()
    runner.run()  # returns at once: the component stopped
    assert source.closed and runner.stopping
