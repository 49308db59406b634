"""The gateway's completion waiter: a handler behind the follower runner, fed by the
in-memory source. Signed completions answer waiting callers (on the gateway's loop) and
are kept as recent records; forged or malformed ones do neither, and nothing is
committed or produced."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gleaner.errors import KafkaError
from gleaner.settings import Settings
from streams.events import ActivationCompleted
from streams.gateway import completions
from streams.gateway.completions import CompletionWaiter
from streams.kafka.client import Record
from streams.kafka.runner import Follower, RunnerConfig
from streams.kafka.signing import Signer
from streams.kafka.testing import MemorySource

TOPIC = "gleaner.completed"


def completed(activation_id: str, namespace: str = "guest") -> bytes:
    record = {"activationId": activation_id, "namespace": namespace, "response": {"success": True}}
    event = ActivationCompleted(activation_id, namespace, "hello", "invoker0", record)
    return event.to_bytes()


class Waiter:
    """A waiter and the follower runner its thread would run, turned by hand."""

    def __init__(self, tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
        settings = Settings(state_dir=tmp_path)
        self.source = MemorySource()
        self.waiter = CompletionWaiter(settings.kafka, loop, source=self.source)
        self.runner = Follower(
            "completions", self.source, self.waiter.completions, RunnerConfig.for_settings(settings.kafka)
        )
        self.signer = Signer.for_settings(settings.kafka)

    def __getattr__(self, name: str) -> Any:  # expect, recent, forget, start, stop: the waiter's
        return getattr(self.waiter, name)


def make(tmp_path: Path, loop: asyncio.AbstractEventLoop) -> tuple[Waiter, MemorySource, Signer]:
    w = Waiter(tmp_path, loop)
    return w, w.source, w.signer


async def turns(w: Waiter, n: int) -> None:
    """``n`` turns of the runner, then let the loop run what they handed over."""
    for _ in range(n):
        w.runner.run_once()
    await asyncio.sleep(0)


def test_a_signed_completion_answers_its_caller_and_is_kept(tmp_path: Path) -> None:
    async def scenario() -> None:
        waiter, source, signer = make(tmp_path, asyncio.get_running_loop())
        waiting = waiter.expect("a1")
        source.push(TOPIC, completed("a1"), signer=signer)
        source.push(TOPIC, completed("a2"), signer=signer)  # no one waits: only kept
        await turns(waiter, 2)
        assert waiting.done() and waiting.result()["activationId"] == "a1"
        assert waiter.recent("guest", "a2") == {
            "activationId": "a2",
            "namespace": "guest",
            "response": {"success": True},
        }
        assert waiter.recent("other", "a1") is None  # another namespace's record is not shown
        waiter.runner.checkpoint.commit()
        assert source.commits == []  # group-less: nothing to commit

    asyncio.run(scenario())


def test_forged_and_malformed_completions_answer_no_one(tmp_path: Path) -> None:
    async def scenario() -> None:
        waiter, source, signer = make(tmp_path, asyncio.get_running_loop())
        waiting = waiter.expect("a1")
        source.push(TOPIC, completed("a1"))  # unsigned
        source.push(TOPIC, completed("a1"), signer=Signer(b"x" * 32))  # signed with another secret
        source.push(TOPIC, b'{"type": "activation.completed"}', signer=signer)  # malformed
        await turns(waiter, 3)
        assert not waiting.done()
        assert waiter.recent("guest", "a1") is None
        assert waiter.runner.passed_over == 3
        source.push(TOPIC, completed("a1"), signer=signer)  # the stream went on
        await turns(waiter, 1)
        assert waiting.result()["activationId"] == "a1"

    asyncio.run(scenario())


def test_a_forgotten_caller_is_not_answered(tmp_path: Path) -> None:
    async def scenario() -> None:
        waiter, source, signer = make(tmp_path, asyncio.get_running_loop())
        waiting = waiter.expect("a1")
        waiter.forget("a1")
        source.push(TOPIC, completed("a1"), signer=signer)
        await turns(waiter, 1)
        assert not waiting.done()
        assert waiter.recent("guest", "a1") is not None

    asyncio.run(scenario())


def test_only_the_latest_records_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        monkeypatch.setattr(completions, "RECENT", 2)
        waiter, source, signer = make(tmp_path, asyncio.get_running_loop())
        for n in range(3):
            source.push(TOPIC, completed(f"a{n}"), signer=signer)
        await turns(waiter, 3)
        assert waiter.recent("guest", "a0") is None
        assert [waiter.recent("guest", f"a{n}") is not None for n in (1, 2)] == [True, True]

    asyncio.run(scenario())


def test_on_its_thread_it_answers_callers_on_the_loop_and_closes_its_source(tmp_path: Path) -> None:
    async def scenario() -> None:
        waiter, source, signer = make(tmp_path, asyncio.get_running_loop())
        waiting = waiter.expect("a1")
        waiter.start()
        try:
            source.push(TOPIC, completed("a1"), signer=signer)
            result: dict[str, Any] = await asyncio.wait_for(waiting, 30)
        finally:
            waiter.stop()
        assert result["activationId"] == "a1"
        assert source.closed and source.commits == []

    asyncio.run(scenario())


class FailsOnce(MemorySource):
    """A reader whose first poll fails as a broker error does."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def poll(self, timeout_s: float) -> Record | None:
        if not self.failed:
            self.failed = True
            raise KafkaError("broker transport failure")
        return super().poll(timeout_s)


def test_a_failing_reader_is_replaced_and_callers_are_still_answered(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = Settings(state_dir=tmp_path)
        source = FailsOnce()
        waiter = CompletionWaiter(settings.kafka, asyncio.get_running_loop(), source=source)
        waiting = waiter.expect("a1")
        waiter.start()
        try:
            source.push(TOPIC, completed("a1"), signer=Signer.for_settings(settings.kafka))
            result: dict[str, Any] = await asyncio.wait_for(waiting, 30)
        finally:
            waiter.stop()
        assert source.failed and result["activationId"] == "a1"

    asyncio.run(scenario())
