"""The record sink's handler behind the real runner, with in-memory Kafka and CouchDB."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from gleaner.errors import CouchDBError
from gleaner.records import INTERNAL_ERROR
from gleaner.settings import Settings
from streams.events import ActivationRequest
from streams.failures import failed_completion
from streams.kafka.deadletter import DeadLetters
from streams.kafka.runner import ConsumeRunner, RunnerConfig
from streams.kafka.signing import Signer
from streams.kafka.testing import MemorySink, MemorySource
from streams.record_sink import RecordSink, batch_outcome

SETTINGS = Settings()
TOPIC = SETTINGS.completed_topic
TP = (TOPIC, 0)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


class MemoryCouch:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.down = 0  # the next N writes fail
        self.refuse: set[str] = set()
        self.writes = 0

    def bulk_docs(self, db: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.writes += 1
        if self.down:
            self.down -= 1
            raise CouchDBError("connection refused")
        out: list[dict[str, Any]] = []
        for d in docs:
            if d["_id"] in self.refuse:
                out.append({"id": d["_id"], "error": "forbidden", "reason": "no"})
            elif d["_id"] in self.docs:
                out.append({"id": d["_id"], "error": "conflict", "reason": "Document update conflict"})
            else:
                self.docs[d["_id"]] = d
                out.append({"id": d["_id"], "rev": "1-x"})
        return out


def completion(activation_id: str) -> bytes:
    req = ActivationRequest(activation_id, "guest", "f")
    return failed_completion(req, INTERNAL_ERROR, "test").to_bytes()


def make(values: list[bytes]) -> tuple[ConsumeRunner, MemorySource, MemorySink, MemoryCouch, Clock]:
    source, sink, couch, clock = MemorySource(), MemorySink(), MemoryCouch(), Clock()
    for v in values:
        source.push(TOPIC, v)
    handler = RecordSink(couch, window_s=0.02, clock=clock)
    runner = ConsumeRunner(
        "records",
        source,
        sink,
        DeadLetters(SETTINGS, sink),
        handler,
        RunnerConfig(commit_interval_s=0),
        clock,
    )
    return runner, source, sink, couch, clock


def turns(runner: ConsumeRunner, n: int, clock: Clock, step: float = 0.01) -> None:
    for _ in range(n):
        runner.run_once()
        clock.now += step


def test_conflicts_count_as_already_written():
    written, dupes, errors = batch_outcome(
        [
            {"id": "a", "rev": "1-x"},
            {"id": "b", "error": "conflict", "reason": "Document update conflict"},
            {"id": "c", "error": "forbidden", "reason": "no"},
        ]
    )
    assert (written, dupes) == (1, 1) and errors == ["c: forbidden no"]


def test_records_are_written_in_one_batch_then_committed():
    runner, source, _, couch, clock = make([completion("a" * 32), completion("b" * 32)])
    turns(runner, 6, clock)
    assert set(couch.docs) == {"guest/" + "a" * 32, "guest/" + "b" * 32} and couch.writes == 1
    assert source.committed(TP) == 2


def test_a_redelivered_completion_changes_nothing():
    runner, source, _, couch, clock = make([completion("a" * 32), completion("a" * 32)])
    turns(runner, 6, clock)
    assert len(couch.docs) == 1 and source.committed(TP) == 2


def test_couchdb_down_holds_the_batch_uncommitted_and_retries_while_running():
    runner, source, _, couch, clock = make([completion("a" * 32)])
    couch.down = 3
    turns(runner, 10, clock, step=0.1)
    assert couch.docs == {} and source.committed(TP) is None
    turns(runner, 40, clock, step=0.5)
    assert len(couch.docs) == 1 and source.committed(TP) == 1 and couch.writes == 4


def test_a_malformed_completion_and_a_refused_record_are_dead_lettered():
    runner, source, sink, couch, clock = make([b"{not json", completion("c" * 32), completion("d" * 32)])
    couch.refuse = {"guest/" + "c" * 32}
    turns(runner, 8, clock)
    reasons = [letter["reason"] for letter in sink.on(SETTINGS.deadletter_topic)]
    assert len(reasons) == 2 and "not valid JSON" in reasons[0] and "forbidden" in reasons[1]
    assert list(couch.docs) == ["guest/" + "d" * 32] and source.committed(TP) == 3


def test_stopping_writes_the_open_batch_first():
    runner, source, _, couch, _ = make([completion("e" * 32)])
    runner.run_once()  # handled, the batch window still open
    assert couch.docs == {}
    runner.stop()
    runner.run()
    assert len(couch.docs) == 1 and source.committed(TP) == 1 and source.closed


def test_only_an_invokers_signed_completion_becomes_a_record():
    signer = Signer(b"s" * 32)
    source, sink, couch, clock = MemorySource(), MemorySink(), MemoryCouch(), Clock()
    source.push(TOPIC, completion("a" * 32), signer=signer)
    source.push(TOPIC, completion("b" * 32))  # any Kafka client's, unsigned
    source.push(TOPIC, completion("c" * 32), signer=Signer(b"o" * 32))  # signed with a guessed secret
    config = RunnerConfig(commit_interval_s=0, signer=signer)
    runner = ConsumeRunner(
        "records", source, sink, DeadLetters(SETTINGS, sink), RecordSink(couch, 0.02, clock), config, clock
    )
    turns(runner, 10, clock)
    assert list(couch.docs) == [f"guest/{'a' * 32}"]
    reasons = [letter["reason"].split(":")[0] for letter in sink.on(SETTINGS.deadletter_topic)]
    assert reasons == [f"unsigned event on {TOPIC}", f"forged event on {TOPIC}"]


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_written_completion_counts_as_an_activation_by_status_and_origin() -> None:
    labels = {"status": "internal_error", "origin": "direct"}
    before = _sample("gleaner_activations_total", labels)
    durations = _sample("gleaner_activation_duration_seconds_count", {})
    runner, _, _, _, clock = make([completion("m1"), completion("m2")])
    turns(runner, 5, clock)
    assert _sample("gleaner_activations_total", labels) == before + 2
    assert _sample("gleaner_activation_duration_seconds_count", {}) == durations + 2


def test_a_malformed_completion_counts_as_a_dead_letter() -> None:
    before = _sample("gleaner_deadletters_total", {"topic": TOPIC})
    runner, _, _, _, clock = make([b"not json"])
    turns(runner, 3, clock)
    assert _sample("gleaner_deadletters_total", {"topic": TOPIC}) == before + 1
