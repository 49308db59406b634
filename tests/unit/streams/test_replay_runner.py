"""The open-loop Replayer against an in-memory platform: a fake producer that answers
``dag.request`` events (at once, later or never) with the events the real composition
stream and invokers produce, and fake listeners that receive every event produced."""

from __future__ import annotations

import math
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.events import ActivationCompleted, DagRequest, DagResult
from streams.payloads import size_of
from streams.replay import runner as runner_module
from streams.replay.outcomes import FAILED, SUCCESS, TIMEOUT, UNFINISHED, RequestOutcome
from streams.replay.runner import Replayer, ReplayRun, Topics
from streams.replay.trace import TraceEntry

TOPICS = Topics(requests="dag.requests", results="dag.results", completed="activations.completed")
NAMESPACE = "guest"
DAG = "demo"
DEADLINE_S = 0.75  # for runs where a request never finishes (short, with room for a loaded machine)

# One child per function of the parallel stage: (waitTime ms, cold, cpu, origin); listed in
# reverse below, so that the outcome's order comes from (stage, index), not arrival.
CHILDREN = [(10, True, 0.5, "user"), (30, False, 1.5, "harvest"), (20, True, 2.0, "harvest")]
STAGES = [
    {"index": 0, "kind": "action", "start": 1_000, "end": 1_100},
    {"index": 1, "kind": "parallel", "start": 1_100, "end": 1_350},
]


@dataclass(slots=True)
class Msg:
    topic: str
    value: bytes | None


@dataclass(slots=True)
class Reply:
    """How the fake platform answers one request."""

    status: str = "success"  # success | failed | timeout
    delay_s: float = 0.0
    never: bool = False
    result: dict[str, Any] = field(default_factory=lambda: {"answer": 42})
    send_result: bool = True  # the dag.result event
    drop_children: int = 0  # leave out the last n functions' records
    duplicate: bool = False  # deliver every event twice (at-least-once)
    noise: bool = False  # first, another replay's events and undecodable messages


def child_record(rid: str, aid: str, i: int) -> dict[str, Any]:
    wait, cold, cpu, origin = CHILDREN[i]
    return {
        "activationId": aid,
        "namespace": NAMESPACE,
        "name": f"work{i}",
        "duration": 100 + i,
        "statusCode": 0,
        "response": {"status": "success", "statusCode": 0, "success": True, "result": {}},
        "annotations": [
            {"key": "path", "value": f"{NAMESPACE}/work{i}"},
            {"key": "waitTime", "value": wait},
            {"key": "causedBy", "value": rid},
        ],
        "gleaner": {
            "allocation": {"cpu": cpu, "memory": 256},
            "user_allocation": {"cpu": 1.0, "memory": 256},
            "origin": origin,
            "stage": 1,
            "index": i,
            "cold": cold,
            "measured": {"peak_cpu": cpu * 0.9, "peak_memory": 100 + i},
        },
    }


def dag_record(rid: str, child_ids: list[str], reply: Reply, applied: bool) -> dict[str, Any]:
    code = 0 if reply.status == "success" else 2
    result = reply.result if reply.status == "success" else {"error": "boom"}
    if reply.status == "timeout":
        result = {}
    return {
        "activationId": rid,
        "namespace": NAMESPACE,
        "name": DAG,
        "duration": 400,
        "statusCode": code,
        "response": {"status": "x", "statusCode": code, "success": code == 0, "result": result},
        "logs": child_ids,
        "annotations": [{"key": "conductor", "value": True}],
        "gleaner": {
            "dag": {"name": DAG, "input_size": 10, "status": reply.status, "stages": STAGES},
            "harvest": {"applied": applied},
        },
    }


class FakeListener:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.queue: queue.Queue[Msg] = queue.Queue()
        self.closed = False

    def poll(self, timeout_s: float) -> Msg | None:
        try:
            return self.queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.closed = True
        self.platform.unsubscribe(self)


class Platform:
    """Answers each request as ``answer(request)`` says; broadcasts to every open listener."""

    def __init__(self, answer: Callable[[DagRequest], Reply] = lambda _req: Reply()) -> None:
        self.answer = answer
        self.listeners: list[FakeListener] = []
        self.opened: list[FakeListener] = []
        self.timers: list[threading.Timer] = []
        self.lock = threading.Lock()

    def listen(self) -> FakeListener:
        listener = FakeListener(self)
        with self.lock:
            self.listeners.append(listener)
            self.opened.append(listener)
        return listener

    def unsubscribe(self, listener: FakeListener) -> None:
        with self.lock:
            if listener in self.listeners:
                self.listeners.remove(listener)

    def broadcast(self, msgs: list[Msg]) -> None:
        with self.lock:
            for listener in self.listeners:
                for m in msgs:
                    listener.queue.put(m)

    def receive(self, req: DagRequest) -> None:
        reply = self.answer(req)
        if reply.never:
            return
        msgs = self.events(req, reply)
        if reply.delay_s > 0:
            timer = threading.Timer(reply.delay_s, self.broadcast, args=(msgs,))
            timer.daemon = True
            self.timers.append(timer)
            timer.start()
        else:
            self.broadcast(msgs)

    def events(self, req: DagRequest, reply: Reply) -> list[Msg]:
        rid = req.request_id
        msgs: list[Msg] = []
        if reply.noise:
            other = Reply(status="failed")
            foreign = DagRequest(uuid.uuid4().hex, NAMESPACE, DAG, policy=req.policy)
            msgs += [Msg(TOPICS.completed, b"not json"), Msg(TOPICS.results, None)]
            msgs += self.events(foreign, other)
        child_ids = [uuid.uuid4().hex for _ in CHILDREN]
        delivered = child_ids[: len(child_ids) - reply.drop_children]
        for i in reversed(range(len(delivered))):
            ev = ActivationCompleted(
                child_ids[i], NAMESPACE, f"work{i}", "invoker0", child_record(rid, child_ids[i], i), rid
            )
            msgs.append(Msg(TOPICS.completed, ev.to_bytes()))
        record = dag_record(rid, child_ids, reply, applied=req.policy == "thesis")
        msgs.append(Msg(TOPICS.completed, ActivationCompleted(rid, NAMESPACE, DAG, "", record).to_bytes()))
        if reply.send_result:
            result = reply.result if reply.status == "success" else {"error": "boom"}
            done = DagResult(rid, NAMESPACE, DAG, reply.status == "success", result, 400)
            msgs.append(Msg(TOPICS.results, done.to_bytes()))
        return [m for m in msgs for _ in range(2 if reply.duplicate else 1)]

    def cancel(self) -> None:
        for t in self.timers:
            t.cancel()


class FakeProducer:
    def __init__(self, platform: Platform, fail: Callable[[DagRequest], bool] = lambda _r: False) -> None:
        self.platform = platform
        self.fail = fail
        self.calls: list[tuple[str, bytes, str | bytes | None]] = []
        self.flushes = 0

    def produce(self, topic: str, value: bytes, key: str | bytes | None = None) -> None:
        req = DagRequest.from_dict(orjson.loads(value))  # what the planner would read
        if self.fail(req):
            raise RuntimeError("broker down")
        self.calls.append((topic, value, key))
        if topic == TOPICS.requests:
            self.platform.receive(req)

    def flush(self, timeout_s: float = 10.0) -> None:
        self.flushes += 1

    @property
    def requests(self) -> list[DagRequest]:
        return [DagRequest.from_dict(orjson.loads(v)) for t, v, _ in self.calls if t == TOPICS.requests]


@pytest.fixture
def platforms() -> Iterator[list[Platform]]:
    made: list[Platform] = []
    yield made
    for p in made:
        p.cancel()


@pytest.fixture
def make(platforms: list[Platform]) -> Callable[..., tuple[Replayer, Platform, FakeProducer]]:
    def build(
        answer: Callable[[DagRequest], Reply] = lambda _req: Reply(),
        fail: Callable[[DagRequest], bool] = lambda _r: False,
        offload: Callable[[dict[str, Any], str], dict[str, Any]] | None = None,
    ) -> tuple[Replayer, Platform, FakeProducer]:
        platform = Platform(answer)
        platforms.append(platform)
        producer = FakeProducer(platform, fail)
        return Replayer(producer, platform.listen, TOPICS, NAMESPACE, offload=offload), platform, producer

    return build


def entry(offset_s: float, n: int, policy: str | None = None) -> TraceEntry:
    return TraceEntry(offset_s=offset_s, dag=DAG, input={"n": n}, policy=policy)


def by_n(run: ReplayRun, producer: FakeProducer) -> dict[int, RequestOutcome]:
    """Outcomes keyed by their input's ``n`` (the trace entry they came from)."""
    sent = {r.request_id: r.input["n"] for r in producer.requests}
    return {sent[o.request_id]: o for o in run.outcomes if o.request_id in sent}


def replay(replayer: Replayer, entries: list[TraceEntry], **kw: Any) -> ReplayRun:
    kw.setdefault("policy", "thesis")
    kw.setdefault("progress", False)
    kw.setdefault("deadline_s", 10.0)
    return replayer.run(entries, **kw)


# --- open loop ---------------------------------------------------------------------------------


def test_open_loop_sends_every_arrival_even_when_the_first_never_answers(make):
    replayer, _, producer = make(lambda req: Reply(never=req.input["n"] == 0))
    started = time.monotonic()
    run = replay(replayer, [entry(0.0, 0), entry(0.05, 1), entry(0.1, 2)], speed=10, deadline_s=DEADLINE_S)
    took = time.monotonic() - started

    assert [r.input["n"] for r in producer.requests] == [0, 1, 2]
    outcomes = by_n(run, producer)
    assert [outcomes[n].scheduled_s for n in range(3)] == [0.0, 0.005, 0.01]  # offsets / speed
    assert outcomes[0].status == UNFINISHED and not outcomes[0].finished
    assert outcomes[1].status == SUCCESS and outcomes[2].status == SUCCESS
    assert run.unfinished == [outcomes[0]]
    assert took >= 0.01 + DEADLINE_S  # it waited the deadline out after the last arrival, then returned


def test_sends_follow_the_schedule_not_the_trace_order(make):
    replayer, _, producer = make()
    run = replay(replayer, [entry(0.1, 0), entry(0.0, 1), entry(0.05, 2)], speed=10)

    assert [r.input["n"] for r in producer.requests] == [1, 2, 0]
    assert [o.seq for o in run.outcomes] == [1, 2, 0]  # seq stays the position in the trace
    sent = [o.sent_s for o in run.outcomes]
    assert sent == sorted(sent)
    assert all(o.sent_s >= o.scheduled_s - 1e-3 for o in run.outcomes)
    assert all(o.status == SUCCESS for o in run.outcomes)
    assert producer.flushes >= 1


def test_a_slow_answer_does_not_hold_back_later_arrivals(make):
    replayer, _, producer = make(lambda req: Reply(delay_s=0.5 if req.input["n"] == 0 else 0.0))
    run = replay(replayer, [entry(0.0, 0), entry(0.05, 1), entry(0.1, 2)], speed=10)

    outcomes = by_n(run, producer)
    assert all(o.status == SUCCESS for o in outcomes.values())
    first_answered_s = outcomes[0].sent_s + outcomes[0].latency_ms / 1000
    assert max(o.sent_s for o in outcomes.values()) < first_answered_s


# --- what each request came to -----------------------------------------------------------------


def test_a_successful_request_is_settled_from_its_records(make):
    replayer, platform, producer = make()
    run = replay(replayer, [entry(0.0, 0)])

    assert run.policy == "thesis"
    assert len(run.outcomes) == 1 and run.failed == [] and run.unfinished == []
    o = run.outcomes[0]
    assert o.status == SUCCESS and o.status_code == 0 and o.error == ""
    assert o.request_id == producer.requests[0].request_id
    assert (o.dag, o.policy, o.input, o.input_size) == (DAG, "thesis", "inline", size_of({"n": 0}))
    assert o.latency_ms >= 0 and math.isfinite(o.latency_ms)
    assert o.dag_duration_ms == 400
    assert o.parallel_stage_ms == 250  # the parallel stage's end - start; the action stage is not counted
    assert (o.wait_ms_total, o.wait_ms_max) == (60, 30)
    assert o.cold_starts == 2
    assert o.harvest_applied is True
    assert o.allocations == "work0=0.5/256/user;work1=1.5/256/harvest;work2=2/256/harvest"
    assert [(f.action, f.index, f.cold, f.peak_memory_mb) for f in o.functions] == [
        ("work0", 0, True, 100),
        ("work1", 1, False, 101),
        ("work2", 2, True, 102),
    ]
    assert all(f.request_id == o.request_id for f in o.functions)
    assert run.results == {}  # only kept when asked
    assert platform.opened[0].closed


def test_a_failed_request_carries_its_error(make):
    replayer, _, _ = make(lambda _req: Reply(status="failed"))
    run = replay(replayer, [entry(0.0, 0)])

    o = run.outcomes[0]
    assert o.status == FAILED and o.finished and not o.succeeded
    assert o.status_code == 2
    assert o.error == "boom"
    assert run.failed == [o] and run.unfinished == []


def test_a_timed_out_dag_is_reported_as_timeout(make):
    replayer, _, _ = make(lambda _req: Reply(status="timeout"))
    run = replay(replayer, [entry(0.0, 0)])

    o = run.outcomes[0]
    assert o.status == TIMEOUT
    assert o.error == "timeout"
    assert run.failed == [o]


def test_a_request_never_answered_is_unfinished_and_the_run_still_returns(make):
    replayer, _, _ = make(lambda _req: Reply(never=True))
    started = time.monotonic()
    run = replay(replayer, [entry(0.0, 0)], deadline_s=DEADLINE_S)
    took = time.monotonic() - started

    o = run.outcomes[0]
    assert o.status == UNFINISHED and not o.finished
    assert math.isnan(o.latency_ms) and o.functions == []
    assert run.unfinished == [o] and run.failed == []
    assert not math.isnan(o.sent_s)  # it was sent; nothing came back
    assert took >= DEADLINE_S  # given its whole deadline (a run that never returned: pytest-timeout)


def test_without_a_dag_result_the_record_decides_after_the_grace_period(make, monkeypatch):
    monkeypatch.setattr(runner_module, "CHILD_GRACE_S", 0.2)
    replayer, _, _ = make(lambda _req: Reply(send_result=False))
    run = replay(replayer, [entry(0.0, 0)])

    o = run.outcomes[0]
    assert o.status == SUCCESS  # statusCode 0, no dag.result to say otherwise
    assert o.latency_ms >= 0  # measured to the DAG record instead
    assert len(o.functions) == 3


def test_a_missing_function_record_does_not_hold_the_request_forever(make, monkeypatch):
    monkeypatch.setattr(runner_module, "CHILD_GRACE_S", 0.2)
    replayer, _, _ = make(lambda _req: Reply(drop_children=1))
    run = replay(replayer, [entry(0.0, 0)])

    o = run.outcomes[0]
    assert o.status == SUCCESS
    assert [f.action for f in o.functions] == ["work0", "work1"]
    assert o.cold_starts == 1 and o.wait_ms_total == 40


def test_duplicated_events_are_counted_once(make):
    replayer, _, _ = make(lambda _req: Reply(duplicate=True))
    run = replay(replayer, [entry(0.0, 0)])

    o = run.outcomes[0]
    assert o.status == SUCCESS
    assert len(o.functions) == 3 and o.cold_starts == 2 and o.wait_ms_total == 60


def test_another_replays_events_and_undecodable_messages_are_ignored(make):
    replayer, _, _ = make(lambda _req: Reply(noise=True))
    run = replay(replayer, [entry(0.0, 0), entry(0.0, 1)], keep_results=True)

    assert [o.status for o in run.outcomes] == [SUCCESS, SUCCESS]
    assert all(len(o.functions) == 3 for o in run.outcomes)
    assert set(run.results) == {o.request_id for o in run.outcomes}


def test_two_replays_on_one_platform_keep_their_own_results(make):
    answer = {"a": Reply(result={"who": "a"}), "b": Reply(status="failed")}
    replayer, platform, producer = make(lambda req: answer[req.input["who"]])
    second = Replayer(producer, platform.listen, TOPICS, NAMESPACE)
    runs: dict[str, ReplayRun] = {}

    def go(who: str, r: Replayer) -> None:
        entries = [TraceEntry(offset_s=0.01 * i, dag=DAG, input={"who": who}) for i in range(3)]
        runs[who] = replay(r, entries, keep_results=True)

    threads = [
        threading.Thread(target=go, args=("a", replayer)),
        threading.Thread(target=go, args=("b", second)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=15)

    a, b = runs["a"], runs["b"]
    assert not {o.request_id for o in a.outcomes} & {o.request_id for o in b.outcomes}
    assert [o.status for o in a.outcomes] == [SUCCESS] * 3
    assert [o.status for o in b.outcomes] == [FAILED] * 3
    assert set(a.results) == {o.request_id for o in a.outcomes}
    assert all(v == {"who": "a"} for v in a.results.values())
    assert all(v == {"error": "boom"} for v in b.results.values())
    assert all(len(o.functions) == 3 for o in (*a.outcomes, *b.outcomes))


# --- what is sent ------------------------------------------------------------------------------


def test_an_entrys_policy_wins_over_the_runs_and_goes_on_the_request(make):
    replayer, _, producer = make()
    run = replay(replayer, [entry(0.0, 0, policy="off"), entry(0.01, 1)], policy="thesis")

    sent = {r.input["n"]: r for r in producer.requests}
    assert (sent[0].policy, sent[1].policy) == ("off", "thesis")
    assert all(r.namespace == NAMESPACE and r.dag == DAG and r.submitted_ms > 0 for r in sent.values())
    outcomes = by_n(run, producer)
    assert (outcomes[0].policy, outcomes[1].policy) == ("off", "thesis")
    assert (outcomes[0].harvest_applied, outcomes[1].harvest_applied) == (False, True)
    assert [key for _, _, key in producer.calls] == [r.request_id for r in producer.requests]


def test_the_offloaders_answer_is_what_is_sent(make):
    calls: list[tuple[str, dict[str, Any]]] = []

    def offload(body: dict[str, Any], namespace: str) -> dict[str, Any]:
        calls.append((namespace, dict(body)))
        return {"$ref": "r1", "size": 12345}

    replayer, _, producer = make(offload=offload)
    run = replay(replayer, [entry(0.0, 7)])

    o = run.outcomes[0]
    assert calls == [(NAMESPACE, {"n": 7})]  # stored as the replaying namespace's own value
    assert producer.requests[0].input == {"$ref": "r1", "size": 12345}
    assert o.input_size == size_of({"n": 7})  # the size of the input itself, not of its reference
    assert o.status == SUCCESS


def test_inputs_are_read_from_files_before_sending(make, tmp_path: Path):
    path = tmp_path / "clip.json"
    path.write_bytes(orjson.dumps({"n": 3, "url": "x"}))
    replayer, _, producer = make()
    run = replay(replayer, [TraceEntry(offset_s=0.0, dag=DAG, input_path=path)])

    assert producer.requests[0].input == {"n": 3, "url": "x"}
    assert run.outcomes[0].input == "clip.json"
    assert run.outcomes[0].input_size == path.stat().st_size


def test_keep_results_keeps_each_requests_result(make):
    replayer, _, producer = make(lambda req: Reply(result={"double": req.input["n"] * 2}))
    run = replay(replayer, [entry(0.0, 1), entry(0.0, 2)], keep_results=True)

    assert {rid: v["double"] for rid, v in run.results.items()} == {
        r.request_id: r.input["n"] * 2 for r in producer.requests
    }


@pytest.mark.parametrize("speed", [0, -1.0])
def test_speed_must_be_positive(make, speed):
    replayer, platform, producer = make()
    with pytest.raises(ValueError, match="speed"):
        replay(replayer, [entry(0.0, 0)], speed=speed)
    assert producer.calls == [] and platform.opened == []


def test_a_send_that_fails_is_recorded_and_the_others_still_go_out(make):
    replayer, _, producer = make(fail=lambda req: req.input["n"] == 1)
    run = replay(replayer, [entry(0.0, 0), entry(0.01, 1), entry(0.02, 2)], deadline_s=DEADLINE_S)

    assert sorted(r.input["n"] for r in producer.requests) == [0, 2]
    statuses = {o.seq: (o.status, o.error) for o in run.outcomes}
    assert statuses == {0: (SUCCESS, ""), 1: (UNFINISHED, "not sent: broker down"), 2: (SUCCESS, "")}


def test_a_failing_flush_does_not_break_the_run(make):
    replayer, _, producer = make()

    def broken_flush(timeout_s: float = 10.0) -> None:
        raise RuntimeError("flush failed")

    producer.flush = broken_flush
    run = replay(replayer, [entry(0.0, 0)])
    assert run.outcomes[0].status == SUCCESS


def test_an_empty_trace_returns_an_empty_run(make):
    replayer, _, producer = make()
    run = replay(replayer, [])
    assert run.outcomes == [] and producer.calls == []
