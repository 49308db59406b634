"""The composition stream's handler behind the real runner, with in-memory
Kafka, Redis and CouchDB."""

from __future__ import annotations

import dataclasses
from typing import Any

from gleaner.couchdb import DAGS
from gleaner.settings import Settings
from streams.composition.agent import CompositionAgent
from streams.events import ActivationCompleted, DagPlan, DagRequest
from streams.kafka.deadletter import DeadLetters
from streams.kafka.runner import ConsumeRunner, RunnerConfig
from streams.kafka.testing import MemorySink, MemorySource
from tests.unit.fakes import MemoryCouch, MemoryRedis

SETTINGS = Settings()
PLANS, DONE = SETTINGS.dag_plans_topic, SETTINGS.completed_topic
REQUEST = "e" * 32
SEQUENCE = {
    "type": "sequence",
    "components": [{"type": "action", "name": "a"}, {"type": "action", "name": "b"}],
}


def make() -> tuple[ConsumeRunner, MemorySource, MemorySink, MemoryRedis, MemoryCouch]:
    source, sink, redis, couch = MemorySource(), MemorySink(), MemoryRedis(), MemoryCouch()
    couch.put(DAGS, {"_id": "guest/seq", "composition": SEQUENCE, "version": "0.0.1"})
    agent = CompositionAgent(SETTINGS.composition, sink, redis, couch, partitions=1)  # type: ignore[arg-type]
    config = RunnerConfig(commit_interval_s=0, backoff_initial_s=0, backoff_max_s=0)
    runner = ConsumeRunner("composition", source, sink, DeadLetters(SETTINGS.kafka, sink), agent, config)
    return runner, source, sink, redis, couch


def plan(dag: str = "seq", request_id: str = REQUEST) -> bytes:
    req = DagRequest(request_id, "guest", dag, {"x": 1})
    return DagPlan(request=req.to_dict(), harvest=False).to_bytes()


def completed(activation_id: str, result: dict[str, Any], code: int = 0) -> bytes:
    record = {
        "activationId": activation_id,
        "namespace": "guest",
        "response": {"statusCode": code, "success": code == 0, "result": result},
    }
    return ActivationCompleted(activation_id, "guest", "f", "i0", record, caused_by=REQUEST).to_bytes()


def turns(runner: ConsumeRunner, n: int = 3) -> None:
    for _ in range(n):
        runner.run_once()


def test_a_sequence_runs_stage_by_stage_to_one_result():
    runner, source, sink, _, _ = make()
    source.push(PLANS, plan())
    turns(runner)
    (first,) = sink.on(SETTINGS.invocations_topic)
    assert first["action"] == "a" and first["params"] == {"x": 1} and first["caused_by"] == REQUEST
    source.push(DONE, completed(first["activation_id"], {"y": 2}))
    turns(runner)
    second = sink.on(SETTINGS.invocations_topic)[1]
    assert second["action"] == "b" and second["params"] == {"y": 2}
    source.push(DONE, completed(second["activation_id"], {"z": 3}))
    turns(runner)
    (result,) = sink.on(SETTINGS.dag_results_topic)
    assert result["success"] and result["result"] == {"z": 3}
    (record,) = [c for c in sink.on(DONE) if c["activation_id"] == REQUEST]
    assert record["record"]["response"]["statusCode"] == 0
    assert source.committed((PLANS, 0)) == 1 and source.committed((DONE, 0)) == 2


def test_a_duplicate_plan_changes_nothing_but_sends_what_is_in_flight_again():
    """The outbox sends a request again after the broker lost its events: the invocation in
    flight goes out again with the same id (the invoker runs an id once), nothing new starts."""
    runner, source, sink, redis, _ = make()
    source.push(PLANS, plan())
    turns(runner)
    saved = dict(redis.values)
    source.push(PLANS, plan())
    turns(runner)
    first, again = sink.on(SETTINGS.invocations_topic)
    assert again["activation_id"] == first["activation_id"] and again["params"] == first["params"]
    assert again["action"] == "a" and again["stage"] == first["stage"]
    source.push(DONE, completed(first["activation_id"], {"y": 2}))
    source.push(DONE, completed(first["activation_id"], {"y": 2}))  # both copies answered
    turns(runner)
    assert [e["action"] for e in sink.on(SETTINGS.invocations_topic)] == ["a", "a", "b"]
    assert saved.keys() <= redis.values.keys()


def test_a_finished_request_that_comes_again_publishes_its_end_again():
    runner, source, sink, _, _ = make()
    source.push(PLANS, plan())
    turns(runner)
    a = sink.on(SETTINGS.invocations_topic)[0]
    source.push(DONE, completed(a["activation_id"], {"y": 2}))
    turns(runner)
    b = sink.on(SETTINGS.invocations_topic)[1]
    source.push(DONE, completed(b["activation_id"], {"z": 3}))
    turns(runner)
    source.push(PLANS, plan())
    turns(runner)
    first, again = sink.on(SETTINGS.dag_results_topic)
    assert again == first and again["result"] == {"z": 3}
    assert len(sink.on(SETTINGS.invocations_topic)) == 2  # nothing ran again


def test_redis_down_is_retried_and_the_stream_stays_up_with_the_same_ids():
    runner, source, sink, redis, _ = make()
    redis.down = 3
    source.push(PLANS, plan())
    source.push(PLANS, plan("seq", "5" * 32))
    turns(runner, 2)
    assert source.committed((PLANS, 0)) is None and runner.retries >= 1 and not runner.stopping
    turns(runner, 10)
    invoked = sink.on(SETTINGS.invocations_topic)
    ids = {(e["caused_by"], e["activation_id"]) for e in invoked}
    assert {c for c, _ in ids} == {REQUEST, "5" * 32} and len(ids) == 2  # a replay re-derives the same id
    assert source.committed((PLANS, 0)) == 2


def test_a_missing_dag_fails_its_request_and_is_dead_lettered():
    runner, source, sink, _, _ = make()
    source.push(PLANS, plan("nope"))
    turns(runner)
    (result,) = sink.on(SETTINGS.dag_results_topic)
    assert not result["success"] and "does not exist" in result["result"]["error"]
    (letter,) = sink.on(SETTINGS.deadletter_topic)
    assert "guest/nope does not exist" in letter["reason"] and source.committed((PLANS, 0)) == 1


def test_a_completion_for_an_unknown_request_is_ignored_and_committed():
    runner, source, sink, _, _ = make()
    source.push(DONE, completed("f" * 32, {}))
    turns(runner)
    assert sink.produced == [] and source.committed((DONE, 0)) == 1


def test_a_failed_function_fails_the_request_with_its_status():
    runner, source, sink, _, _ = make()
    source.push(PLANS, plan())
    turns(runner)
    (first,) = sink.on(SETTINGS.invocations_topic)
    source.push(DONE, completed(first["activation_id"], {"error": "boom"}, code=2))
    turns(runner)
    (result,) = sink.on(SETTINGS.dag_results_topic)
    assert not result["success"]
    (record,) = [c for c in sink.on(DONE) if c["activation_id"] == REQUEST]
    assert record["record"]["response"]["statusCode"] == 2


def dag_input_size(sink: MemorySink) -> int:
    """The input size the DAG-level record shows."""
    (record,) = [c for c in sink.on(DONE) if c["activation_id"] == REQUEST]
    size: int = record["record"]["gleaner"]["dag"]["input_size"]
    return size


def run_to_the_end(runner: ConsumeRunner, source: MemorySource, sink: MemorySink, plan_bytes: bytes) -> None:
    source.push(PLANS, plan_bytes)
    turns(runner)
    for n in range(2):
        source.push(DONE, completed(sink.on(SETTINGS.invocations_topic)[n]["activation_id"], {}))
        turns(runner)


def test_the_input_size_carried_on_the_request_is_the_one_the_record_shows():
    """Measured where the request entered (the gateway, or the predictor): not again here."""
    runner, source, sink, _, _ = make()
    req = DagRequest(REQUEST, "guest", "seq", {"x": 1}, input_size=4321)  # {"x":1} is 7 bytes
    run_to_the_end(runner, source, sink, DagPlan(request=req.to_dict(), harvest=False).to_bytes())
    assert dag_input_size(sink) == 4321


def test_a_kafka_request_nobody_measured_yet_is_measured_here():
    runner, source, sink, _, _ = make()
    run_to_the_end(runner, source, sink, plan())  # the request carries no input_size
    assert dag_input_size(sink) == len(b'{"x":1}')


def test_a_missing_dag_records_the_carried_input_size_too():
    runner, source, sink, _, _ = make()
    req = DagRequest(REQUEST, "guest", "nope", {"x": 1}, input_size=99)
    source.push(PLANS, DagPlan(request=req.to_dict(), harvest=False).to_bytes())
    turns(runner)
    assert dag_input_size(sink) == 99 and sink.on(SETTINGS.deadletter_topic)


def test_a_dag_version_seen_once_runs_for_the_requests_that_carry_it_without_reading_it_again():
    source, sink, redis, couch = MemorySource(), MemorySink(), MemoryRedis(), MemoryCouch()
    couch.put(DAGS, {"_id": "guest/seq", "composition": SEQUENCE, "version": "0.0.1"})  # rev 1-a
    reads: list[str] = []
    real = couch.get_doc
    couch.get_doc = lambda db, doc_id: reads.append(doc_id) or real(db, doc_id)  # type: ignore[method-assign]
    settings = dataclasses.replace(SETTINGS, action_cache_ttl_s=0.0)  # every read shows
    agent = CompositionAgent(settings, sink, redis, couch, partitions=1)  # type: ignore[arg-type]
    config = RunnerConfig(commit_interval_s=0, backoff_initial_s=0, backoff_max_s=0)
    runner = ConsumeRunner("composition", source, sink, DeadLetters(settings, sink), agent, config)
    for n, rev in enumerate(("1-a", "1-a")):
        req = DagRequest(f"{n}" * 32, "guest", "seq", {"x": 1}, dag_rev=rev)
        source.push(PLANS, DagPlan(request=req.to_dict(), harvest=False).to_bytes())
        turns(runner)
    assert reads == ["guest/seq"]  # the second request's version was known
    single = {"type": "action", "name": "z"}
    couch.put(DAGS, {"_id": "guest/seq", "_rev": "2-b", "composition": single, "version": "0.0.2"})
    source.push(
        PLANS,
        DagPlan(
            request=DagRequest("2" * 32, "guest", "seq", {}, dag_rev="1-a").to_dict(), harvest=False
        ).to_bytes(),
    )
    source.push(
        PLANS, DagPlan(request=DagRequest("3" * 32, "guest", "seq", {}).to_dict(), harvest=False).to_bytes()
    )
    turns(runner)
    actions = [i["action"] for i in sink.on(SETTINGS.invocations_topic)]
    assert actions == ["a", "a", "a", "z"]  # accepted at 1-a: runs 1-a; nothing carried: the current one
    assert reads == ["guest/seq", "guest/seq"]
