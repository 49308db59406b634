"""Placement's handler behind the real runner, with in-memory Kafka."""

from __future__ import annotations

import time

import orjson
import pytest
from prometheus_client import REGISTRY

from gleaner.couchdb import ACTIVATIONS
from gleaner.errors import CouchDBError
from gleaner.settings import Settings
from streams.events import ActivationRequest, InvokerHealth
from streams.failures import failed_completion
from streams.kafka.deadletter import DeadLetters
from streams.kafka.runner import ConsumeRunner, Follower, RunnerConfig
from streams.kafka.signing import SIGNATURE_HEADER, Signer, normalize_headers, tenant_headers
from streams.kafka.testing import MemorySink, MemorySource, record
from streams.placement.acks import Unacknowledged
from streams.placement.agent import (
    NO_INVOKER_MSG,
    Acknowledgements,
    InvokerTable,
    PlacementAgent,
    records_found,
)
from streams.placement.journal import MemoryHashes, UnackedJournal, unacked_key
from tests.unit.couch_fake import FakeCouch

SETTINGS = Settings()
TOPIC = SETTINGS.invocations_topic
TP = (TOPIC, 0)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def heartbeat(table: InvokerTable, invoker: str = "i0") -> None:
    table.update(InvokerHealth(invoker, "inc", 0, 2.0, 4096, 2.0, 4096, 0, 0))


def make(wait_s: float = 30.0, unacked: Unacknowledged | None = None):
    source, sink, clock = MemorySource(), MemorySink(), Clock()
    table = InvokerTable(unhealthy_after_s=1e9)
    agent = PlacementAgent(SETTINGS, sink, table, "greedy-jsq", wait_s, clock, unacked=unacked)
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
    heartbeat(table, "i1")
    silence(table, "i0")
    clock.now += 1
    runner.run_once()
    (moved,) = sink.on(SETTINGS.invoker_topic("i1"))
    assert moved["activation_id"] == "b" * 32 and moved["redispatched_from"] == "i0"
    assert agent.redispatched == 1 and len(agent.unacked) == 1  # now owed by i1
    clock.now += 1
    runner.run_once()
    assert len(sink.on(SETTINGS.invoker_topic("i1"))) == 1  # sent once, not on every tick


def silence(table: InvokerTable, invoker: str) -> None:
    table._after = 5.0
    table._invokers[invoker].seen -= 10


def complete(unacked: Unacknowledged, activation_id: str) -> None:
    """The invoker's completion, as placement's completion follower reads it."""
    req = ActivationRequest(activation_id, "guest", "echo")
    event = failed_completion(req, 0, "ok", "i0")  # any signed completion with the id
    source = MemorySource([record(SETTINGS.completed_topic, event.to_bytes(), signer=SIGNER)])
    Follower("acks", source, Acknowledgements(unacked), RunnerConfig(signer=SIGNER)).run_once()
    assert source.pending == 0


def test_completions_acknowledge_the_list_the_agent_was_given_and_the_gauge_returns_to_zero():
    # build() hands the agent an empty list, the one the completion reader acknowledges: it must
    # keep that one (``unacked or Unacknowledged()`` swapped it for its own, never acknowledged).
    shared = Unacknowledged()
    runner, source, _, table, _, agent = make(unacked=shared)
    assert agent.unacked is shared
    heartbeat(table)
    ids = [f"{n:032x}" for n in range(20)]
    for aid in ids:
        source.push(TOPIC, invocation(aid))
        runner.run_once()
    assert len(shared) == 20 and REGISTRY.get_sample_value("gleaner_placement_unacknowledged") == 20
    for aid in ids:
        complete(shared, aid)
    assert len(shared) == 0 and REGISTRY.get_sample_value("gleaner_placement_unacknowledged") == 0


def test_what_completed_while_taken_back_is_not_sent_again():
    runner, source, sink, table, clock, agent = make()
    heartbeat(table, "i0")
    source.push(TOPIC, invocation("a" * 32))
    runner.run_once()
    silence(table, "i0")  # no healthy invoker: it waits, taken back
    clock.now += 1
    runner.run_once()
    assert [r.activation_id for r in agent.unacked.pending()] == ["a" * 32]
    complete(agent.unacked, "a" * 32)  # i0 had finished it after all
    heartbeat(table, "i1")
    clock.now += 1
    runner.run_once()
    assert sink.on(SETTINGS.invoker_topic("i1")) == [] and len(agent.unacked) == 0


def test_a_replayed_invocation_of_a_finished_activation_is_not_sent_again():
    runner, source, sink, table, _, agent = make()
    heartbeat(table)
    source.push(TOPIC, invocation("a" * 32))
    runner.run_once()
    complete(agent.unacked, "a" * 32)
    source.push(TOPIC, invocation("a" * 32))  # redelivered (a rebalance before the commit)
    runner.run_once()
    assert len(sink.on(SETTINGS.invoker_topic("i0"))) == 1 and len(agent.unacked) == 0
    assert source.committed(TP) == 2


def test_a_restarted_placement_sends_again_what_a_silent_invoker_owed_before_the_restart():
    store = MemoryHashes()
    key = unacked_key(SETTINGS)
    runner, source, _, table, _, agent = make(unacked=Unacknowledged(journal=UnackedJournal(store, key)))
    heartbeat(table, "i0")
    for aid in ("a" * 32, "b" * 32):
        source.push(TOPIC, invocation(aid))
        runner.run_once()
    complete(agent.unacked, "a" * 32)
    agent.close()  # the last notes written
    assert set(store.hashes[key]) == {"b" * 32}

    runner, _, sink, table, clock, agent = make(unacked=Unacknowledged(journal=UnackedJournal(store, key)))
    agent.start()
    heartbeat(table, "i0")
    heartbeat(table, "i1")
    silence(table, "i0")
    clock.now += 1
    runner.run_once()
    agent.close()
    (moved,) = sink.on(SETTINGS.invoker_topic("i1"))
    assert moved["activation_id"] == "b" * 32 and moved["redispatched_from"] == "i0"
    assert orjson.loads(store.hashes[key]["b" * 32])["invoker"] == "i1"


def test_what_completed_while_placement_was_down_is_acknowledged_from_its_record():
    store = MemoryHashes()
    key = unacked_key(SETTINGS)
    runner, source, _, table, _, agent = make(unacked=Unacknowledged(journal=UnackedJournal(store, key)))
    heartbeat(table, "i0")
    for aid in ("a" * 32, "b" * 32):
        source.push(TOPIC, invocation(aid))
        runner.run_once()
    agent.close()
    assert set(store.hashes[key]) == {"a" * 32, "b" * 32}

    # Placement was down when "a" completed: its record is there, "b"'s is not.
    couch = FakeCouch()
    couch.store.dbs[SETTINGS.db(ACTIVATIONS)] = {"guest/" + "a" * 32: {"_id": "guest/" + "a" * 32}}

    _, _, _, _, _, agent = make(unacked=Unacknowledged(journal=UnackedJournal(store, key)))
    agent.records_found = lambda owed: records_found(couch, owed)
    agent.start()
    wait = time.monotonic() + 5
    while len(agent.unacked) != 1 and time.monotonic() < wait:
        time.sleep(0.01)
    agent.close()
    (asked,) = couch.store.calls  # both looked up in one request
    assert asked.method == "POST" and sorted(asked.body["keys"]) == ["guest/" + "a" * 32, "guest/" + "b" * 32]
    assert [r.activation_id for r in agent.unacked.owed()] == ["b" * 32]
    assert set(store.hashes[key]) == {"b" * 32}


def test_records_of_owed_activations_are_found_in_one_request_and_none_asked_for_none():
    couch = FakeCouch()
    couch.store.dbs[SETTINGS.db(ACTIVATIONS)] = {"guest/a": {"_id": "guest/a"}, "other/c": {"_id": "other/c"}}
    assert records_found(couch, [("guest", "a"), ("guest", "b"), ("guest", "c")]) == {"a"}
    assert len(couch.store.calls) == 1
    assert records_found(couch, []) == set() and len(couch.store.calls) == 1


def test_couchdb_away_leaves_the_owed_activations_owed():
    store = MemoryHashes()
    runner, source, _, table, _, agent = make(unacked=Unacknowledged(journal=UnackedJournal(store, "k")))
    heartbeat(table, "i0")
    source.push(TOPIC, invocation("a" * 32))
    runner.run_once()
    asked: list[list[tuple[str, str]]] = []

    def away(owed: list[tuple[str, str]]) -> set[str]:
        asked.append(owed)
        raise CouchDBError("CouchDB at http://127.0.0.1:5984 unreachable")

    agent.records_found = away
    agent._settle_recorded(0.0)
    assert asked == [[("guest", "a" * 32)]] and [r.activation_id for r in agent.unacked.owed()] == ["a" * 32]


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


def test_the_healthy_invokers_gauge_follows_the_heartbeats():
    from gleaner.metrics import PLACEMENT_INVOKERS_HEALTHY

    runner, _, _, table, clock, _ = make()
    clock.now += 1
    runner.run_once()
    assert PLACEMENT_INVOKERS_HEALTHY._value.get() == 0
    heartbeat(table, "i0")
    heartbeat(table, "i1")
    clock.now += 1
    runner.run_once()
    assert PLACEMENT_INVOKERS_HEALTHY._value.get() == 2
