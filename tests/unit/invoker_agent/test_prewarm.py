"""Pre-warm on the invoker: start or skip, duplicates, no effect on real work.

The real ContainerPool over a fake Docker engine and a fake action proxy (no
containers, no HTTP); the starter pool runs hints inline so outcomes are
deterministic.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Any

import pytest

from gleaner.allocation import Allocation
from gleaner.errors import DockerError
from gleaner.metrics import PREWARMS
from gleaner.settings import Settings
from invoker_agent import container_pool
from invoker_agent.agent import InvokerAgent
from invoker_agent.container_pool import ContainerPool, containers_to_start
from invoker_agent.dedupe import ActivationClaims
from invoker_agent.docker_engine import ContainerInfo
from invoker_agent.ledger import CapacityLedger
from invoker_agent.permits import ResourcePermits
from invoker_agent.prewarm import Later, Prewarmer, SeenHints, container_key, start_in_s
from streams.events import PrewarmFunction, PrewarmHint, now_ms
from streams.kafka.deadletter import DeadLetters
from streams.kafka.runner import ConsumeRunner, RunnerConfig
from streams.kafka.testing import MemorySink, MemorySource
from tests.unit.fakes import MemoryRedis
from tests.unit.invoker_agent.test_agent import FakeExecutor

REV = "1-abc"
DOC = {
    "_rev": REV,
    "exec": {"kind": "python:3", "code": "def main(a): return a", "main": "main"},
    "limits": {"cpu": 0.5, "memory": 256, "timeout": 60000, "logs": 10},
}
HINT_ID = "a" * 32


class FakeEngine:
    def __init__(self, fail: bool = False) -> None:
        self.started: list[tuple[float, int]] = []
        self.removed: list[str] = []
        self.updated: list[tuple[float, int, int | None]] = []
        self.fail = fail
        self.gate: threading.Event | None = None  # when set: start() waits for it

    def start(
        self,
        *,
        image: str,
        name: str,
        cpu: float,
        memory_mb: int,
        labels: dict[str, str],
        cpu_shares: int = 1024,
    ) -> ContainerInfo:
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail:
            raise DockerError("no docker")
        self.started.append((cpu, memory_mb))
        return ContainerInfo(id=f"c{len(self.started)}", name=name, ip="10.0.0.1", pid=1)

    def remove(self, container_id: str) -> None:
        self.removed.append(container_id)

    def update(self, container_id: str, *, cpu: float, memory_mb: int, cpu_shares: int | None = None) -> None:
        self.updated.append((cpu, memory_mb, cpu_shares))


class FakeProxy:
    inits: list[str] = []

    def __init__(self, host: str, port: int = 8080, *, token: str = "") -> None:
        pass

    def wait_ready(self, timeout_s: float) -> None:
        pass

    def init(self, *, name: str, main: str, code: str, binary: bool, env: dict[str, str]) -> None:
        FakeProxy.inits.append(name)

    def close(self) -> None:
        pass


class FakeActions:
    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.docs = docs

    def get(self, namespace: str, name: str, rev: str | None) -> dict[str, Any] | None:
        return self.docs.get(name)


class Inline:
    """A ThreadPoolExecutor stand-in that runs each task at once."""

    def submit(self, fn: Any, *args: Any) -> Future[None]:
        fn(*args)
        done: Future[None] = Future()
        done.set_result(None)
        return done

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


@pytest.fixture(autouse=True)
def fake_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeProxy.inits = []
    monkeypatch.setattr(container_pool, "ActionProxyClient", FakeProxy)


def build(
    settings: Settings | None = None, engine: FakeEngine | None = None, memory_mb: int = 4096
) -> tuple[Prewarmer, ContainerPool, FakeEngine]:
    settings = settings or Settings(invoker_id="invoker0")
    engine = engine or FakeEngine()
    pool = ContainerPool(engine, settings)  # type: ignore[arg-type]
    permits = ResourcePermits(CapacityLedger(4.0, memory_mb, settings.cpu_step))
    prewarmer = Prewarmer(settings, pool, FakeActions({"b": DOC, "c": DOC}), permits, starter=Inline())  # type: ignore[arg-type]
    return prewarmer, pool, engine


def hint(*functions: PrewarmFunction, hint_id: str = HINT_ID) -> PrewarmHint:
    return PrewarmHint(hint_id=hint_id, namespace="guest", functions=functions)


def outcome(label: str) -> float:
    return PREWARMS.labels(label)._value.get()


KEY = container_key("guest", "b", DOC)


def test_the_decision_starts_only_what_is_missing_and_at_most_the_room() -> None:
    assert containers_to_start(wanted=1, idle=0, warming=0, room=2) == 1
    assert containers_to_start(wanted=1, idle=1, warming=0, room=2) == 0
    assert containers_to_start(wanted=1, idle=0, warming=1, room=2) == 0
    assert containers_to_start(wanted=4, idle=1, warming=0, room=2) == 2
    assert containers_to_start(wanted=4, idle=0, warming=0, room=0) == 0


def test_a_function_without_a_warm_container_gets_one_at_the_planned_allocation_parked_idle() -> None:
    prewarmer, pool, engine = build()
    planned = Allocation(0.75, 512, "harvest")
    prewarmer.hint(hint(PrewarmFunction("b", 1, 1, planned)))
    assert engine.started == [(0.75, 512)]
    assert FakeProxy.inits == ["b"]
    assert pool.idle_count(KEY) == 1
    assert pool.stats()["busy"] == 0 and pool.stats()["warming"] == 0


def test_the_user_allocation_when_the_plan_does_not_fit_or_there_is_none() -> None:
    prewarmer, _, engine = build(memory_mb=1024)
    prewarmer.hint(hint(PrewarmFunction("b", 1, 1, Allocation(16.0, 512, "harvest"))))
    assert engine.started == [(0.5, 256)]


def test_a_function_with_an_idle_warm_container_is_skipped() -> None:
    prewarmer, pool, engine = build()
    lease = pool.acquire(KEY, cpu=0.5, memory_mb=256, init=lambda c: None)
    pool.release(lease)
    before = outcome("warm")
    prewarmer.hint(hint(PrewarmFunction("b")))
    assert len(engine.started) == 1  # only the run's own
    assert outcome("warm") == before + 1


def test_a_duplicate_hint_changes_nothing() -> None:
    prewarmer, pool, engine = build()
    prewarmer.hint(hint(PrewarmFunction("b")))
    pool.evict_idle(10)  # even with the container gone, the same hint starts nothing
    before = outcome("duplicate")
    prewarmer.hint(hint(PrewarmFunction("b")))
    assert len(engine.started) == 1
    assert outcome("duplicate") == before + 1


def test_a_second_hint_for_the_same_action_does_not_start_a_second_container() -> None:
    prewarmer, pool, engine = build()
    prewarmer.hint(hint(PrewarmFunction("b")))
    prewarmer.hint(hint(PrewarmFunction("b"), hint_id="b" * 32))
    assert len(engine.started) == 1 and pool.idle_count(KEY) == 1


def test_a_parallel_stage_gets_as_many_containers_as_it_runs_at_once() -> None:
    prewarmer, pool, engine = build()
    prewarmer.hint(hint(PrewarmFunction("b", 3, 1)))
    assert len(engine.started) == 3 and pool.idle_count(KEY) == 3


def test_switched_off_it_starts_nothing() -> None:
    prewarmer, _, engine = build(Settings(invoker_id="invoker0", prewarm=False))
    prewarmer.hint(hint(PrewarmFunction("b")))
    assert engine.started == []


def test_an_unknown_action_or_a_failing_start_is_counted_and_never_raised() -> None:
    prewarmer, pool, _ = build(engine=FakeEngine(fail=True))
    unknown, failed = outcome("unknown_action"), outcome("failed")
    prewarmer.hint(hint(PrewarmFunction("nope"), PrewarmFunction("b")))
    assert outcome("unknown_action") == unknown + 1
    assert outcome("failed") == failed + 1
    assert pool.stats() == {"idle": 0, "busy": 0, "warming": 0, "memory_mb": 0}


def test_no_start_beyond_the_invokers_memory() -> None:
    prewarmer, _, engine = build(memory_mb=300)
    prewarmer.hint(hint(PrewarmFunction("b", 2, 1)))
    assert len(engine.started) == 1  # 256 MB fits once in 300


def test_an_unused_prewarmed_container_goes_with_the_keep_alive() -> None:
    prewarmer, pool, engine = build(Settings(invoker_id="invoker0", container_keepalive_s=10))
    prewarmer.hint(hint(PrewarmFunction("b")))
    assert pool.reap_idle(now=10**9) == 1
    assert engine.removed == ["c1"] and pool.idle_count(KEY) == 0


def test_a_run_takes_the_prewarmed_container_warm() -> None:
    prewarmer, pool, engine = build()
    prewarmer.hint(hint(PrewarmFunction("b")))
    lease = pool.acquire(KEY, cpu=0.5, memory_mb=256, init=lambda c: None)
    assert lease.cold is False and len(engine.started) == 1


def test_a_warm_container_is_reweighed_only_when_its_cpu_shares_change() -> None:
    _, pool, engine = build()
    lease = pool.acquire(KEY, cpu=2.0, memory_mb=256, init=lambda c: None, cpu_shares=128)  # OpenWhisk's
    assert lease.cpu_shares == 128
    pool.release(lease)
    lease = pool.acquire(KEY, cpu=0.5, memory_mb=256, init=lambda c: None)  # a quota run: weight reset
    assert engine.updated == [(0.5, 256, 1024)] and lease.cpu_shares == 1024
    pool.release(lease)
    pool.acquire(KEY, cpu=1.0, memory_mb=256, init=lambda c: None)  # same weight: not rewritten
    assert engine.updated[-1] == (1.0, 256, None) and len(engine.started) == 1


def test_a_run_that_arrives_while_its_container_is_warming_waits_for_it_and_says_so() -> None:
    engine = FakeEngine()
    engine.gate = threading.Event()
    settings = Settings(invoker_id="invoker0")
    pool = ContainerPool(engine, settings)  # type: ignore[arg-type]
    assert pool.reserve_warming(KEY, 1, room=1) == 1
    warming = threading.Thread(target=lambda: pool.warm(KEY, cpu=0.5, memory_mb=256, init=lambda c: None))
    warming.start()
    waiting = threading.Event()
    wait_for_warming = pool._wait_for_warming

    def spy(key: str, deadline: float) -> bool:
        waiting.set()
        return wait_for_warming(key, deadline)

    pool._wait_for_warming = spy  # type: ignore[method-assign]
    got: list[Any] = []
    run = threading.Thread(
        target=lambda: got.append(pool.acquire(KEY, cpu=0.5, memory_mb=256, init=lambda c: None))
    )
    run.start()
    assert waiting.wait(5)  # the run found no idle container while one was warming
    engine.gate.set()
    warming.join(5)
    run.join(5)
    assert len(engine.started) == 1  # one container, not two
    assert got[0].cold is True and got[0].init_ms is not None  # the wait is its (partial) cold start


def test_seen_hints_forget_the_oldest() -> None:
    seen = SeenHints(size=2)
    assert seen.first_time("a") and seen.first_time("b") and not seen.first_time("a")
    assert seen.first_time("c") and seen.first_time("a")  # "a" was dropped for "c"


# --- behind the invoker's consume loop -------------------------------------------------------------


def test_the_invoker_hands_a_hint_to_the_prewarmer_runs_nothing_and_dead_letters_a_bad_one() -> None:
    settings = Settings(invoker_id="i0")
    topic = settings.invoker_topic("i0")
    prewarmer, pool, _ = build(settings)
    executor = FakeExecutor()
    source, sink = MemorySource(), MemorySink()
    deadletters = DeadLetters(settings, sink)
    claims = ActivationClaims(MemoryRedis(), "i0", "inc")  # type: ignore[arg-type]
    agent = InvokerAgent(settings, sink, deadletters, executor, claims, None, "inc", prewarmer)  # type: ignore[arg-type]
    runner = ConsumeRunner("invoker", source, sink, deadletters, agent, RunnerConfig(commit_interval_s=0))
    source.push(topic, hint(PrewarmFunction("b")).to_bytes())
    source.push(topic, b'{"type": "prewarm.hint", "hint_id": "' + b"c" * 32 + b'", "functions": []}')
    runner.run_once()
    runner.run_once()
    assert pool.idle_count(KEY) == 1 and executor.runs == []
    assert sink.on(settings.completed_topic) == []  # a hint is not an activation: no record
    (letter,) = sink.on(settings.deadletter_topic)
    assert "field 'functions' is empty" in letter["reason"]
    assert source.committed((topic, 0)) == 2
    agent.close()


def test_idle_containers_of_other_actions_make_room_least_recently_used_first() -> None:
    prewarmer, pool, engine = build(memory_mb=600)
    other = container_key("guest", "c", DOC)
    held = [pool.acquire(other, cpu=0.5, memory_mb=256, init=lambda c: None) for _ in range(2)]
    for lease in held:  # two idle containers of another action fill the memory
        pool.release(lease)
    prewarmer.hint(hint(PrewarmFunction("b", 2, 1)))
    assert pool.idle_count(KEY) == 2  # both started: the other action's idle containers went
    assert engine.removed == [held[0].container.id, held[1].container.id]  # least recently used first


# --- just in time: a hint that may wait ---------------------------------------------------------------


def test_a_hint_waits_until_sent_plus_its_delay_and_never_longer_than_the_delay() -> None:
    assert start_in_s(submitted_ms=10_000, delay_ms=2_000, now=10_500) == 1.5
    assert start_in_s(submitted_ms=10_000, delay_ms=2_000, now=13_000) == 0.0  # already due
    assert start_in_s(submitted_ms=90_000, delay_ms=2_000, now=10_000) == 2.0  # a clock ahead of ours
    assert start_in_s(submitted_ms=10_000, delay_ms=0, now=10_000) == 0.0


def delayed(delay_ms: int, hint_id: str = HINT_ID) -> PrewarmHint:
    return PrewarmHint(
        hint_id, "guest", (PrewarmFunction("b", 1, 2),), submitted_ms=now_ms(), delay_ms=delay_ms
    )


def eventually(check: Any, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_delayed_hint_holds_no_start_slot_until_its_time_and_a_redelivery_is_still_a_duplicate() -> None:
    prewarmer, _, engine = build()
    prewarmer.hint(delayed(60_000))
    assert engine.started == [] and prewarmer.delayed() == 1
    before = outcome("duplicate")
    prewarmer.hint(delayed(60_000))
    assert outcome("duplicate") == before + 1 and prewarmer.delayed() == 1
    prewarmer.hint(hint(PrewarmFunction("c"), hint_id="d" * 32))  # another hint starts meanwhile
    assert len(engine.started) == 1
    prewarmer.close()  # what still waits is dropped with the invoker
    assert prewarmer.delayed() == 0 and len(engine.started) == 1


def test_a_delayed_hint_starts_its_containers_once_due() -> None:
    prewarmer, pool, engine = build()
    prewarmer.hint(delayed(30))
    assert eventually(lambda: pool.idle_count(KEY) == 1)
    assert len(engine.started) == 1 and prewarmer.delayed() == 0
    prewarmer.close()


def test_the_timer_takes_hints_in_the_order_they_fall_due_and_drops_beyond_its_limit() -> None:
    taken: list[str] = []
    later = Later(lambda h: taken.append(h.hint_id), limit=2)
    assert later.add(0.06, delayed(0, "1" * 32)) and later.add(0.02, delayed(0, "2" * 32))
    assert not later.add(0.01, delayed(0, "3" * 32))  # full
    assert eventually(lambda: len(taken) == 2)
    assert taken == ["2" * 32, "1" * 32]
    later.close()
    assert not later.add(0.0, delayed(0))


def test_a_full_timer_drops_the_hint_as_busy() -> None:
    settings = Settings(invoker_id="invoker0")
    pool = ContainerPool(FakeEngine(), settings)  # type: ignore[arg-type]
    engine = pool.engine
    permits = ResourcePermits(CapacityLedger(4.0, 4096, settings.cpu_step))
    prewarmer = Prewarmer(settings, pool, FakeActions({"b": DOC}), permits, starter=Inline(), max_delayed=0)  # type: ignore[arg-type]
    before = outcome("busy")
    prewarmer.hint(delayed(60_000))
    assert outcome("busy") == before + 1 and engine.started == []
