"""The invoker's handler behind the real runner: every activation ends in
exactly one completion, whatever fails on the way."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from gleaner.errors import ContainerError, CouchDBError
from gleaner.records import RecordDraft, build_record
from gleaner.settings import Settings
from invoker_agent.agent import InvokerAgent
from invoker_agent.dedupe import ActivationClaims, Claim, RecentCompletions
from invoker_agent.executor import ActionMissing
from invoker_agent.ledger import CapacityLedger
from invoker_agent.permits import PermitsView, ResourcePermits
from streams.events import ActivationRequest, InvokerHealth
from streams.kafka.deadletter import DeadLetters
from streams.kafka.runner import ConsumeRunner, RunnerConfig
from streams.kafka.testing import MemorySink, MemorySource
from tests.unit.fakes import MemoryRedis

SETTINGS = Settings(invoker_id="i0", platform_retry_s=30.0)
TOPIC = SETTINGS.invoker_topic("i0")
TP = (TOPIC, 0)


class NoPool:
    def shutdown(self) -> None:
        pass


class FakeExecutor:
    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.failures = failures or []
        self.permits = ResourcePermits(CapacityLedger(2.0, 4096))
        self.pool = NoPool()
        self.running = 0
        self.runs: list[str] = []
        self.kept = False  # whether the crashed holder's container kept an answer
        self.recovered_from: list[Any] = []

    def recover(self, req: ActivationRequest, holder: Any) -> dict[str, Any] | None:
        self.recovered_from.append(holder)
        if not self.kept:
            return None
        return build_record(
            RecordDraft(
                req.activation_id, req.namespace, req.action, "0.0.1", "python:3", 1, 2, 0, {"kept": True}
            )
        )

    def execute(self, req: ActivationRequest) -> dict[str, Any]:
        if self.failures:
            raise self.failures.pop(0)
        self.runs.append(req.activation_id)
        return build_record(
            RecordDraft(
                req.activation_id, req.namespace, req.action, "0.0.1", "python:3", 1, 2, 0, {"ok": True}
            )
        )


def make(executor: FakeExecutor, settings: Settings = SETTINGS, redis: MemoryRedis | None = None):
    source, sink = MemorySource(), MemorySink()
    deadletters = DeadLetters(settings, sink)
    claims = ActivationClaims(redis or MemoryRedis(), "i0", "inc")  # type: ignore[arg-type]
    agent = InvokerAgent(settings, sink, deadletters, executor, claims, None, "inc")  # type: ignore[arg-type]
    runner = ConsumeRunner("invoker", source, sink, deadletters, agent, RunnerConfig(commit_interval_s=0))
    return runner, source, sink, agent


def settle(runner: ConsumeRunner, source: MemorySource, offset: int, limit_s: float = 20.0) -> None:
    deadline = time.monotonic() + limit_s
    while source.committed(TP) != offset and time.monotonic() < deadline:
        runner.run_once()
        time.sleep(0.01)
    assert source.committed(TP) == offset


def invocation(activation_id: str, action: str = "f") -> bytes:
    return ActivationRequest(activation_id, "guest", action, caused_by="d" * 32).to_bytes()


def completions(sink: MemorySink) -> list[dict[str, Any]]:
    return sink.on(SETTINGS.completed_topic)


def test_an_activation_ends_in_one_completion_keyed_by_its_dag():
    runner, source, sink, agent = make(FakeExecutor())
    source.push(TOPIC, invocation("a" * 32))
    settle(runner, source, 1)
    (done,) = completions(sink)
    assert done["record"]["response"]["result"] == {"ok": True} and done["invoker"] == "i0"
    assert sink.produced[-1].key == "d" * 32
    agent.close()


def test_a_duplicate_delivery_runs_once_and_gets_the_same_completion_again():
    executor = FakeExecutor()
    runner, source, sink, agent = make(executor)
    source.push(TOPIC, invocation("a" * 32))
    settle(runner, source, 1)
    source.push(TOPIC, invocation("a" * 32))
    settle(runner, source, 2)
    first, again = completed(sink)
    assert executor.runs == ["a" * 32] and again == first
    agent.close()


def completed(sink: MemorySink) -> list[tuple[str | bytes | None, bytes]]:
    """(key, bytes) of each completion produced."""
    return [(p.key, p.value) for p in sink.produced if p.topic == SETTINGS.completed_topic]


@pytest.mark.parametrize("redispatched_from", [None, "i0", "i1"])
def test_each_duplicate_of_a_finished_activation_republishes_its_completion_and_never_runs_it(
    redispatched_from,
):
    # Its sender never saw the completion (placement restarted, the broker lost it): answer again.
    aid = "a" * 32
    redis = MemoryRedis()
    executor = FakeExecutor()
    runner, source, sink, agent = make(executor, redis=redis)
    claimed = spy_on_claims(agent)
    source.push(TOPIC, invocation(aid))
    settle(runner, source, 1)
    runner.run_once()
    assert redis.values["gleaner:activation:" + aid] == b"done"
    again = ActivationRequest(aid, "guest", "f", caused_by="d" * 32, redispatched_from=redispatched_from)
    for n in range(2, 5):
        source.push(TOPIC, again.to_bytes())
        settle(runner, source, n)
        assert len(completed(sink)) == n  # one more per duplicate
    original = completed(sink)[0]
    assert completed(sink) == [original] * 4 and original[0] == "d" * 32
    assert executor.runs == [aid] and executor.recovered_from == [] and claimed == [Claim.RUN]
    agent.close()


def test_a_duplicate_of_a_finished_activation_whose_completion_is_not_kept_gets_nothing_and_no_run():
    aid = "a" * 32
    executor = FakeExecutor()
    runner, source, sink, agent = make(executor)
    claimed = spy_on_claims(agent)
    source.push(TOPIC, invocation(aid))
    settle(runner, source, 1)
    runner.run_once()
    agent.recent = RecentCompletions(max_items=0)  # forgotten (evicted, or finished by another run)
    source.push(TOPIC, invocation(aid))
    settle(runner, source, 2)
    assert claimed == [Claim.RUN, Claim.FINISHED] and executor.runs == [aid] and len(completed(sink)) == 1
    agent.close()


def test_a_finished_activation_is_answered_from_memory_even_when_redis_is_down():
    aid = "a" * 32
    redis = MemoryRedis()
    executor = FakeExecutor()
    runner, source, sink, agent = make(executor, redis=redis)
    source.push(TOPIC, invocation(aid))
    settle(runner, source, 1)
    redis.down = 1000  # a claim would say RUN (availability first)
    source.push(TOPIC, invocation(aid))
    settle(runner, source, 2)
    first, again = completed(sink)
    assert executor.runs == [aid] and again == first
    agent.close()


def test_the_completions_kept_are_bounded():
    executor = FakeExecutor()
    runner, source, sink, agent = make(executor)
    agent.recent = RecentCompletions(max_items=2)
    for n in range(3):
        source.push(TOPIC, invocation(str(n) * 32))
        settle(runner, source, n + 1)
    assert len(agent.recent) == 2 and agent.recent.get("0" * 32) is None
    assert agent.recent.get("2" * 32) == completed(sink)[-1]
    agent.close()


def test_an_action_store_that_is_down_is_waited_for_then_the_action_runs_once():
    executor = FakeExecutor([CouchDBError("unreachable"), CouchDBError("unreachable")])
    runner, source, sink, agent = make(executor)
    source.push(TOPIC, invocation("a" * 32))
    settle(runner, source, 1)
    assert executor.runs == ["a" * 32] and len(completions(sink)) == 1
    assert completions(sink)[0]["record"]["response"]["statusCode"] == 0
    agent.close()


def test_an_action_store_down_past_the_limit_fails_with_a_platform_error_record():
    executor = FakeExecutor([CouchDBError("unreachable")] * 100)
    settings = Settings(invoker_id="i0", platform_retry_s=0.3)
    runner, source, sink, agent = make(executor, settings)
    source.push(TOPIC, invocation("a" * 32))
    settle(runner, source, 1)
    (done,) = completions(sink)
    response = done["record"]["response"]
    assert response["statusCode"] == 3 and "unreachable" in response["result"]["error"]
    assert done["caused_by"] == "d" * 32 and executor.runs == []
    agent.close()


def test_an_oom_killed_container_is_not_waited_for_as_a_platform_outage():
    # Only a transient error is run again; a container's failure is the function's outcome.
    executor = FakeExecutor([ContainerError("killed", oom_killed=True)])
    runner, source, sink, agent = make(executor)
    source.push(TOPIC, invocation("a" * 32))
    settle(runner, source, 1)
    (done,) = completions(sink)
    response = done["record"]["response"]
    assert response["statusCode"] == 3 and "ContainerError: killed" in response["result"]["error"]
    assert executor.runs == [] and runner.retries == 0
    agent.close()


def test_a_missing_action_is_dead_lettered_and_still_ends_in_a_record():
    executor = FakeExecutor([ActionMissing("action guest/nope does not exist")])
    runner, source, sink, agent = make(executor)
    source.push(TOPIC, invocation("a" * 32, "nope"))
    settle(runner, source, 1)
    (letter,) = sink.on(SETTINGS.deadletter_topic)
    assert "does not exist" in letter["reason"]
    (done,) = completions(sink)
    assert done["record"]["response"]["statusCode"] == 2
    agent.close()


def test_an_invoker_bug_ends_in_a_platform_error_record():
    runner, source, sink, agent = make(FakeExecutor([RuntimeError("sampler exploded")]))
    source.push(TOPIC, invocation("a" * 32))
    settle(runner, source, 1)
    (done,) = completions(sink)
    response = done["record"]["response"]
    assert response["statusCode"] == 3 and "RuntimeError: sampler exploded" in response["result"]["error"]
    agent.close()


def test_kafka_refusing_the_completion_is_retried_not_lost():
    runner, source, sink, agent = make(FakeExecutor())
    sink.fail_produces = 2
    source.push(TOPIC, invocation("a" * 32))
    settle(runner, source, 1)
    assert len(completions(sink)) == 1
    agent.close()


def test_claims_are_marked_done_once_the_broker_has_their_completions():
    redis = MemoryRedis()
    runner, source, _, agent = make(FakeExecutor(), redis=redis)
    source.push(TOPIC, invocation("a" * 32))
    settle(runner, source, 1)
    runner.run_once()
    assert redis.values["gleaner:activation:" + "a" * 32] == b"done"
    agent.close()


def test_a_malformed_invocation_is_dead_lettered():
    runner, source, sink, agent = make(FakeExecutor())
    source.push(TOPIC, b"[1, 2]")
    settle(runner, source, 1)
    assert len(sink.on(SETTINGS.deadletter_topic)) == 1 and completions(sink) == []
    agent.close()


def test_taking_over_a_crashed_run_uses_the_answer_its_container_kept_instead_of_running_again():
    redis = MemoryRedis()
    ActivationClaims(redis, "i0", "crashed").claim("a" * 32)  # type: ignore[arg-type]
    executor = FakeExecutor()
    executor.kept = True
    runner, source, sink, agent = make(executor, redis=redis)
    source.push(TOPIC, invocation("a" * 32))
    settle(runner, source, 1)
    (done,) = completions(sink)
    assert done["record"]["response"]["result"] == {"kept": True} and executor.runs == []
    assert executor.recovered_from[0].incarnation == "crashed"
    agent.close()


def test_taking_over_with_no_kept_answer_runs_the_activation():
    redis = MemoryRedis()
    ActivationClaims(redis, "i0", "crashed").claim("a" * 32)  # type: ignore[arg-type]
    executor = FakeExecutor()
    runner, source, sink, agent = make(executor, redis=redis)
    source.push(TOPIC, invocation("a" * 32))
    settle(runner, source, 1)
    assert executor.runs == ["a" * 32] and len(completions(sink)) == 1
    agent.close()


def test_the_heartbeat_carries_the_schedulers_queue_and_lent_cores():
    executor = FakeExecutor()
    _, _, sink, agent = make(executor)
    agent._publish_health()
    idle = InvokerHealth.from_dict(sink.on(SETTINGS.health_topic)[-1])
    assert (idle.waiting, idle.cpu_lent, idle.cpu_free, idle.memory_free_mb) == (0, 0.0, 2.0, 4096)
    busy = PermitsView(cpu_free=0.25, memory_free_mb=1024, waiting=3, cpu_lent=0.5)
    executor.permits.view = lambda: busy  # type: ignore[method-assign]
    agent._publish_health("draining")
    beat = InvokerHealth.from_dict(sink.on(SETTINGS.health_topic)[-1])
    assert (beat.cpu_free, beat.memory_free_mb, beat.waiting, beat.cpu_lent) == (0.25, 1024, 3, 0.5)
    assert beat.status == "draining" and beat.cpu_capacity == 2.0
    agent.close()


class GatedExecutor(FakeExecutor):
    """Runs block until ``gate`` opens: an activation that is still running."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.started: list[str] = []

    def execute(self, req: ActivationRequest) -> dict[str, Any]:
        self.started.append(req.activation_id)
        assert self.gate.wait(20.0)
        return super().execute(req)


def spy_on_claims(agent: InvokerAgent) -> list[Claim]:
    """What each claim of ``agent`` answered, in order."""
    answers: list[Claim] = []
    claim = agent.claims.claim

    def spied(activation_id: str, takeover_from: str | None = None) -> Claim:
        answers.append(claim(activation_id, takeover_from))
        return answers[-1]

    agent.claims.claim = spied  # type: ignore[method-assign]
    return answers


@pytest.mark.parametrize("redispatched_from", [None, "i0"])
def test_a_duplicate_of_a_running_activation_publishes_nothing_and_does_not_run_twice(redispatched_from):
    # "i0": placement thought this invoker silent, took its work back and sent it here again.
    aid = "a" * 32
    executor = GatedExecutor()
    runner, source, sink, agent = make(executor)
    claimed = spy_on_claims(agent)
    source.push(TOPIC, invocation(aid))
    deadline = time.monotonic() + 20.0
    while not executor.started and time.monotonic() < deadline:
        runner.run_once()
        time.sleep(0.01)
    assert executor.started == [aid]
    again = ActivationRequest(aid, "guest", "f", caused_by="d" * 32, redispatched_from=redispatched_from)
    source.push(TOPIC, again.to_bytes())
    deadline = time.monotonic() + 5.0
    while (len(claimed) < 2 or agent._in_flight != 1) and time.monotonic() < deadline:
        runner.run_once()  # until the duplicate's worker is through
        time.sleep(0.01)
    try:
        assert claimed == [Claim.RUN, Claim.DUPLICATE]
        assert completions(sink) == [] and executor.recovered_from == [] and executor.started == [aid]
    finally:
        executor.gate.set()
    settle(runner, source, 2)
    assert executor.runs == [aid] and len(completions(sink)) == 1
    agent.close()
