"""What the gateway's routes hand a request to (streams.gateway.intake): produced at once, and
a blocking caller gets the completion's record, or None (a 202) when none came in time."""

from __future__ import annotations

import asyncio
from typing import Any

from gleaner.settings import Settings
from streams.gateway.intake import Intake
from streams.kafka.testing import MemorySink

TOPIC = "invocations"
RECORD = {"activationId": "a1", "statusCode": 0}


class FakeWaiter:
    """Answers every expected id with ``record`` at once, or never when it is None."""

    def __init__(self, record: dict[str, Any] | None) -> None:
        self.record = record
        self.expected: list[str] = []
        self.forgotten: list[str] = []

    def expect(self, activation_id: str) -> asyncio.Future[dict[str, Any]]:
        self.expected.append(activation_id)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if self.record is not None:
            future.set_result(self.record)
        return future

    def forget(self, activation_id: str) -> None:
        self.forgotten.append(activation_id)


def submit(record: dict[str, Any] | None, *, blocking: bool) -> tuple[Any, MemorySink, FakeWaiter]:
    settings = Settings(blocking_wait_s=0.01)
    intake = Intake(settings.gateway, settings.kafka, settings.stores)
    sink, waiter = MemorySink(), FakeWaiter(record)
    intake.producer, intake.waiter = sink, waiter  # type: ignore[assignment]
    answer = asyncio.run(intake.submit(TOPIC, "a1", b"{}", blocking=blocking))
    return answer, sink, waiter


def test_a_blocking_caller_gets_the_completion_record() -> None:
    answer, sink, waiter = submit(RECORD, blocking=True)
    assert answer == RECORD
    assert [(p.topic, p.key) for p in sink.produced] == [(TOPIC, "a1")]
    assert waiter.expected == ["a1"] and waiter.forgotten == []


def test_a_blocking_caller_past_the_wait_gets_none_and_the_id_is_forgotten() -> None:
    answer, sink, waiter = submit(None, blocking=True)
    assert answer is None
    assert [p.key for p in sink.produced] == ["a1"]
    assert waiter.forgotten == ["a1"]


def test_a_non_blocking_caller_is_not_waited_for() -> None:
    answer, sink, waiter = submit(RECORD, blocking=False)
    assert answer is None
    assert [p.key for p in sink.produced] == ["a1"]
    assert waiter.expected == []
