"""Placement's background readers live as long as placement: a broken consumer is
replaced, a record that fails is skipped, and nothing ends the thread but ``stop``."""

from __future__ import annotations

import threading
from collections.abc import Callable

from gleaner.errors import KafkaError
from gleaner.settings import Settings
from streams.events import ActivationRequest, InvokerHealth
from streams.failures import failed_completion
from streams.kafka.client import Record
from streams.kafka.signing import Signer
from streams.kafka.testing import MemorySource, record
from streams.placement.acks import Unacknowledged
from streams.placement.agent import InvokerTable, completion_reader, heartbeat_reader
from streams.placement.listen import follow

SETTINGS = Settings()
SIGNER = Signer(b"s" * 32)


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
        follow("acks", open_reader, completion_reader(SIGNER, unacked), stop, backoff_initial_s=0.01)

    run_until(lambda: len(unacked) == 1, target)
    assert first.closed and second.closed and openings == []
    unacked.take_back("i0")
    assert [r.activation_id for r in unacked.pending()] == [f"{3:032x}"]


def test_a_record_whose_handling_raises_is_skipped_and_the_reader_goes_on():
    seen: list[int] = []

    def on_record(rec: Record) -> None:
        if rec.offset == 0:
            raise RuntimeError("a bug in one record's handling")
        seen.append(rec.offset)

    source = MemorySource([record("t", b"a"), record("t", b"b"), record("t", b"c")])
    run_until(lambda: seen == [1, 2], lambda stop: follow("t", lambda: source, on_record, stop))


def test_heartbeats_keep_the_table_fed_after_the_consumer_fails():
    table = InvokerTable(unhealthy_after_s=1e9)
    beat = InvokerHealth("i0", "inc", 0, 2.0, 4096, 2.0, 4096, 0, 0).to_bytes()
    readers = iter(
        [
            BrokenAfter([record(SETTINGS.health_topic, b"\x00", signer=SIGNER)]),
            MemorySource([record(SETTINGS.health_topic, beat, signer=SIGNER)]),
        ]
    )
    on_record = heartbeat_reader(SETTINGS, SIGNER, table, None)

    def target(stop: threading.Event) -> None:
        follow("health", lambda: next(readers), on_record, stop, backoff_initial_s=0.01)

    run_until(lambda: table.states() == {"i0": "up"}, target)
