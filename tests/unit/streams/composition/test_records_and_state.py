"""The DAG-level record (streams/composition/records.py) and where a request's state lives
between events (streams/composition/state.py, over the in-memory Redis)."""

from __future__ import annotations

import orjson

from composer.statemachine import ActivationInfo, RequestState
from gleaner.records import DEVELOPER_ERROR, SUCCESS, annotation
from streams.composition.records import dag_record
from streams.composition.state import CompositionStore
from tests.unit.fakes import MemoryRedis


def state(request_id: str = "r1", status: str = "running", **kw: object) -> RequestState:
    kw.setdefault("deadline_ms", 61_000)
    return RequestState(request_id, "guest", "demo", started_ms=1_000, status=status, **kw)  # type: ignore[arg-type]


def finished(status: str = "success", ended_ms: int | None = 1_900) -> RequestState:
    """head, then a parallel stage of two whose children were dispatched out of index order."""
    s = state(status=status, ended_ms=ended_ms, result={"n": 3})
    s.stages = [
        {"index": 0, "kind": "action", "start": 1_000, "end": 1_200},
        {"index": 1, "kind": "parallel", "start": 1_200, "end": 1_900},
    ]
    s.activations = {
        "a-head": ActivationInfo("c0", "head", 0, 0, 1_000, True, 10),
        "a-right": ActivationInfo("c0", "right", 1, 1, 1_210, True, 30),
        "a-left": ActivationInfo("c0", "left", 1, 0, 1_205, True, 20),
    }
    s.order = ["a-head", "a-left", "a-right"]
    return s


def test_the_dag_record_lists_each_stage_with_its_functions_in_index_order() -> None:
    rec = dag_record(finished(), version="0.0.1", input_size=5, harvest={"applied": False})
    assert (rec["activationId"], rec["namespace"], rec["name"], rec["version"]) == (
        "r1",
        "guest",
        "demo",
        "0.0.1",
    )
    assert (rec["start"], rec["end"], rec["duration"]) == (1_000, 1_900, 900)
    assert rec["logs"] == ["a-head", "a-left", "a-right"]  # the children, in dispatch order
    assert rec["response"] == {
        "status": "success",
        "statusCode": SUCCESS,
        "success": True,
        "result": {"n": 3},
    }
    dag = rec["gleaner"]["dag"]
    assert (dag["name"], dag["input_size"], dag["status"]) == ("demo", 5, "success")
    assert [[f["action"] for f in st["functions"]] for st in dag["stages"]] == [["head"], ["left", "right"]]
    assert dag["stages"][1]["functions"][0] == {
        "activation_id": "a-left",
        "action": "left",
        "index": 0,
        "input_size": 20,
    }
    assert dag["stages"][1]["kind"] == "parallel" and dag["stages"][1]["end"] == 1_900
    assert rec["gleaner"]["harvest"] == {"applied": False}
    assert annotation(rec, "conductor") is True and annotation(rec, "kind") == "composition"
    assert annotation(rec, "timeout") is None


def test_a_failed_or_timed_out_dag_is_a_developer_error_and_a_timeout_says_so() -> None:
    failed = dag_record(finished("failed"), version="v", input_size=0, harvest=None)
    assert failed["statusCode"] == DEVELOPER_ERROR and not failed["response"]["success"]
    timed_out = dag_record(finished("timeout"), version="v", input_size=0, harvest=None)
    assert timed_out["statusCode"] == DEVELOPER_ERROR and annotation(timed_out, "timeout") is True
    given = dag_record(finished("failed"), version="v", input_size=0, harvest=None, status_code=1)
    assert given["statusCode"] == 1  # the caller's status wins (an application error)


def test_a_record_of_a_request_not_ended_spans_nothing() -> None:
    rec = dag_record(state(), version="v", input_size=0, harvest=None)
    assert (rec["end"], rec["duration"], rec["logs"]) == (1_000, 0, [])
    assert rec["response"]["result"] == {} and rec["gleaner"]["dag"]["stages"] == []


def test_the_store_gives_back_what_it_saved_with_its_dag() -> None:
    store = CompositionStore(MemoryRedis())  # type: ignore[arg-type]
    saved = finished("running", ended_ms=None)
    store.save(saved, {"composition": "demo"}, partition=0)
    loaded = store.load("r1")
    assert loaded is not None
    got, dag = loaded
    assert got == saved and dag == {"composition": "demo"}
    assert got.activations["a-left"] == ActivationInfo("c0", "left", 1, 0, 1_205, True, 20)
    assert store.load("unknown") is None


def test_only_running_requests_have_a_deadline_on_their_partition() -> None:
    store = CompositionStore(MemoryRedis())  # type: ignore[arg-type]
    early = state("early", deadline_ms=5_000)
    late = state("late", deadline_ms=9_000)
    store.save(early, {}, partition=1)
    store.save(late, {}, partition=1)
    store.save(state("elsewhere", deadline_ms=1_000), {}, partition=0)
    assert store.expired(1, now_ms=6_000) == ["early"]
    assert store.expired(1, now_ms=10_000) == ["early", "late"]
    early.status = "success"
    store.save(early, {}, partition=1)  # it ended: its deadline goes
    assert store.expired(1, now_ms=10_000) == ["late"]
    assert store.expired(0, now_ms=10_000) == ["elsewhere"]


def test_running_lists_each_partitions_running_requests_up_to_the_limit() -> None:
    redis = MemoryRedis()
    store = CompositionStore(redis)  # type: ignore[arg-type]
    for i, partition in enumerate([0, 0, 0, 1]):
        store.save(state(f"r{i}", deadline_ms=1_000 + i), {"i": i}, partition)
    # r1 ended meanwhile in another writer's view: its deadline is still listed, its state is not running.
    ended = state("r1", status="success", deadline_ms=1_001)
    redis.set("gleaner:dag:request:r1", orjson.dumps({"state": ended.to_dict(), "dag": {"i": 1}}), 60)
    found = store.running(partitions=2, limit=2)  # partition 0 lists r0 and r1 (the limit), r1 is skipped
    assert [(s.request_id, dag) for s, dag in found] == [("r0", {"i": 0}), ("r3", {"i": 3})]
