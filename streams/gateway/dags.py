"""DAG routes of the gateway (a Gleaner extension of the OpenWhisk API).

``PUT /api/v1/namespaces/{ns}/dags/{name}`` takes our DAG document or any
JSON that OpenWhisk Composer's ``compose`` writes; the DAG is expanded (a DAG
may name another DAG), normalized and validated against the namespace's
actions before it is stored. ``POST .../dags/{name}`` produces a
``dag.request`` and, when blocking, waits for the DAG-level record. A DAG is
also invocable as ``POST .../actions/{name}``, so ``wsk action invoke`` works.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import orjson
from aiohttp import web

from composer import analyze, dag_document, expand, from_json, normalize, validate
from composer.model import Node
from gleaner.actions import bump_version, check_name
from gleaner.couchdb import DAGS, WHISKS, AsyncCouchDB
from gleaner.errors import BadRequest, Conflict, Forbidden, NotFound
from gleaner.harvest_policies import check_policy, requested_policy
from gleaner.records import INTERNAL_ERROR, SUCCESS, public_view
from gleaner.settings_sections import GatewaySettings
from gleaner.ttlcache import TTLCache
from streams.events import DagRequest, new_activation_id, now_ms
from streams.gateway.auth import Authenticator, request_namespace
from streams.gateway.http import MAX_LIST, flag, int_param, json_body, json_response
from streams.gateway.intake import Intake
from streams.payloads import ForeignReference, is_ref, refs_in, size_of

NOT_FOUND = "The requested resource does not exist."


def analysis_view(root: Node) -> dict[str, Any]:
    a = analyze(root)
    return {
        "depth": a.depth,
        "width": a.width,
        "parallel_stages": list(a.parallel_stages),
        "stages": [
            {"index": s.index, "kind": s.kind, "functions": [f.action for f in s.slots]} for s in a.stages
        ],
    }


def dag_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        k: doc[k]
        for k in ("namespace", "name", "version", "composition", "analysis", "slo_ms", "updated")
        if k in doc
    }


def _profile_cpu(request: web.Request, profile: bool) -> float | None:
    """``profile_cpu``: the cores every function of a profile request runs with (the
    profiler's CPU sweep), a positive number, only with ``profile=true``; None if absent."""
    raw = request.query.get("profile_cpu")
    if raw is None:
        return None
    try:
        cores = float(raw)
    except ValueError:
        cores = math.nan
    if not 0 < cores < math.inf:  # NaN fails this too
        raise BadRequest(f"The query parameter 'profile_cpu' must be a positive number of cores, got {raw!r}")
    if not profile:
        raise BadRequest("The query parameter 'profile_cpu' is only allowed with 'profile=true'")
    return cores


class DagRoutes:
    def __init__(
        self, settings: GatewaySettings, db: AsyncCouchDB, auth: Authenticator, intake: Intake
    ) -> None:
        self.settings = settings
        self.db = db
        self.auth = auth
        self.intake = intake
        self._cache: TTLCache[str, dict[str, Any]] = TTLCache(settings.action_cache_ttl_s)

    def register(self, app: web.Application, prefix: str) -> None:
        app.router.add_get(prefix + "/dags", self.list)
        app.router.add_put(prefix + "/dags/{name}", self.put)
        app.router.add_get(prefix + "/dags/{name}", self.get)
        app.router.add_delete(prefix + "/dags/{name}", self.delete)
        app.router.add_post(prefix + "/dags/{name}", self.invoke)

    async def document(self, ns: str, name: str, *, fresh: bool = False) -> dict[str, Any] | None:
        """The namespace's DAG of that name (cached up to ``action_cache_ttl_s``), None if none."""
        key = f"{ns}/{name}"
        doc = None if fresh else self._cache.get(key)
        if doc is None:
            db = self.db
            doc = await db.call(db.get(DAGS, key))
            if doc is None:
                self._cache.pop(key)
                return None
            self._cache.put(key, doc)
        return doc

    async def _names(self, database: str, ns: str) -> list[dict[str, Any]]:
        db = self.db
        found = await db.call(
            db.find(database, {"namespace": ns}, limit=10_000, fields=["name", "composition"])
        )
        docs: list[dict[str, Any]] = found["docs"]
        return docs

    async def put(self, request: web.Request) -> web.Response:
        ns = await request_namespace(self.auth, request)
        name = check_name(request.match_info["name"], "DAG name")
        body = await json_body(request, self.settings.max_payload_bytes, allow_empty=False)
        tree = from_json(body)
        actions = {d["name"] for d in await self._names(WHISKS, ns)}
        others = {d["name"]: d["composition"] for d in await self._names(DAGS, ns) if d["name"] != name}
        if name in actions:
            raise Conflict(f"an action named {name} exists; a DAG cannot share its name")
        root = normalize(expand(tree, lambda n: from_json(others[n]) if n in others else None, name=name))
        validate(root, known_actions=actions.__contains__, max_functions=self.settings.max_dag_functions)
        existing = await self.document(ns, name, fresh=True)
        if existing is not None and not flag(request, "overwrite"):
            raise Conflict("resource already exists")
        version = bump_version(existing["version"]) if existing else "0.0.1"
        # A latency SLO feeds the invokers' least-slack deadlines; an update keeps the old one
        # unless it names a new one (0 removes it). A day at most: beyond, it orders nothing.
        slo_ms = int_param(request, "slo_ms", (existing or {}).get("slo_ms") or 0, 0, 86_400_000)
        doc: dict[str, Any] = {
            "_id": f"{ns}/{name}",
            "entityType": "dag",
            "namespace": ns,
            "name": name,
            "version": version,
            # Not **dag_document(root): its "version" is the document format ("gleaner/1"),
            # which overwrote the entity's version, so a DAG never showed an update.
            "composition": dag_document(root)["composition"],
            "source": body if len(str(body)) < 65536 else None,
            "analysis": analysis_view(root),
            "updated": now_ms(),
        }
        if slo_ms:
            doc["slo_ms"] = slo_ms
        if existing:
            doc["_rev"] = existing["_rev"]
        result = await self.db.call(self.db.put(DAGS, doc))
        self._cache.put(doc["_id"], {**doc, "_rev": result["rev"]})
        return json_response(dag_view(doc))

    async def get(self, request: web.Request) -> web.Response:
        ns = await request_namespace(self.auth, request)
        doc = await self.document(ns, request.match_info["name"])
        if doc is None:
            raise NotFound(NOT_FOUND)
        return json_response(dag_view(doc))

    async def list(self, request: web.Request) -> web.Response:
        ns = await request_namespace(self.auth, request)
        limit = int_param(request, "limit", MAX_LIST, 0, MAX_LIST) or MAX_LIST
        skip = int_param(request, "skip", 0)
        db = self.db
        sort = [{"namespace": "asc"}, {"name": "asc"}]
        found = await db.call(db.find(DAGS, {"namespace": ns}, sort=sort, limit=limit, skip=skip))
        return json_response([dag_view(d) for d in found["docs"]])

    async def delete(self, request: web.Request) -> web.Response:
        ns = await request_namespace(self.auth, request)
        doc = await self.document(ns, request.match_info["name"], fresh=True)
        if doc is None:
            raise NotFound(NOT_FOUND)
        await self.db.call(self.db.delete(DAGS, doc["_id"], doc["_rev"]))
        self._cache.pop(doc["_id"])
        return json_response(dag_view(doc))

    async def invoke(self, request: web.Request) -> web.Response:
        ns = await request_namespace(self.auth, request)
        doc = await self.document(ns, request.match_info["name"])
        if doc is None:
            raise NotFound(NOT_FOUND)
        return await self.run(request, ns, doc["name"], doc.get("_rev"))

    async def run(self, request: web.Request, ns: str, dag: str, rev: str | None = None) -> web.Response:
        """Produce the request; answer like an action invoke (202, or the record when blocking).
        ``rev``: the DAG document's revision, carried on the request so that the streams use
        the version they parsed for it (None: looked up here, in the cache the caller filled)."""
        if rev is None:
            doc = await self.document(ns, dag)
            rev = None if doc is None else doc.get("_rev")
        blocking, result_only = flag(request, "blocking"), flag(request, "result")
        harvest_flag = request.query.get("harvest")
        if harvest_flag not in (None, "true", "false"):
            raise BadRequest("The query parameter 'harvest' must be true or false")
        harvest = None if harvest_flag is None else harvest_flag == "true"
        policy = request.query.get("policy")
        try:
            if policy is not None:
                check_policy(policy)
            requested_policy(policy, harvest)
        except ValueError as exc:
            raise BadRequest(f"The query parameter 'policy' is invalid: {exc}") from exc
        profile = flag(request, "profile")
        profile_cpu = _profile_cpu(request, profile)
        value = await json_body(request, self.settings.max_dag_payload_bytes)
        if not isinstance(value, dict):
            raise BadRequest("The request content was malformed: the DAG input must be a JSON object.")
        request_id = new_activation_id()
        data = self.intake.data
        assert data is not None
        # Only a store read or write goes to a thread: each hop costs the request a GIL
        # hand-over (up to the 5 ms switch interval) while the loop is busy.
        refs = refs_in(value)
        if refs:
            try:
                # A reference in the input must be this namespace's own value (nothing of it is read).
                await asyncio.to_thread(data.owned, value, ns)
            except ForeignReference as exc:
                raise Forbidden(str(exc)) from exc
        # Large inputs go to the data store; Kafka carries the reference. The one measure of
        # the input: whether it fits inline, and the size the streams plan and record with
        # (an input that names references counts what they name, as size_of says).
        measured = len(orjson.dumps(value))
        if measured <= data.threshold:
            stored, input_size = value, size_of(value) if refs else measured
        else:
            stored = await asyncio.to_thread(data.offload, value, ns)
            input_size = size_of(stored)  # the size its reference names: no second measure
        event = DagRequest(
            request_id=request_id,
            namespace=ns,
            dag=dag,
            input=stored,
            harvest=harvest,
            policy=policy,
            profile=profile,
            profile_cpu=profile_cpu,
            submitted_ms=now_ms(),
            input_size=input_size,
            dag_rev=rev,
        )
        topic = self.settings.dag_requests_topic
        record = await self.intake.submit(topic, request_id, event.to_bytes(), blocking=blocking)
        if record is None:
            return json_response({"activationId": request_id}, 202)
        result = record["response"]["result"]
        if is_ref(result):
            try:
                result = await asyncio.to_thread(data.resolve, result, ns)
            except ForeignReference as exc:  # a function returned a reference it does not own
                result = {"error": str(exc)}
            record = {**record, "response": {**record["response"], "result": result}}
        status = record.get("statusCode", INTERNAL_ERROR)
        http = 200 if status == SUCCESS else 500 if status == INTERNAL_ERROR else 502
        return json_response(result if result_only else public_view(record), http)
