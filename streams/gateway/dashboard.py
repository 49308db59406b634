"""The live dashboard at ``/dashboard``: a static page (``static/``, no build step, no outside
network) that polls one JSON view, ``GET /api/v1/namespaces/{ns}/dashboard``.

The view holds the invokers as their heartbeats describe them (capacity, used, cores lent
across requests, the scheduler's queue, in flight), the DAG requests still running (from the
composition stream's state in Redis: the stages so far, finished functions from their records,
running ones from their dispatch to now), and the last finished DAG requests (found among the
namespace's last ``SCAN`` activations, so one indexed query serves a poll however many
activations and DAGs the namespace has), each with its stage timeline (its functions'
records), allocations and their origin, the plan's harvest decision, and a measured speedup
where a baseline exists: the latest earlier request of the same DAG with the same input size
that ran without harvesting, so ``(L_off - L_on) / L_off`` as in the evaluation
(monitor.evaluation).

Who sees what: a tenant key its own namespace; the admin key (an operator) any one namespace
by name, or with ``_`` every namespace. The view carries names, times and allocations only,
never parameters, results or logs. The page itself needs no key: it asks for one and keeps it
in the tab's sessionStorage.
"""

from __future__ import annotations

import asyncio
import logging
from importlib import resources
from typing import Any, Protocol

from aiohttp import web

from composer.statemachine import RequestState
from gleaner.couchdb import ACTIVATIONS, SUBJECTS, AsyncCouchDB, Call
from gleaner.errors import Forbidden, RedisError
from gleaner.records import annotation
from gleaner.redis_store import RedisStore
from gleaner.settings_sections import GatewaySettings, StoreSettings
from gleaner.subjects import ADMIN, check_namespace
from streams.composition.records import dag_record
from streams.composition.state import CompositionStore
from streams.events import now_ms
from streams.gateway.auth import NOT_ALLOWED, Authenticator
from streams.gateway.http import int_param, json_response

log = logging.getLogger(__name__)
PAGE_PATH = "/dashboard"
# Route -> (file in streams/gateway/static, content type). Fixed routes: nothing else is served.
ASSETS = {
    PAGE_PATH: ("index.html", "text/html"),
    PAGE_PATH + "/dashboard.js": ("dashboard.js", "application/javascript"),
    PAGE_PATH + "/dashboard.css": ("dashboard.css", "text/css"),
}
DEFAULT_REQUESTS, MAX_REQUESTS = 10, 50
DEFAULT_WINDOW_MS = 3_600_000  # requests of the last hour, unless ``since`` says otherwise
MAX_NAMESPACES = 50  # the admin's view of every namespace reads at most this many
SCAN = 200  # the last activations of a namespace the view looks through for DAG requests
SCAN_FIELDS = ["activationId", "gleaner.dag.name", "gleaner.dag_request"]


# --- pure: records -> view model ---------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def invoker_rows(heartbeats: list[dict[str, Any]], now: int) -> list[dict[str, Any]]:
    """One row per invoker, by id: capacity, used (capacity - free), the cores its running
    activations lend to others (``cpu_lent``), running, its scheduler's queue (``queue``:
    activations waiting for permits) and ``waiting``, the heartbeat's ``queue_length``
    (activations it took and has not finished, running ones included). A heartbeat from an
    older invoker, without the scheduler's fields, shows 0 for them."""
    rows = []
    for beat in heartbeats:
        cpu_cap = _number(beat.get("cpu_capacity")) or 0.0
        mem_cap = int(_number(beat.get("memory_capacity_mb")) or 0)
        cpu_free = _number(beat.get("cpu_free")) or 0.0
        mem_free = int(_number(beat.get("memory_free_mb")) or 0)
        ts = _number(beat.get("ts_ms"))
        rows.append(
            {
                "id": str(beat.get("invoker", "")),
                "healthy": bool(beat.get("healthy")),
                "status": str(beat.get("status", "up")),
                "cpu_capacity": cpu_cap,
                "cpu_used": round(max(0.0, cpu_cap - cpu_free), 3),
                "memory_capacity_mb": mem_cap,
                "memory_used_mb": max(0, mem_cap - mem_free),
                "running": int(_number(beat.get("running")) or 0),
                "waiting": int(_number(beat.get("queue_length")) or 0),
                "queue": max(0, int(_number(beat.get("waiting")) or 0)),
                "cpu_lent": round(max(0.0, _number(beat.get("cpu_lent")) or 0.0), 3),
                "age_ms": None if ts is None else max(0, now - int(ts)),
            }
        )
    return sorted(rows, key=lambda r: r["id"])


def _function_view(
    entry: dict[str, Any], child: dict[str, Any] | None, planned: Any, t0: int
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "activation_id": entry.get("activation_id"),
        "action": entry.get("action"),
        "index": entry.get("index"),
        "origin": planned.get("origin", "user") if isinstance(planned, dict) else "user",
        "allocation": None,
        "user_allocation": None,
        "invoker": None,
        "status_code": None,
        "from_ms": None,
        "to_ms": None,
        "cold": None,
    }
    if child is None:
        return view  # its record is not stored (yet): listed, without a bar
    g = _dict(child.get("gleaner"))
    start, end = _number(child.get("start")), _number(child.get("end"))
    view.update(
        origin=g.get("origin") or view["origin"],
        allocation=g.get("allocation"),
        user_allocation=g.get("user_allocation"),
        allocation_peak=g.get("allocation_peak"),
        invoker=g.get("invoker"),
        status_code=child.get("statusCode"),
        from_ms=None if start is None else int(start) - t0,
        to_ms=None if end is None else int(end) - t0,
        cold=annotation(child, "initTime") is not None,
        wait_ms=annotation(child, "waitTime"),
    )
    return view


def _harvest_view(harvest: Any) -> dict[str, Any]:
    """The plan's decision: ``none`` (no plan), ``off`` (planned, not applied) or ``on``."""
    if not isinstance(harvest, dict):
        return {"decision": "none", "policy": None, "stages": [], "reasons": [], "model_version": None}
    stages = [
        {
            "stage": s.get("stage"),
            "cpu_mode": s.get("cpu_mode"),
            "mem_mode": s.get("mem_mode"),
            "reason": s.get("reason"),
            "makespan_s": s.get("makespan_s"),
        }
        for s in harvest.get("stages") or []
        if isinstance(s, dict)
    ]
    return {
        "decision": "on" if harvest.get("applied") else "off",
        "policy": harvest.get("policy"),
        "stages": stages,
        "reasons": [str(r) for r in harvest.get("reasons") or []],
        "model_version": harvest.get("model_version"),
        "inference_ms": harvest.get("inference_ms"),
    }


def request_view(record: dict[str, Any], children: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One DAG request: its stages on a timeline that starts at the request's start (ms)."""
    g = _dict(record.get("gleaner"))
    dag = _dict(g.get("dag"))
    harvest = g.get("harvest") if isinstance(g.get("harvest"), dict) else None
    planned = (harvest or {}).get("allocations") or {}
    t0 = int(_number(record.get("start")) or 0)
    end = int(_number(record.get("end")) or t0)
    stages = []
    for stage in dag.get("stages") or []:
        if not isinstance(stage, dict):
            continue
        s_start, s_end = _number(stage.get("start")), _number(stage.get("end"))
        functions = [
            _function_view(
                f,
                children.get(str(f.get("activation_id"))),
                planned.get(f"{stage.get('index')}.{f.get('index')}"),
                t0,
            )
            for f in stage.get("functions") or []
            if isinstance(f, dict)
        ]
        stages.append(
            {
                "index": stage.get("index"),
                "kind": stage.get("kind"),
                "from_ms": None if s_start is None else int(s_start) - t0,
                "to_ms": None if s_end is None else int(s_end) - t0,
                "functions": functions,
            }
        )
    return {
        "id": record.get("activationId"),
        "namespace": record.get("namespace"),
        "dag": record.get("name"),
        "start": t0,
        "duration_ms": max(0, end - t0),
        "status": dag.get("status"),
        "status_code": record.get("statusCode"),
        "input_size": dag.get("input_size"),
        "harvest": _harvest_view(harvest),
        "stages": stages,
        "speedup": None,
    }


def with_speedups(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each successful harvested request its measured speedup over the latest earlier
    successful request of the same DAG and input size that did not harvest (if any)."""
    done = [r for r in requests if r["status"] == "success" and r["duration_ms"] > 0]
    done_ids = {r["id"] for r in done}
    out = []
    for r in requests:
        baseline = None
        if r["id"] in done_ids and r["harvest"]["decision"] == "on":
            earlier = [
                b
                for b in done
                if b["harvest"]["decision"] != "on"
                and (b["namespace"], b["dag"], b["input_size"]) == (r["namespace"], r["dag"], r["input_size"])
                and b["start"] <= r["start"]
            ]
            baseline = max(earlier, key=lambda b: b["start"], default=None)
        if baseline is None:
            out.append(r)
            continue
        off, on = baseline["duration_ms"], r["duration_ms"]
        speedup = {"value": round((off - on) / off, 4), "baseline": baseline["id"], "baseline_ms": off}
        out.append({**r, "speedup": speedup})
    return out


def running_view(
    state: RequestState, dag: dict[str, Any], children: dict[str, dict[str, Any]], now: int
) -> dict[str, Any]:
    """A request still running, as its record will look, cut at ``now``: functions that
    finished have their records' bars; those still out run from their dispatch to now."""
    record = dag_record(
        state,
        version=str(dag.get("version", "0.0.1")),
        input_size=int(_number(dag.get("input_size")) or 0),
        harvest=dag.get("harvest") if isinstance(dag.get("harvest"), dict) else None,
    )
    record["end"] = max(now, state.started_ms)
    view = request_view(record, children)
    for stage in view["stages"]:
        for f in stage["functions"]:
            info = state.activations.get(str(f["activation_id"]))
            if f["from_ms"] is None and info is not None and not info.done:
                f.update(from_ms=info.dispatched_ms - view["start"], to_ms=view["duration_ms"], running=True)
    return view


def dashboard_view(
    records: list[dict[str, Any]],
    children: dict[str, dict[str, Any]],
    heartbeats: list[dict[str, Any]],
    *,
    scope: str,
    limit: int,
    now: int,
    running: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The page's whole model: newest request first, at most ``limit`` of them (the records
    beyond the limit only serve as speedup baselines). ``running``: views of requests still
    running (:func:`running_view`); one that has finished meanwhile shows its record."""
    views = with_speedups([request_view(r, children) for r in records if isinstance(r, dict)])
    finished = {v["id"] for v in views}
    views += [v for v in running or [] if v["id"] not in finished]
    views.sort(key=lambda v: v["start"], reverse=True)
    return {
        "scope": scope,
        "generated_ms": now,
        "invokers": invoker_rows(heartbeats, now),
        "requests": views[:limit],
    }


def request_ids(recent: list[dict[str, Any]]) -> list[str]:
    """The DAG requests that recent activations (newest first) belong to, newest first: a
    DAG record names itself, a function's record its request (``gleaner.dag_request``)."""
    seen: dict[str, None] = {}
    for doc in recent:
        g = _dict(doc.get("gleaner"))
        rid = doc.get("activationId") if isinstance(g.get("dag"), dict) else g.get("dag_request")
        if isinstance(rid, str) and rid:
            seen.setdefault(rid, None)
    return list(seen)


def child_ids(records: list[dict[str, Any]]) -> list[str]:
    """The CouchDB ids of the records' functions' records."""
    ids = []
    for r in records:
        stages = ((r.get("gleaner") or {}).get("dag") or {}).get("stages") or []
        for stage in stages:
            for f in stage.get("functions") or []:
                ids.append(f"{r.get('namespace')}/{f.get('activation_id')}")
    return ids


# --- I/O: the routes ------------------------------------------------------------------------------


class Heartbeats(Protocol):
    """What the dashboard reads of the invokers: their last heartbeats (placement's table)."""

    def heartbeats(self) -> list[dict[str, object]]: ...


class DashboardRoutes:
    def __init__(
        self,
        settings: GatewaySettings,
        stores: StoreSettings,
        db: AsyncCouchDB,
        auth: Authenticator,
        invokers: Heartbeats,
    ) -> None:
        self.settings = settings
        self.stores = stores
        self.db = db
        self.auth = auth
        self.invokers = invokers
        self._compositions: CompositionStore | None = None  # made on first use: Redis may be late
        static = resources.files("streams.gateway") / "static"
        self._assets = {
            route: (static.joinpath(name).read_bytes(), kind) for route, (name, kind) in ASSETS.items()
        }

    def register(self, app: web.Application, ns: str) -> None:
        for route in ASSETS:
            app.router.add_get(route, self.asset)
        app.router.add_get(ns + "/dashboard", self.data)

    async def asset(self, request: web.Request) -> web.Response:
        # No key: the page holds no data; it asks for a key and sends it on its fetches.
        body, kind = self._assets[request.path]
        return web.Response(body=body, content_type=kind, headers={"Cache-Control": "no-cache"})

    async def _scope(self, request: web.Request) -> list[str] | None:
        """The namespaces this key may see here; None for every namespace (admin with ``_``)."""
        header = request.headers.get("Authorization")
        asked = request.match_info["ns"]
        if await self.auth.require_any(header) == ADMIN:
            return None if asked == "_" else [check_namespace(asked)]
        own = await self.auth.namespace_for(header)
        if asked not in ("_", own):
            raise Forbidden(NOT_ALLOWED)
        return [own]

    async def _namespaces(self) -> list[str]:
        db = self.db
        found = await db.call(
            db.find(SUBJECTS, {"type": "namespace"}, limit=MAX_NAMESPACES, fields=["namespace"])
        )
        return [str(d["namespace"]) for d in found["docs"] if isinstance(d.get("namespace"), str)]

    async def _dag_records(self, ns: str, since: int, wanted: int) -> list[dict[str, Any]]:
        """The namespace's last ``wanted`` finished DAG requests among its last ``SCAN``
        activations: one query on the by-namespace-start index (its limit reaches CouchDB,
        as no selected field is off the index), then the DAG records by id."""
        db = self.db
        selector = {"namespace": ns, "start": {"$gte": since}}
        sort = [{"namespace": "desc"}, {"start": "desc"}]
        recent = await db.call(db.find(ACTIVATIONS, selector, sort=sort, limit=SCAN, fields=SCAN_FIELDS))
        ids = request_ids(recent["docs"])[:wanted]
        docs = await self._by_id([f"{ns}/{i}" for i in ids])
        return [d for d in docs if isinstance(_dict(d.get("gleaner")).get("dag"), dict)]

    async def _by_id(self, ids: list[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        db = self.db
        path = f"/{db.db(ACTIVATIONS)}/_all_docs"
        found = await db.call(Call("POST", path, body={"keys": ids}, params={"include_docs": "true"}))
        docs = [row.get("doc") for row in found.get("rows", [])]
        return [d for d in docs if isinstance(d, dict) and "activationId" in d]

    async def _children(
        self, records: list[dict[str, Any]], more_ids: list[str]
    ) -> dict[str, dict[str, Any]]:
        return {str(d["activationId"]): d for d in await self._by_id(child_ids(records) + more_ids)}

    def _running(self, namespaces: list[str] | None, limit: int) -> list[tuple[RequestState, dict[str, Any]]]:
        """The running requests of these namespaces (None: all), newest first (blocking I/O)."""
        if self._compositions is None:
            self._compositions = CompositionStore(RedisStore(self.stores))
        try:
            # At most ``limit`` per partition (the oldest: a stuck request shows): one Redis read each.
            found = self._compositions.running(self.settings.topic_partitions, limit)
        except RedisError as exc:  # the finished requests still show: the view degrades, not fails
            log.warning("dashboard: running requests unavailable: %s", exc)
            return []
        mine = [(s, d) for s, d in found if namespaces is None or s.namespace in namespaces]
        return sorted(mine, key=lambda sd: -sd[0].started_ms)[:limit]

    async def data(self, request: web.Request) -> web.Response:
        namespaces = await self._scope(request)
        limit = int_param(request, "limit", DEFAULT_REQUESTS, 1, MAX_REQUESTS)
        now = now_ms()
        since = int_param(request, "since", max(0, now - DEFAULT_WINDOW_MS))
        scope = "*" if namespaces is None else namespaces[0]
        if namespaces is None:
            namespaces = await self._namespaces()
        # Twice the limit: the older ones are baselines for the newer ones' speedups.
        found = await asyncio.gather(*(self._dag_records(ns, since, 2 * limit) for ns in namespaces))
        records = sorted((r for docs in found for r in docs), key=lambda r: -int(r.get("start") or 0))
        records = records[: 2 * limit]
        running = await asyncio.to_thread(self._running, None if scope == "*" else namespaces, limit)
        # A running request's functions are its state's activations: no record to build for them.
        started = [f"{s.namespace}/{aid}" for s, _ in running for aid in s.activations]
        children = await self._children(records[:limit], started)
        view = dashboard_view(
            records,
            children,
            self.invokers.heartbeats(),
            scope=scope,
            limit=limit,
            now=now,
            running=[running_view(s, d, children, now) for s, d in running],
        )
        return json_response(view)
