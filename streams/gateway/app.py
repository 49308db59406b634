"""HTTP ingress: the OpenWhisk REST subset on port 3233.

Invocations become ``activation.request`` events on the invocations topic;
a blocking caller waits (at most ``blocking_wait_s``, 60 s like OpenWhisk)
for the matching completion, then gets 202 with the activation id.
Errors answer in OpenWhisk's form ``{"error": ..., "code": <transaction id>}``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gleaner.actions import MAX_CODE_BYTES, action_doc, action_view, check_name
from gleaner.activation_keys import AsyncActivationKeys
from gleaner.couchdb import ACTIVATIONS, WHISKS, AsyncCouchDB
from gleaner.errors import BadRequest, Conflict, Forbidden, GleanerError, NotFound
from gleaner.metrics import HTTP_REQUESTS
from gleaner.records import INTERNAL_ERROR, SUCCESS, public_view, summary_view
from gleaner.settings import Settings
from gleaner.ttlcache import TTLCache
from streams.events import ActivationRequest, new_activation_id, now_ms
from streams.gateway.activation_list import ListQuery, list_page
from streams.gateway.admin import AdminRoutes
from streams.gateway.auth import Authenticator, request_namespace
from streams.gateway.dags import DagRoutes
from streams.gateway.dashboard import DashboardRoutes
from streams.gateway.errors import status_of
from streams.gateway.http import MAX_LIST, error_response, flag, int_param, json_body, json_response
from streams.gateway.intake import Intake
from streams.gateway.openapi import OPENAPI_PATH, openapi_document
from streams.payloads import ForeignReference, refs_in
from streams.placement.agent import InvokerTable, follow_health

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NOT_FOUND = "The requested resource does not exist."


MAX_URL_BYTES = 8 * 1024  # OpenWhisk's (akka-http) defaults; aiohttp reads up to HTTP_READ_LIMIT
MAX_HEADER_BYTES = 8 * 1024
HTTP_READ_LIMIT = 64 * 1024  # beyond this aiohttp itself answers, in plain text


@web.middleware
async def openwhisk_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    code = uuid.uuid4().hex
    request["transid"] = code
    if len(request.raw_path) > MAX_URL_BYTES:
        return error_response(f"The request URL is longer than {MAX_URL_BYTES} bytes.", 414, code)
    if any(len(k) + len(v) > MAX_HEADER_BYTES for k, v in request.headers.items()):
        return error_response(f"A request header is longer than {MAX_HEADER_BYTES} bytes.", 431, code)
    try:
        return await handler(request)
    except GleanerError as exc:
        status = status_of(exc)
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.path, exc)
        message = NOT_FOUND if isinstance(exc, NotFound) and not str(exc) else str(exc)
        return error_response(message, status, code)
    except web.HTTPRequestEntityTooLarge:
        return error_response("The request content exceeds the maximum allowed size.", 413, code)
    except web.HTTPException as exc:
        if exc.status == 404:
            return error_response(NOT_FOUND, 404, code)
        if exc.status == 405:
            return error_response("Method not allowed.", 405, code)
        raise
    except Exception:  # a bug: still OpenWhisk's shape, and the trace in the log
        log.exception("%s %s crashed", request.method, request.path)
        return error_response("The server encountered an internal error.", 500, code)


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    # The route's template, not its path: one series per route, whatever the names in it.
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        HTTP_REQUESTS.labels(route, request.method, str(status)).inc()


class Gateway:
    """The gateway's composition root: it makes the clients and gives each group of routes
    the few it needs (``auth`` may be passed in, e.g. a fake in tests)."""

    def __init__(
        self, settings: Settings, auth: Authenticator | None = None, db: AsyncCouchDB | None = None
    ) -> None:
        # The whole Settings still, for placement's heartbeat follower; its parts get their sections.
        self.settings = settings
        self.db = db or AsyncCouchDB(settings.stores)
        # Keys minted for running activations live in Redis (gleaner.activation_keys).
        self.auth = auth or Authenticator(self.db, minted=AsyncActivationKeys(settings.stores))
        own = settings.gateway
        self._limits = settings.limits  # an action's allowed limits (gleaner.actions)
        self.intake = Intake(own, settings.kafka, settings.stores)
        self.invokers = InvokerTable(settings.invoker_unhealthy_after_s)
        self.dags = DagRoutes(own, self.db, self.auth, self.intake)
        self.admin = AdminRoutes(settings.stores, self.auth)
        self.dashboard = DashboardRoutes(own, settings.stores, self.db, self.auth, self.invokers)
        self._actions: TTLCache[tuple[str, str], dict[str, Any]] = TTLCache(settings.action_cache_ttl_s)
        self._health_stop = threading.Event()
        self._openapi = json_response(openapi_document(own)).body

    # -- app wiring -------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[count_requests, openwhisk_errors],
            client_max_size=MAX_CODE_BYTES * 2,
            # Read long lines ourselves, so the middleware answers them in OpenWhisk's JSON. Only the
            # Application passes these to aiohttp's request handler (run_app's kwargs do not reach it).
            handler_args={"max_line_size": HTTP_READ_LIMIT, "max_field_size": HTTP_READ_LIMIT},
        )
        ns = "/api/v1/namespaces/{ns}"
        app.router.add_get("/ping", self.ping)
        app.router.add_get("/invokers", self.list_invokers)
        app.router.add_get("/invokers/health", self.invoker_health)
        app.router.add_get("/api/v1", self.info)
        app.router.add_get(OPENAPI_PATH, self.openapi)
        app.router.add_get("/api/v1/namespaces", self.list_namespaces)
        app.router.add_get(ns + "/actions", self.list_actions)
        app.router.add_put(ns + "/actions/{name}", self.put_action)
        app.router.add_get(ns + "/actions/{name}", self.get_action)
        app.router.add_delete(ns + "/actions/{name}", self.delete_action)
        app.router.add_post(ns + "/actions/{name}", self.invoke)
        app.router.add_get(ns + "/activations", self.list_activations)
        app.router.add_get(ns + "/activations/{id}", self.get_activation)
        app.router.add_get(ns + "/activations/{id}/result", self.get_activation_result)
        app.router.add_get(ns + "/activations/{id}/logs", self.get_activation_logs)
        self.dags.register(app, ns)
        self.admin.register(app)
        self.dashboard.register(app, ns)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _startup(self, _app: web.Application) -> None:
        self.intake.start(asyncio.get_running_loop())
        threading.Thread(
            target=follow_health,
            daemon=True,
            args=(self.settings, self.invokers, self._health_stop, "gleaner-gateway-health"),
        ).start()

    async def _cleanup(self, _app: web.Application) -> None:
        self._health_stop.set()
        self.intake.stop()
        self.admin.close()
        await self.db.aclose()

    # -- misc -------------------------------------------------------------------
    async def ping(self, _request: web.Request) -> web.Response:
        return json_response({"ok": True})

    async def info(self, _request: web.Request) -> web.Response:
        return json_response(
            {
                "description": "Gleaner (OpenWhisk REST API subset)",
                "api_paths": ["/api/v1"],
                "runtimes": {"python": [{"kind": "python:3", "default": True}]},
            }
        )

    async def openapi(self, _request: web.Request) -> web.Response:
        # No key needed: the document describes the API and holds no user data.
        return web.Response(body=self._openapi, content_type="application/json")

    # Operational routes: any valid key (tenant or admin); they show no tenant's data.
    async def list_invokers(self, request: web.Request) -> web.Response:
        await self.auth.require_any(request.headers.get("Authorization"))
        return json_response(self.invokers.states())

    async def invoker_health(self, request: web.Request) -> web.Response:
        await self.auth.require_any(request.headers.get("Authorization"))
        return json_response(self.invokers.heartbeats())

    async def list_namespaces(self, request: web.Request) -> web.Response:
        return json_response([await request_namespace(self.auth, request)])

    # -- actions ------------------------------------------------------------------
    async def _action(self, ns: str, name: str, *, fresh: bool = False) -> dict[str, Any]:
        key = (ns, name)
        hit = None if fresh else self._actions.get(key)
        if hit is not None:
            return hit
        doc = await self.db.call(self.db.get(WHISKS, f"{ns}/{name}"))
        if doc is None:
            self._actions.pop(key)
            raise NotFound(NOT_FOUND)
        self._actions.put(key, doc)
        return dict(doc)

    async def put_action(self, request: web.Request) -> web.Response:
        ns = await request_namespace(self.auth, request)
        name = check_name(request.match_info["name"], "action name")
        body = await json_body(request, MAX_CODE_BYTES + 65536, allow_empty=False)
        existing = await self.db.call(self.db.get(WHISKS, f"{ns}/{name}"))
        if existing is not None and not flag(request, "overwrite"):
            raise Conflict("resource already exists")
        doc = action_doc(ns, name, body, self._limits, existing, now_ms())
        result = await self.db.call(self.db.put(WHISKS, doc))
        doc["_rev"] = result["rev"]
        self._actions.put((ns, name), doc)
        return json_response(action_view(doc))

    async def get_action(self, request: web.Request) -> web.Response:
        ns = await request_namespace(self.auth, request)
        doc = await self._action(ns, request.match_info["name"], fresh=True)
        return json_response(action_view(doc, code=request.query.get("code", "true") != "false"))

    async def delete_action(self, request: web.Request) -> web.Response:
        ns = await request_namespace(self.auth, request)
        doc = await self._action(ns, request.match_info["name"], fresh=True)
        await self.db.call(self.db.delete(WHISKS, doc["_id"], doc["_rev"]))
        self._actions.pop((ns, doc["name"]))
        return json_response(action_view(doc, code=False))

    async def list_actions(self, request: web.Request) -> web.Response:
        ns = await request_namespace(self.auth, request)
        limit = int_param(request, "limit", 30, 0, MAX_LIST) or MAX_LIST
        skip = int_param(request, "skip", 0)
        found = await self.db.call(
            self.db.find(
                WHISKS,
                {"namespace": ns},
                sort=[{"namespace": "asc"}, {"name": "asc"}],
                limit=limit,
                skip=skip,
            )
        )
        return json_response([action_view(d, code=False) for d in found["docs"]])

    # -- invoke ------------------------------------------------------------------
    async def invoke(self, request: web.Request) -> web.Response:
        ns = await request_namespace(self.auth, request)
        name = request.match_info["name"]
        try:
            doc = await self._action(ns, name)
        except NotFound:
            if await self.dags.document(ns, name) is None:
                raise
            return await self.dags.run(request, ns, name)  # a DAG invoked as an action, like a conductor
        blocking, result_only = flag(request, "blocking"), flag(request, "result")
        params = await json_body(request, self.settings.max_payload_bytes)
        if not isinstance(params, dict):
            raise BadRequest("The request content was malformed: parameters must be a JSON object.")
        if refs_in(params):  # a reference must be this namespace's own value (nothing of it is read)
            data = self.intake.data
            assert data is not None
            try:
                await asyncio.to_thread(data.owned, params, ns)
            except ForeignReference as exc:
                raise Forbidden(str(exc)) from exc
        activation_id = new_activation_id()
        event = ActivationRequest(
            activation_id=activation_id,
            namespace=ns,
            action=doc["name"],
            params=params,
            rev=doc["_rev"],
            blocking=blocking,
            submitted_ms=now_ms(),
        )
        topic = self.settings.invocations_topic
        record = await self.intake.submit(topic, activation_id, event.to_bytes(), blocking=blocking)
        if record is None:
            return json_response({"activationId": activation_id}, 202)
        status = record.get("statusCode", INTERNAL_ERROR)
        http = 200 if status == SUCCESS else 500 if status == INTERNAL_ERROR else 502
        body = record["response"]["result"] if result_only else public_view(record)
        return json_response(body, http)

    # -- activations --------------------------------------------------------------
    async def _record(self, ns: str, activation_id: str) -> dict[str, Any]:
        doc = await self.db.call(self.db.get(ACTIVATIONS, f"{ns}/{activation_id}"))
        if doc is None and self.intake.waiter is not None:
            doc = self.intake.waiter.recent(ns, activation_id)
        if doc is None:
            raise NotFound(NOT_FOUND)
        return public_view(doc)

    async def get_activation(self, request: web.Request) -> web.Response:
        ns = await request_namespace(self.auth, request)
        return json_response(await self._record(ns, request.match_info["id"]))

    async def get_activation_result(self, request: web.Request) -> web.Response:
        ns = await request_namespace(self.auth, request)
        return json_response((await self._record(ns, request.match_info["id"]))["response"])

    async def get_activation_logs(self, request: web.Request) -> web.Response:
        ns = await request_namespace(self.auth, request)
        return json_response({"logs": (await self._record(ns, request.match_info["id"]))["logs"]})

    async def list_activations(self, request: web.Request) -> web.Response:
        ns = await request_namespace(self.auth, request)
        limit = int_param(request, "limit", 30, 0, MAX_LIST) or MAX_LIST
        skip = int_param(request, "skip", 0)
        since, upto = int_param(request, "since", 0), int_param(request, "upto", 0)
        name = request.query.get("name")
        action = check_name(name.rsplit("/", 1)[-1], "action name") if name else None
        query = ListQuery(ns, action, since=since, upto=upto, skip=skip, limit=limit)
        # Read-your-writes: what this gateway just answered, before the record sink stores it.
        waiter = self.intake.waiter
        recent = waiter.recent_records(ns) if waiter is not None else []
        docs = await list_page(self.db, query, recent)
        view = public_view if request.query.get("docs") == "true" else summary_view
        return json_response([view(d) for d in docs])


def serve(settings: Settings) -> None:
    gateway = Gateway(settings)
    web.run_app(
        gateway.app(),
        host=settings.gateway_bind,
        port=settings.gateway_port,
        print=None,
        access_log=None,
    )
