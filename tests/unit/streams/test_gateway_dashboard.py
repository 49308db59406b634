"""The dashboard: records -> view model (pure), and its routes in process with a fake key check
and a fake CouchDB (what the page and the JSON view answer, and who sees what)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from typing import Any

import httpx

from composer.statemachine import ActivationInfo, RequestState
from gleaner.couchdb import Call
from gleaner.errors import Forbidden, RedisError, Unauthorized
from gleaner.records import RecordDraft, build_record
from gleaner.settings import Settings
from gleaner.subjects import ADMIN, TENANT
from streams.events import InvokerHealth, now_ms
from streams.gateway.app import Gateway
from streams.gateway.dashboard import (
    ASSETS,
    child_ids,
    dashboard_view,
    invoker_rows,
    request_ids,
    request_view,
    running_view,
    with_speedups,
)
from tests.unit.streams.gateway_server import ask as serve

T0 = 1_700_000_000_000


def child(
    aid: str, action: str, stage: int, index: int, start: int, end: int, ns: str = "ns1", **g: Any
) -> dict[str, Any]:
    draft = RecordDraft(aid, ns, action, "0.0.1", "python:3", T0 + start, T0 + end, 0, {"big": "x"})
    draft.init_ms = g.pop("init_ms", None)
    draft.gleaner = {
        "allocation": {"cpu": 0.5, "memory": 256},
        "origin": "user",
        "user_allocation": {"cpu": 1.0, "memory": 256},
        "invoker": "invoker0",
        "stage": stage,
        "index": index,
        "dag_request": aid.rsplit("-", 1)[0],
        **g,
    }
    return build_record(draft)


def dag_rec(
    rid: str,
    *,
    start: int = 0,
    duration: int = 100,
    applied: bool | None = None,
    input_size: int = 7,
    ns: str = "ns1",
) -> dict[str, Any]:
    stages = [
        {
            "index": 0,
            "kind": "action",
            "start": T0 + start,
            "end": T0 + start + 30,
            "functions": [{"activation_id": f"{rid}-a", "action": "split", "index": 0}],
        },
        {
            "index": 1,
            "kind": "parallel",
            "start": T0 + start + 30,
            "end": T0 + start + duration,
            "functions": [
                {"activation_id": f"{rid}-b", "action": "work", "index": 0},
                {"activation_id": f"{rid}-c", "action": "work", "index": 1},
            ],
        },
    ]
    harvest = None
    if applied is not None:
        harvest = {
            "applied": applied,
            "allocations": {"1.0": {"cpu": 0.25, "memory": 256, "origin": "harvest"}} if applied else {},
            "stages": [
                {"stage": 1, "cpu_mode": "divided", "mem_mode": "fit", "reason": "why", "makespan_s": 0.1}
            ],
            "reasons": ["stage 1: divided"],
            "model_version": "m1",
            "inference_ms": 1.5,
            "policy": "gleaner",
        }
    draft = RecordDraft(rid, ns, "skewed", "0.0.1", "composition", T0 + start, T0 + start + duration, 0, {})
    draft.gleaner = {
        "dag": {"name": "skewed", "input_size": input_size, "status": "success", "stages": stages},
        "harvest": harvest,
    }
    return build_record(draft)


def children_of(rid: str, start: int = 0, ns: str = "ns1") -> dict[str, dict[str, Any]]:
    recs = [
        child(f"{rid}-a", "split", 0, 0, start + 2, start + 28, ns, init_ms=300),
        child(f"{rid}-b", "work", 1, 0, start + 32, start + 95, ns, origin="harvest"),
        child(f"{rid}-c", "work", 1, 1, start + 33, start + 60, ns),
    ]
    return {r["activationId"]: r for r in recs}


# --- pure ---------------------------------------------------------------------------------------


def test_invoker_rows_give_used_as_capacity_minus_free_and_waiting_as_the_queue() -> None:
    beat = {
        "invoker": "invoker0",
        "ts_ms": T0 - 500,
        "cpu_capacity": 2.0,
        "memory_capacity_mb": 4096,
        "cpu_free": 0.5,
        "memory_free_mb": 1024,
        "queue_length": 3,
        "running": 2,
        "status": "up",
        "healthy": True,
    }
    (row,) = invoker_rows([beat], T0)
    assert row["cpu_used"] == 1.5 and row["memory_used_mb"] == 3072
    assert row["waiting"] == 3 and row["running"] == 2 and row["age_ms"] == 500 and row["healthy"]


def test_invoker_rows_tolerate_a_heartbeat_missing_fields() -> None:
    (row,) = invoker_rows([{"invoker": "x"}], T0)
    assert row["cpu_used"] == 0 and row["age_ms"] is None and not row["healthy"]
    assert row["queue"] == 0 and row["cpu_lent"] == 0.0


def test_invoker_rows_show_the_schedulers_queue_and_lent_cores() -> None:
    beat = {
        "invoker": "invoker1",
        "cpu_capacity": 2.0,
        "cpu_free": 0.0,
        "queue_length": 5,
        "running": 2,
        "waiting": 3,  # of the five it took, three wait for permits
        "cpu_lent": 0.30000000000000004,
    }
    old = {"invoker": "invoker0", "cpu_capacity": 2.0, "queue_length": 1}  # an older invoker's beat
    first, second = invoker_rows([beat, old], T0)
    assert first["id"] == "invoker0" and (first["queue"], first["cpu_lent"]) == (0, 0.0)
    assert (second["queue"], second["cpu_lent"], second["waiting"], second["running"]) == (3, 0.3, 5, 2)
    odd = invoker_rows([{**beat, "waiting": "3", "cpu_lent": True}, {**beat, "waiting": -2}], T0)
    assert [(r["queue"], r["cpu_lent"]) for r in odd] == [(0, 0.0), (0, 0.3)]


def test_request_view_puts_each_function_on_the_timeline_from_the_request_start() -> None:
    view = request_view(dag_rec("r1", applied=True), children_of("r1"))
    assert [s["kind"] for s in view["stages"]] == ["action", "parallel"]
    split, work_b, work_c = [f for s in view["stages"] for f in s["functions"]]
    assert (split["from_ms"], split["to_ms"], split["cold"]) == (2, 28, True)
    assert (work_b["from_ms"], work_b["to_ms"], work_b["origin"]) == (32, 95, "harvest")
    assert work_c["cold"] is False and work_c["invoker"] == "invoker0"
    assert view["stages"][1]["from_ms"] == 30 and view["duration_ms"] == 100
    assert view["harvest"]["decision"] == "on" and view["harvest"]["stages"][0]["cpu_mode"] == "divided"


def test_request_view_lists_a_function_without_a_stored_record_by_its_planned_origin() -> None:
    view = request_view(dag_rec("r1", applied=True), {})
    work_b = view["stages"][1]["functions"][0]
    assert work_b["origin"] == "harvest" and work_b["from_ms"] is None and work_b["allocation"] is None


def test_request_view_never_carries_results_or_logs() -> None:
    view = request_view(dag_rec("r1"), children_of("r1"))
    assert "'big'" not in repr(view) and "result" not in repr(view)
    assert view["harvest"]["decision"] == "none"


def test_speedup_is_measured_against_the_latest_earlier_unharvested_request_of_the_same_input() -> None:
    recs = [
        dag_rec("off-old", start=0, duration=400, applied=False),
        dag_rec("off", start=1000, duration=200, applied=False),
        dag_rec("other-input", start=1500, duration=900, applied=False, input_size=99),
        dag_rec("on", start=2000, duration=150, applied=True),
    ]
    views = {v["id"]: v for v in with_speedups([request_view(r, {}) for r in recs])}
    assert views["on"]["speedup"] == {"value": 0.25, "baseline": "off", "baseline_ms": 200}
    assert views["off"]["speedup"] is None and views["other-input"]["speedup"] is None


def test_speedup_is_unknown_without_a_baseline() -> None:
    views = with_speedups([request_view(dag_rec("on", applied=True), {})])
    assert views[0]["speedup"] is None


def test_dashboard_view_lists_the_newest_first_up_to_the_limit() -> None:
    recs = [dag_rec(f"r{i}", start=100 * i) for i in range(5)]
    view = dashboard_view(recs, {}, [], scope="ns1", limit=3, now=T0)
    assert [r["id"] for r in view["requests"]] == ["r4", "r3", "r2"]
    assert view["scope"] == "ns1" and view["invokers"] == []


def test_request_ids_name_each_dag_request_once_newest_first() -> None:
    recent = [
        {"activationId": "c2", "gleaner": {"dag_request": "r2"}},
        {"activationId": "r1", "gleaner": {"dag": {"name": "skewed"}}},
        {"activationId": "c1", "gleaner": {"dag_request": "r1"}},
        {"activationId": "single", "gleaner": {"dag_request": None}},
        {"activationId": "odd", "gleaner": "not a dict"},
        {"activationId": "c3", "gleaner": {"dag_request": "r2"}},
    ]
    assert request_ids(recent) == ["r2", "r1"]


def test_child_ids_are_the_couchdb_ids_of_every_function() -> None:
    assert child_ids([dag_rec("r1")]) == ["ns1/r1-a", "ns1/r1-b", "ns1/r1-c"]


def running_state(rid: str = "run1", ns: str = "ns1") -> RequestState:
    """A request in its second stage: split is done, work 0 has finished, work 1 is still out."""
    state = RequestState(rid, ns, "skewed", started_ms=T0, deadline_ms=T0 + 60_000)
    state.stages = [
        {"index": 0, "kind": "action", "start": T0, "end": T0 + 30},
        {"index": 1, "kind": "parallel", "start": T0 + 30, "end": None},
    ]
    state.activations = {
        f"{rid}-a": ActivationInfo("c0", "split", 0, 0, T0 + 1, done=True),
        f"{rid}-b": ActivationInfo("c1", "work", 1, 0, T0 + 31, done=True),
        f"{rid}-c": ActivationInfo("c2", "work", 1, 1, T0 + 31),
    }
    state.order = list(state.activations)
    return state


def running_children(rid: str = "run1") -> dict[str, dict[str, Any]]:
    recs = [child(f"{rid}-a", "split", 0, 0, 2, 28), child(f"{rid}-b", "work", 1, 0, 32, 60)]
    return {r["activationId"]: r for r in recs}


def test_running_view_shows_finished_bars_and_running_ones_up_to_now() -> None:
    dag = {"version": "0.0.2", "input_size": 9, "harvest": None}
    view = running_view(running_state(), dag, running_children(), now=T0 + 200)
    assert view["status"] == "running" and view["duration_ms"] == 200 and view["input_size"] == 9
    work = view["stages"][1]["functions"]
    assert (work[0]["from_ms"], work[0]["to_ms"], work[0].get("running")) == (32, 60, None)
    assert (work[1]["from_ms"], work[1]["to_ms"], work[1]["running"]) == (31, 200, True)
    assert view["stages"][1]["to_ms"] is None and view["speedup"] is None


def test_a_request_that_finished_meanwhile_shows_its_record_not_its_running_view() -> None:
    finished = dag_rec("r1", applied=False)
    stale = {**running_view(running_state("r1"), {}, {}, now=T0 + 10), "start": T0 + 999}
    newer = {**running_view(running_state("r9"), {}, {}, now=T0 + 10), "start": T0 + 500}
    view = dashboard_view(
        [finished], children_of("r1"), [], scope="ns1", limit=5, now=T0, running=[stale, newer]
    )
    assert [(r["id"], r["status"]) for r in view["requests"]] == [("r9", "running"), ("r1", "success")]


# --- routes in process ---------------------------------------------------------------------------


class FakeCompositions:
    """The composition stream's running requests, as CompositionStore.running reads them."""

    def __init__(self, states: list[RequestState], down: bool = False) -> None:
        self.states, self.down = states, down

    def running(self, partitions: int, limit: int) -> list[tuple[RequestState, dict[str, object]]]:
        if self.down:
            raise RedisError("Redis at redis://127.0.0.1:6379/0 failed: connection refused")
        return [(s, {"version": "0.0.1", "input_size": 3, "harvest": None}) for s in self.states[:limit]]


TENANT_KEY = ("11111111-1111-1111-1111-111111111111", "tenant")
ADMIN_KEY = ("22222222-2222-2222-2222-222222222222", "admin")


class FakeAuth:
    async def require_any(self, header: str | None) -> str:
        if header == basic(*TENANT_KEY):
            return TENANT
        if header == basic(*ADMIN_KEY):
            return ADMIN
        raise Unauthorized("The supplied authentication is invalid")

    async def namespace_for(self, header: str | None) -> str:
        if await self.require_any(header) != TENANT:
            raise Forbidden("no")
        return "ns1"


def basic(user: str, key: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()


class FakeCouch:
    """Answers the reads the view makes: namespaces, a namespace's recent activations, records by id."""

    def __init__(self, records: dict[str, list[dict[str, Any]]], children: dict[str, dict[str, Any]]) -> None:
        self.records = records
        self.by_id = {r["_id"]: r for r in [*children.values(), *(r for rs in records.values() for r in rs)]}
        self.finds: list[dict[str, Any]] = []

    async def call(self, call: Call) -> Any:
        if call.path.endswith("/_all_docs"):
            return {"rows": [{"key": k, "doc": self.by_id.get(k)} for k in call.body["keys"]]}
        assert call.path.endswith("/_find"), call
        selector = call.body["selector"]
        if selector.get("type") == "namespace":
            return {"docs": [{"namespace": ns} for ns in self.records]}
        self.finds.append(call.body)
        ns = selector["namespace"]
        recent = [d for d in self.by_id.values() if d["_id"].startswith(f"{ns}/")]
        recent.sort(key=lambda d: -d["start"])
        return {"docs": recent[: call.body["limit"]]}


async def ask(
    requests: list[tuple[str, dict[str, Any]]],
    couch: FakeCouch,
    compositions: FakeCompositions | None = None,
    heartbeats: Sequence[InvokerHealth] = (),
) -> list[httpx.Response]:
    gateway = Gateway(Settings(), auth=FakeAuth())  # type: ignore[arg-type]
    for beat in heartbeats:
        gateway.invokers.update(beat)
    gateway.db.call = couch.call  # type: ignore[method-assign]
    gateway.dashboard._compositions = compositions or FakeCompositions([])  # type: ignore[assignment]
    return await serve([("GET", path, kwargs) for path, kwargs in requests], gateway)


def fake_couch() -> FakeCouch:
    records = {"ns1": [dag_rec("r1", applied=True)], "ns2": [dag_rec("r2", start=50, ns="ns2")]}
    return FakeCouch(records, {**children_of("r1"), **children_of("r2", 50, "ns2")})


def test_page_and_its_files_are_served_without_a_key() -> None:
    answers = asyncio.run(ask([(route, {}) for route in ASSETS], fake_couch()))
    for (route, (_name, kind)), resp in zip(ASSETS.items(), answers, strict=True):
        assert resp.status_code == 200, route
        assert resp.headers["content-type"].startswith(kind)
    assert "/dashboard/dashboard.js" in answers[0].text and "http" not in answers[0].text.replace(
        "http://www.w3.org", ""
    )


def test_a_tenant_key_sees_its_own_namespace_with_timelines() -> None:
    couch = fake_couch()
    (resp,) = asyncio.run(
        ask([("/api/v1/namespaces/_/dashboard", {"headers": {"Authorization": basic(*TENANT_KEY)}})], couch)
    )
    assert resp.status_code == 200, resp.text
    view = resp.json()
    assert view["scope"] == "ns1" and [r["id"] for r in view["requests"]] == ["r1"]
    assert view["requests"][0]["stages"][1]["functions"][0]["to_ms"] == 95
    assert [f["selector"]["namespace"] for f in couch.finds] == ["ns1"]
    # Every selected field is on the by-namespace-start index: CouchDB reads only `limit` records.
    assert set(couch.finds[0]["selector"]) == {"namespace", "start"}
    assert [next(iter(s)) for s in couch.finds[0]["sort"]] == ["namespace", "start"]


def test_the_view_shows_each_invokers_queue_and_lent_cores_from_its_heartbeat() -> None:
    busy = InvokerHealth("invoker0", "inc", now_ms(), 2.0, 4096, 0.0, 1024, 4, 1, waiting=3, cpu_lent=0.5)
    older = InvokerHealth("invoker1", "inc", now_ms(), 2.0, 4096, 2.0, 4096, 0, 0)
    (resp,) = asyncio.run(
        ask(
            [("/api/v1/namespaces/_/dashboard", {"headers": {"Authorization": basic(*TENANT_KEY)}})],
            fake_couch(),
            heartbeats=[older, busy],
        )
    )
    assert resp.status_code == 200, resp.text
    rows = resp.json()["invokers"]
    assert [(r["id"], r["queue"], r["cpu_lent"], r["waiting"]) for r in rows] == [
        ("invoker0", 3, 0.5, 4),
        ("invoker1", 0, 0.0, 0),
    ]
    assert rows[0]["cpu_used"] == 2.0 and rows[0]["healthy"]


def test_running_requests_of_the_own_namespace_appear_with_live_bars() -> None:
    couch = fake_couch()
    couch.by_id.update({r["_id"]: r for r in running_children().values()})
    running = FakeCompositions([running_state("run1"), running_state("run2", ns="ns2")])
    (resp,) = asyncio.run(
        ask(
            [("/api/v1/namespaces/_/dashboard", {"headers": {"Authorization": basic(*TENANT_KEY)}})],
            couch,
            running,
        )
    )
    assert resp.status_code == 200, resp.text
    views = {r["id"]: r for r in resp.json()["requests"]}
    assert set(views) == {"r1", "run1"} and views["run1"]["status"] == "running"
    assert [f["from_ms"] for f in views["run1"]["stages"][1]["functions"]] == [32, 31]


def test_without_redis_the_view_still_shows_finished_requests() -> None:
    (resp,) = asyncio.run(
        ask(
            [("/api/v1/namespaces/_/dashboard", {"headers": {"Authorization": basic(*TENANT_KEY)}})],
            fake_couch(),
            FakeCompositions([running_state()], down=True),
        )
    )
    assert resp.status_code == 200 and [r["id"] for r in resp.json()["requests"]] == ["r1"]


def test_a_tenant_key_may_not_name_another_namespace() -> None:
    (resp,) = asyncio.run(
        ask(
            [("/api/v1/namespaces/ns2/dashboard", {"headers": {"Authorization": basic(*TENANT_KEY)}})],
            fake_couch(),
        )
    )
    assert resp.status_code == 403 and set(resp.json()) == {"error", "code"}


def test_the_admin_key_sees_every_namespace_or_the_one_it_names() -> None:
    auth = {"headers": {"Authorization": basic(*ADMIN_KEY)}}
    every, one = asyncio.run(
        ask(
            [("/api/v1/namespaces/_/dashboard", auth), ("/api/v1/namespaces/ns2/dashboard", auth)],
            fake_couch(),
        )
    )
    assert every.status_code == 200 and every.json()["scope"] == "*"
    assert [r["id"] for r in every.json()["requests"]] == ["r2", "r1"]
    assert one.status_code == 200 and [r["id"] for r in one.json()["requests"]] == ["r2"]


def test_bad_input_answers_openwhisk_errors_not_500() -> None:
    auth = {"Authorization": basic(*TENANT_KEY)}
    admin = {"Authorization": basic(*ADMIN_KEY)}
    answers = asyncio.run(
        ask(
            [
                ("/api/v1/namespaces/_/dashboard", {}),
                ("/api/v1/namespaces/_/dashboard", {"headers": {"Authorization": "Basic !!"}}),
                ("/api/v1/namespaces/_/dashboard", {"headers": auth, "params": {"limit": "x"}}),
                ("/api/v1/namespaces/_/dashboard", {"headers": auth, "params": {"limit": "0"}}),
                ("/api/v1/namespaces/_/dashboard", {"headers": auth, "params": {"limit": "51"}}),
                ("/api/v1/namespaces/_/dashboard", {"headers": auth, "params": {"since": "-1"}}),
                ("/api/v1/namespaces/-bad/dashboard", {"headers": admin}),
                ("/dashboard/other.js", {}),
            ],
            fake_couch(),
        )
    )
    assert [a.status_code for a in answers] == [401, 401, 400, 400, 400, 400, 400, 404]
    assert all(set(a.json()) == {"error", "code"} for a in answers)
