"""Placement's handler behind the real runner, with in-memory Kafka."""

from __future__ import annotations

import orjson
import pytest

from gleaner.kafka_auth import tenant_headers
from gleaner.settings import Settings
from streams.events import ActivationRequest, InvokerHealth
from streams.kafka.deadletter import DeadLetters
from streams.kafka.runner import ConsumeRunner, RunnerConfig
from streams.kafka.signing import SIGNATURE_HEADER, Signer, normalize_headers
from streams.kafka.testing import MemorySink, MemorySource
from streams.placement.agent import NO_INVOKER_MSG, InvokerTable, PlacementAgent

SETTINGS = Settings()
TOPIC = SETTINGS.invocations_topic
TP = (TOPIC, 0)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def heartbeat(table: InvokerTable, invoker: str = "i0") -> None:
    table.update(InvokerHealth(invoker, "inc", 0, 2.0, 4096, 2.0, 4096, 0, 0))


def make(wait_s: float = 30.0):
    source, sink, clock = MemorySource(), MemorySink(), Clock()
    table = InvokerTable(unhealthy_after_s=1e9)
    agent = PlacementAgent(SETTINGS, sink, table, "greedy-jsq", wait_s, clock)
    runner = ConsumeRunner(
        "placement",
        source,
        sink,
        DeadLetters(SETTINGS, sink),
        agent,
        RunnerConfig(commit_interval_s=0),
        clock,
    )
    return runner, source, sink, table, clock, agent


def invocation(activation_id: str, caused_by: str | None = None) -> bytes:
    return ActivationRequest(activation_id, "guest", "echo", caused_by=caused_by).to_bytes()


def test_a_request_goes_to_a_healthy_invokers_topic_then_is_committed():
    runner, source, sink, table, _, _ = make()
    heartbeat(table)
    source.push(TOPIC, invocation("a" * 32))
    runner.run_once()
    (sent,) = sink.on(SETTINGS.invoker_topic("i0"))
    assert sent["activation_id"] == "a" * 32 and source.committed(TP) == 1


def test_with_no_invoker_requests_wait_uncommitted_until_a_heartbeat_in_order():
    runner, source, sink, table, clock, agent = make()
    source.push(TOPIC, invocation("a" * 32))
    source.push(TOPIC, invocation("b" * 32))
    for _ in range(3):
        runner.run_once()
    assert agent.waiting == 2 and source.committed(TP) is None
    heartbeat(table)
    clock.now += 1
    runner.run_once()
    sent = [e["activation_id"] for e in sink.on(SETTINGS.invoker_topic("i0"))]
    assert sent == ["a" * 32, "b" * 32] and source.committed(TP) == 2


def test_past_the_wait_a_request_fails_with_one_record_that_names_its_dag():
    runner, source, sink, _, clock, _ = make(wait_s=5)
    source.push(TOPIC, invocation("a" * 32, caused_by="d" * 32))
    runner.run_once()
    clock.now = 6
    runner.run_once()
    (done,) = sink.on(SETTINGS.completed_topic)
    assert done["caused_by"] == "d" * 32 and done["record"]["response"]["statusCode"] == 3
    assert done["record"]["response"]["result"]["error"] == NO_INVOKER_MSG
    assert sink.produced[-1].key == "d" * 32 and source.committed(TP) == 1


def test_a_malformed_invocation_is_dead_lettered_and_the_next_one_runs():
    runner, source, sink, table, _, _ = make()
    heartbeat(table)
    source.push(TOPIC, b'{"type": "activation.request"}')
    source.push(TOPIC, invocation("a" * 32))
    runner.run_once()
    runner.run_once()
    (letter,) = sink.on(SETTINGS.deadletter_topic)
    assert "namespace" in letter["reason"] or "action" in letter["reason"]
    assert len(sink.on(SETTINGS.invoker_topic("i0"))) == 1 and source.committed(TP) == 2


def test_a_revoked_partition_drops_its_waiting_requests():
    runner, source, _, _, _, agent = make()
    source.push(TOPIC, invocation("a" * 32))
    runner.run_once()
    source.rebalance(revoked=[TP])
    assert agent.waiting == 0 and source.committed(TP) is None


def test_a_silent_invokers_unanswered_work_goes_to_a_healthy_one_marked_as_taken_back():
    runner, source, sink, table, clock, agent = make()
    heartbeat(table, "i0")
    source.push(TOPIC, invocation("a" * 32))
    source.push(TOPIC, invocation("b" * 32))
    runner.run_once()
    runner.run_once()
    assert [e["activation_id"] for e in sink.on(SETTINGS.invoker_topic("i0"))] == ["a" * 32, "b" * 32]
    agent.unacked.acked("a" * 32)  # i0 finished a, then went silent
    table._after = 5.0
    heartbeat(table, "i1")
    table._invokers["i0"].seen -= 10
    clock.now += 1
    runner.run_once()
    (moved,) = sink.on(SETTINGS.invoker_topic("i1"))
    assert moved["activation_id"] == "b" * 32 and moved["redispatched_from"] == "i0"
    assert agent.redispatched == 1 and len(agent.unacked) == 1  # now owed by i1
    clock.now += 1
    runner.run_once()
    assert len(sink.on(SETTINGS.invoker_topic("i1"))) == 1  # sent once, not on every tick


# --- tenants' own Kafka events --------------------------------------------------------------------

SIGNER = Signer(b"s" * 32)
KEYS = {"u:guest-key": "guest", "u:other-key": "other"}


def make_gated():
    source, sink, clock = MemorySource(), MemorySink(), Clock()
    table = InvokerTable(unhealthy_after_s=1e9)
    heartbeat(table)
    agent = PlacementAgent(
        SETTINGS, sink, table, "greedy-jsq", 30.0, clock, signer=SIGNER, authenticate=KEYS.get
    )
    config = RunnerConfig(commit_interval_s=0, signer=SIGNER, tenant_entry=True)
    runner = ConsumeRunner("placement", source, sink, DeadLetters(SETTINGS, sink), agent, config, clock)
    return runner, source, sink


def test_a_tenants_keyed_event_runs_without_the_fields_only_the_platform_sets():
    runner, source, sink = make_gated()
    planned = {"cpu": 4.0, "memory": 8192, "source": "gleaner"}
    raw = orjson.loads(invocation("a" * 32, caused_by="b" * 32))
    raw.update(allocation=planned, redispatched_from="i9")
    source.push(TOPIC, raw, headers=normalize_headers(tenant_headers("u:guest-key")))
    runner.run_once()
    (sent,) = sink.on(SETTINGS.invoker_topic("i0"))
    assert sent["namespace"] == "guest" and sent["activation_id"] == "a" * 32
    assert (sent["allocation"], sent["redispatched_from"], sent["caused_by"]) == (None, None, None)


def test_the_platforms_signed_event_keeps_its_fields():
    runner, source, sink = make_gated()
    source.push(TOPIC, invocation("a" * 32, caused_by="b" * 32), signer=SIGNER)
    runner.run_once()
    assert sink.on(SETTINGS.invoker_topic("i0"))[0]["caused_by"] == "b" * 32


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ((), "namespace guest not proven: no credential"),
        (
            normalize_headers(tenant_headers("u:other-key")),
            "the credential does not belong to namespace guest",
        ),
        (normalize_headers(tenant_headers("u:revoked")), "the credential is not a valid key"),
        (((SIGNATURE_HEADER, b"0" * 64),), "forged event on"),
    ],
)
def test_an_event_that_cannot_prove_its_namespace_is_dead_lettered_and_never_dispatched(headers, why):
    runner, source, sink = make_gated()
    source.push(TOPIC, invocation("a" * 32), headers=headers)
    runner.run_once()
    assert sink.on(SETTINGS.invoker_topic("i0")) == []
    (letter,) = sink.on(SETTINGS.deadletter_topic)
    assert why in letter["reason"] and source.committed(TP) == 1
