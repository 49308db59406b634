"""Placement's background readers live as long as placement: a broken consumer is
replaced (behind a new follower runner), a record that fails is passed over, and nothing
ends the thread but ``stop``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest

from gleaner.errors import KafkaError
from gleaner.settings import Settings
from streams.events import ActivationRequest, InvokerHealth
from streams.failures import failed_completion
from streams.kafka.client import Record
from streams.kafka.follow import follow
from streams.kafka.runner import Handler, RunnerConfig, Ticket
from streams.kafka.signing import Signer
from streams.kafka.testing import MemorySource, record
from streams.placement.acks import Unacknowledged
from streams.placement.agent import Acknowledgements, Heartbeats, InvokerTable

SETTINGS = Settings()
SIGNER = Signer(b"s" * 32)
SIGNED = RunnerConfig(signer=SIGNER, max_event_bytes=SETTINGS.kafka_message_max_bytes)


class BrokenAfter(MemorySource):
    """Hands out its records, then fails every poll as a lost broker does."""

    def poll(self, timeout_s: float) -> Record | None:
        if self.pending:
            return super().poll(timeout_s)
        raise KafkaError('consume failed: KafkaError{code=_FATAL,val=-150,str="broker gone"}')


def completion(n: int) -> Record:
    req = ActivationRequest(f"{n:032x}", "guest", "f")
    event = failed_completion(req, 0, "done", "i0")
    return record(SETTINGS.completed_topic, event.to_bytes(), key=req.activation_id.encode(), signer=SIGNER)


def run_until(check: Callable[[], bool], target: Callable[[threading.Event], None]) -> threading.Thread:
    stop = threading.Event()
    thread = threading.Thread(target=target, args=(stop,), daemon=True)
    thread.start()
    for _ in range(500):
        if check():
            break
        stop.wait(0.01)
    assert check(), "the reader never got there"
    assert thread.is_alive()  # alive until told to stop
    stop.set()
    thread.join(2)
    assert not thread.is_alive()
    return thread


def test_acks_go_on_after_a_kafka_error_a_failed_open_and_records_that_are_not_completions():
    unacked = Unacknowledged()
    for n in range(4):
        unacked.sent("i0", ActivationRequest(f"{n:032x}", "guest", "f"))
    first = BrokenAfter([completion(0), record(SETTINGS.completed_topic, b"\xff not json", signer=SIGNER)])
    second = MemorySource([completion(1), record(SETTINGS.completed_topic, b"[]"), completion(2)])
    openings: list[MemorySource | Exception] = [
        first,
        KafkaError("cannot consume ['activations.completed']: broker not ready"),
        second,
    ]

    def open_reader() -> MemorySource:
        opening = openings.pop(0)
        if isinstance(opening, Exception):
            raise opening
        return opening

    def target(stop: threading.Event) -> None:
        follow("acks", open_reader, Acknowledgements(unacked), stop, config=SIGNED, backoff_initial_s=0.01)

    run_until(lambda: len(unacked) == 1, target)
    assert first.closed and second.closed and openings == []
    unacked.take_back("i0")
    assert [r.activation_id for r in unacked.pending()] == [f"{3:032x}"]


class Offsets(Handler):
    """Keeps the offsets it handled; fails on offset 0 as a bug would."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def handle(self, record: Record, ticket: Ticket) -> None:
        if record.offset == 0:
            raise RuntimeError("a bug in one record's handling")
        self.seen.append(record.offset)


def test_a_record_whose_handling_raises_is_skipped_and_the_reader_goes_on():
    handler = Offsets()
    source = MemorySource([record("t", b"a"), record("t", b"b"), record("t", b"c")])
    run_until(
        lambda: handler.seen == [1, 2],
        lambda stop: follow("t", lambda: source, handler, stop, config=RunnerConfig()),
    )


def beat(invoker: str = "i0") -> bytes:
    return InvokerHealth(invoker, "inc", 0, 2.0, 4096, 2.0, 4096, 0, 0).to_bytes()


def test_heartbeats_keep_the_table_fed_after_the_consumer_fails():
    table = InvokerTable(unhealthy_after_s=1e9)
    readers = iter(
        [
            BrokenAfter([record(SETTINGS.health_topic, b"\x00", signer=SIGNER)]),
            MemorySource([record(SETTINGS.health_topic, beat(), signer=SIGNER)]),
        ]
    )

    def target(stop: threading.Event) -> None:
        handler = Heartbeats(table)
        follow("health", lambda: next(readers), handler, stop, config=SIGNED, backoff_initial_s=0.01)

    run_until(lambda: table.states() == {"i0": "up"}, target)


class Letters:
    def __init__(self) -> None:
        self.sent: list[tuple[Record, str]] = []

    def send(self, record: Record, reason: str) -> None:
        self.sent.append((record, reason))


def test_placements_heartbeat_reader_parks_what_it_refuses_and_reads_on():
    """The health topic has no consumer group: placement's reader dead-letters an unsigned,
    forged or malformed heartbeat (once), the gateway's only logs it."""
    table, letters = InvokerTable(unhealthy_after_s=1e9), Letters()
    source = MemorySource(
        [
            record(SETTINGS.health_topic, beat("ghost")),  # unsigned: any Kafka client could write it
            record(SETTINGS.health_topic, beat("ghost"), signer=Signer(b"x" * 32)),  # forged
            record(SETTINGS.health_topic, b"{}", signer=SIGNER),  # malformed
            record(SETTINGS.health_topic, beat("i0"), signer=SIGNER),
        ]
    )

    def target(stop: threading.Event) -> None:
        follow("health", lambda: source, Heartbeats(table), stop, config=SIGNED, deadletters=letters)

    run_until(lambda: table.states() == {"i0": "up"}, target)
    assert [r.offset for r, _ in letters.sent] == [0, 1, 2]
    reasons = [why for _, why in letters.sent]
    assert reasons[0].startswith(f"unsigned event on {SETTINGS.health_topic}")
    assert reasons[1].startswith(f"forged event on {SETTINGS.health_topic}")
    assert "ghost" not in table.states() and source.commits == []


def test_the_backoff_doubles_while_no_consumer_works_and_starts_over_once_one_did(
    caplog: pytest.LogCaptureFixture,
):
    unacked = Unacknowledged()
    unacked.sent("i0", ActivationRequest(f"{7:032x}", "guest", "f"))
    worked = BrokenAfter([completion(0)])
    openings: list[MemorySource | Exception] = [
        KafkaError("broker not ready"),
        KafkaError("broker not ready"),
        worked,  # reads a record, then its broker goes
        BrokenAfter(),  # polls nothing before it fails: backoff doubles again
        MemorySource([completion(7)]),
    ]

    def open_reader() -> MemorySource:
        opening = openings.pop(0)
        if isinstance(opening, Exception):
            raise opening
        return opening

    def target(stop: threading.Event) -> None:
        follow("acks", open_reader, Acknowledgements(unacked), stop, config=SIGNED, backoff_initial_s=0.01)

    with caplog.at_level(logging.WARNING, "streams.kafka.follow"):
        run_until(lambda: len(unacked) == 0, target)
    delays = [r.args[-1] for r in caplog.records if r.name == "streams.kafka.follow"]  # type: ignore[index]
    assert delays == [0.01, 0.02, 0.01, 0.02]
    assert worked.closed and openings == []
