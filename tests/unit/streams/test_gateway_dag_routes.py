"""The DAG routes (streams/gateway/dags.py) in a real gateway app over an in-memory CouchDB,
with a fake key check, producer and completion waiter: a DAG is stored only over the
namespace's actions and under a free name, an update bumps its version and keeps its SLO,
and an invoke's bad query is a 400 with nothing produced, its blocking answer the record's
status."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest

from composer import parallel, sequence, to_json
from gleaner.couchdb import DAGS, WHISKS, AsyncCouchDB, Call
from gleaner.records import APPLICATION_ERROR, INTERNAL_ERROR, SUCCESS
from gleaner.settings import Settings
from streams.events import DagRequest
from streams.gateway.app import Gateway
from streams.gateway.dags import analysis_view, dag_view
from streams.payloads import DataStore, is_ref, size_of
from tests.unit.couch_fake import CouchStore, _encode
from tests.unit.fakes import MemoryRedis
from tests.unit.streams.gateway_server import ask

NS = "ns1"
URL = "/api/v1/namespaces/_/dags"
DAG = to_json(sequence("split", parallel("left", "right")))


class FakeAuth:
    async def namespace_for(self, header: str | None) -> str:
        return NS


class FakeData:
    threshold = 1 << 30  # every input fits inline


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, str | None]] = []

    def produce(self, topic: str, value: bytes, key: str | None = None) -> None:
        self.sent.append((topic, value, key))


class FakeWaiter:
    """Answers every blocking request with ``record`` (None: never answers)."""

    def __init__(self, record: dict[str, Any] | None) -> None:
        self.record = record
        self.forgotten: list[str] = []

    def expect(self, activation_id: str) -> asyncio.Future[dict[str, Any]]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if self.record is not None:
            fut.set_result({**self.record, "activationId": activation_id})
        return fut

    def forget(self, activation_id: str) -> None:
        self.forgotten.append(activation_id)


class Stack:
    def __init__(
        self, record: dict[str, Any] | None = None, settings: Settings | None = None, data: Any = None
    ) -> None:
        self.settings = settings or Settings()
        self.data = data if data is not None else FakeData()
        self.store = CouchStore()
        for name in ("split", "left", "right"):
            self.store.dbs.setdefault(self.settings.db(WHISKS), {})[f"{NS}/{name}"] = {
                "_id": f"{NS}/{name}",
                "_rev": "1-a",
                "namespace": NS,
                "name": name,
            }
        self.producer = FakeProducer()
        self.waiter = FakeWaiter(record)

    def ask(self, *requests: tuple[str, str, dict[str, Any]]) -> list[httpx.Response]:
        async def call(c: Call) -> Any:
            return _encode(c, *self.store.answer(c))

        db = AsyncCouchDB(self.settings)
        db.call = call  # type: ignore[method-assign,assignment]
        gateway = Gateway(self.settings, auth=FakeAuth(), db=db)  # type: ignore[arg-type]
        gateway.intake.data = self.data
        gateway.intake.producer = self.producer  # type: ignore[assignment]
        gateway.intake.waiter = self.waiter  # type: ignore[assignment]
        return asyncio.run(ask(list(requests), gateway))

    def events(self) -> list[DagRequest]:
        return [DagRequest.from_dict(orjson.loads(value)) for _, value, _ in self.producer.sent]


def test_the_analysis_view_lists_each_stage_and_its_functions() -> None:
    view = analysis_view(sequence("split", parallel("left", "right"), "merge"))
    assert (view["depth"], view["width"], view["parallel_stages"]) == (3, 2, [1])
    assert [(s["index"], s["functions"]) for s in view["stages"]] == [
        (0, ["split"]),
        (1, ["left", "right"]),
        (2, ["merge"]),
    ]
    assert [s["kind"] for s in view["stages"]][1] == "parallel"


def test_the_dag_view_leaves_out_couchdbs_fields_and_the_source() -> None:
    doc = {"_id": "ns/d", "_rev": "2-b", "entityType": "dag", "source": {}, "name": "d", "version": "0.0.2"}
    assert dag_view(doc) == {"name": "d", "version": "0.0.2"}


def test_a_dag_is_stored_analysed_and_read_back_then_deleted() -> None:
    stack = Stack()
    put, got, listed, deleted, gone = stack.ask(
        ("PUT", f"{URL}/d", {"json": DAG, "params": {"slo_ms": "5000"}}),
        ("GET", f"{URL}/d", {}),
        ("GET", URL, {}),
        ("DELETE", f"{URL}/d", {}),
        ("GET", f"{URL}/d", {}),
    )
    assert put.status_code == 200, put.text
    body = put.json()
    assert (body["namespace"], body["name"], body["version"], body["slo_ms"]) == (NS, "d", "0.0.1", 5000)
    assert body["analysis"]["parallel_stages"] == [1]
    assert "_rev" not in body and "source" not in body
    assert got.json() == body and [d["name"] for d in listed.json()] == ["d"]
    assert deleted.status_code == 200 and gone.status_code == 404
    assert f"{NS}/d" not in stack.store.dbs[stack.settings.db(DAGS)]


def test_an_update_needs_overwrite_bumps_the_version_and_keeps_the_slo_unless_named() -> None:
    stack = Stack()
    first, again, unclear, updated, cleared = stack.ask(
        ("PUT", f"{URL}/d", {"json": DAG, "params": {"slo_ms": "5000"}}),
        ("PUT", f"{URL}/d", {"json": DAG}),
        ("PUT", f"{URL}/d", {"json": DAG, "params": {"overwrite": "maybe"}}),
        ("PUT", f"{URL}/d", {"json": DAG, "params": {"overwrite": "true"}}),
        ("PUT", f"{URL}/d", {"json": DAG, "params": {"overwrite": "true", "slo_ms": "0"}}),
    )
    assert first.status_code == 200 and again.status_code == 409
    assert unclear.status_code == 400 and "'overwrite' must be true or false" in unclear.json()["error"]
    assert (updated.json()["version"], updated.json()["slo_ms"]) == ("0.0.2", 5000)
    assert cleared.json()["version"] == "0.0.3" and "slo_ms" not in cleared.json()


@pytest.mark.parametrize(
    ("name", "body", "params", "status", "says"),
    [
        ("left", DAG, {}, 409, "an action named left exists"),  # a DAG cannot take an action's name
        ("d", to_json(sequence("split", "nowhere")), {}, 400, "nowhere"),  # an unknown action
        ("d", DAG, {"slo_ms": "-1"}, 400, "slo_ms"),
        ("d", DAG, {"slo_ms": str(86_400_001)}, 400, "slo_ms"),  # a day at most
    ],
)
def test_a_dag_that_cannot_be_stored_is_refused_with_the_reason(
    name: str, body: Any, params: dict[str, str], status: int, says: str
) -> None:
    stack = Stack()
    (answer,) = stack.ask(("PUT", f"{URL}/{name}", {"json": body, "params": params}))
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]
    assert not stack.store.dbs.get(stack.settings.db(DAGS))


def test_a_dag_may_name_another_dag_of_the_namespace() -> None:
    stack = Stack()
    inner, outer = stack.ask(
        ("PUT", f"{URL}/inner", {"json": to_json(parallel("left", "right"))}),
        ("PUT", f"{URL}/outer", {"json": to_json(sequence("split", "inner"))}),
    )
    assert inner.status_code == 200 and outer.status_code == 200, outer.text
    assert outer.json()["analysis"]["stages"][1]["functions"] == ["left", "right"]


@pytest.mark.parametrize(
    ("params", "body", "says"),
    [
        ({"harvest": "yes"}, {"n": 1}, "'harvest' must be true or false"),
        ({"policy": "no-such-policy"}, {"n": 1}, "'policy' is invalid"),
        ({"blocking": "1"}, {"n": 1}, "'blocking' must be true or false"),
        ({}, [1, 2], "must be a JSON object"),
    ],
)
def test_a_bad_invoke_is_a_400_and_nothing_is_produced(params: dict[str, str], body: Any, says: str) -> None:
    stack = Stack()
    _, answer = stack.ask(
        ("PUT", f"{URL}/d", {"json": DAG}), ("POST", f"{URL}/d", {"json": body, "params": params})
    )
    assert answer.status_code == 400 and says in answer.json()["error"], answer.text
    assert stack.producer.sent == []


def test_an_invoke_of_a_dag_that_does_not_exist_is_a_404() -> None:
    stack = Stack()
    (answer,) = stack.ask(("POST", f"{URL}/missing", {"json": {}}))
    assert answer.status_code == 404 and stack.producer.sent == []


def test_a_non_blocking_invoke_produces_the_request_and_answers_its_id() -> None:
    stack = Stack()
    _, answer = stack.ask(
        ("PUT", f"{URL}/d", {"json": DAG}),
        ("POST", f"{URL}/d", {"json": {"n": 1}, "params": {"harvest": "false"}}),
    )
    assert answer.status_code == 202
    (event,) = stack.events()
    assert answer.json() == {"activationId": event.request_id}
    assert (event.namespace, event.dag, event.input, event.harvest) == (NS, "d", {"n": 1}, False)
    assert stack.producer.sent[0][0] == stack.settings.dag_requests_topic
    assert stack.producer.sent[0][2] == event.request_id  # keyed by the request
    assert stack.waiter.forgotten == []


@pytest.mark.parametrize(
    ("status_code", "http"), [(SUCCESS, 200), (INTERNAL_ERROR, 500), (APPLICATION_ERROR, 502)]
)
def test_a_blocking_invoke_answers_the_records_status(status_code: int, http: int) -> None:
    record = {"_id": "x", "_rev": "1-a", "statusCode": status_code, "response": {"result": {"sum": 3}}}
    stack = Stack(record)
    _, full, result_only = stack.ask(
        ("PUT", f"{URL}/d", {"json": DAG}),
        ("POST", f"{URL}/d", {"json": {"n": 1}, "params": {"blocking": "true"}}),
        ("POST", f"{URL}/d", {"json": {"n": 1}, "params": {"blocking": "true", "result": "true"}}),
    )
    assert full.status_code == result_only.status_code == http
    assert "_rev" not in full.json() and full.json()["response"]["result"] == {"sum": 3}
    assert full.json()["activationId"] == stack.events()[0].request_id
    assert result_only.json() == {"sum": 3}


def test_a_blocking_invoke_whose_wait_runs_out_is_accepted_and_forgotten() -> None:
    stack = Stack(None, replace(Settings(), blocking_wait_s=0.0))
    _, answer = stack.ask(
        ("PUT", f"{URL}/d", {"json": DAG}), ("POST", f"{URL}/d", {"json": {}, "params": {"blocking": "true"}})
    )
    assert answer.status_code == 202
    (event,) = stack.events()
    assert answer.json() == {"activationId": event.request_id}
    assert stack.waiter.forgotten == [event.request_id]  # no future left behind


def test_the_input_is_measured_once_at_the_gateway_and_its_size_carried_on_the_request() -> None:
    stack = Stack()
    _, answer = stack.ask(("PUT", f"{URL}/d", {"json": DAG}), ("POST", f"{URL}/d", {"json": {"n": [1, 2]}}))
    assert answer.status_code == 202
    (event,) = stack.events()
    assert event.input_size == size_of({"n": [1, 2]}) == len(orjson.dumps({"n": [1, 2]}))
    assert orjson.loads(stack.producer.sent[0][1])["input_size"] == event.input_size
    stored = stack.store.dbs[stack.settings.db(DAGS)][f"{NS}/d"]
    assert event.dag_rev is not None and event.dag_rev == stored["_rev"]  # the version read, carried on


def test_an_offloaded_input_carries_the_size_its_reference_names() -> None:
    data = DataStore(MemoryRedis(), threshold_bytes=16, ttl_s=60)  # type: ignore[arg-type]
    stack = Stack(data=data)
    big = {"text": "x" * 100}
    _, answer = stack.ask(("PUT", f"{URL}/d", {"json": DAG}), ("POST", f"{URL}/d", {"json": big}))
    assert answer.status_code == 202
    (event,) = stack.events()
    assert is_ref(event.input) and event.input_size == size_of(event.input) == len(orjson.dumps(big))


def test_an_input_naming_references_counts_what_they_name() -> None:
    data = DataStore(MemoryRedis(), threshold_bytes=200, ttl_s=60)  # type: ignore[arg-type]
    ref = data.offload({"text": "y" * 1000}, NS)
    value = {"value": [ref, 1]}
    stack = Stack(data=data)
    _, answer = stack.ask(("PUT", f"{URL}/d", {"json": DAG}), ("POST", f"{URL}/d", {"json": value}))
    assert answer.status_code == 202
    (event,) = stack.events()
    assert event.input == value and event.input_size == size_of(value) > len(orjson.dumps(value))
