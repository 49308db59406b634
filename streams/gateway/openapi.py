"""The gateway's REST API as an OpenAPI 3.0 document, served at ``GET /api/v1/openapi.json``.

The document is built from the settings, so the bounds it states (allocation limits,
payload sizes) are the ones this gateway enforces. A unit test keeps its paths and
methods equal to the routes the aiohttp app registers, and the integration suite fuzzes
the running gateway from it (``tests/integration/test_openapi_fuzz.py``).
"""

from __future__ import annotations

from typing import Any

from gleaner.harvest_policies import HARVEST_POLICIES
from gleaner.settings_sections import GatewaySettings
from streams.gateway.dashboard import ASSETS, DEFAULT_REQUESTS, MAX_REQUESTS
from streams.gateway.http import MAX_INT, MAX_LIST
from streams.gateway.openapi_components import Schema, component_schemas, error_responses, ref, returns

OPENAPI_PATH = "/api/v1/openapi.json"
NS = "/api/v1/namespaces/{ns}"
# OpenWhisk's entity name rule (gleaner.actions._ENTITY_NAME; \w is ASCII in both dialects).
ENTITY_NAME_PATTERN = r"^(\w|\w[\w@ .\-]*[\w@.\-]+)$"
MAX_NAME = 256
NAMESPACE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_@.\-]*$"  # gleaner.subjects._NAMESPACE_RE

ANY_REQUEST = (414, 431)  # the error middleware answers these for every route
AUTHENTICATED = (401, 403, 503)


def _errors(*codes: int) -> dict[str, Schema]:
    return {str(c): {"$ref": f"#/components/responses/Error{c}"} for c in sorted({*codes, *ANY_REQUEST})}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def _int_query(name: str, hi: int, description: str) -> Schema:
    return _query(name, {"type": "integer", "minimum": 0, "maximum": hi}, description)


def _flag(name: str, description: str) -> Schema:
    return _query(name, {"type": "boolean"}, description)


NS_PARAM = _path("ns", {"type": "string", "minLength": 1}, "The namespace, or `_` for the key's own.")
NAME_SCHEMA: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_NAME,
    "pattern": ENTITY_NAME_PATTERN,
}
ACTIVATION_ID = _path("id", {"type": "string", "minLength": 1}, "The activation id (32 hex characters).")


def _name_param(what: str) -> Schema:
    return _path("name", NAME_SCHEMA, f"The {what} name (OpenWhisk's entity name rule).")


def _operation(
    operation_id: str,
    summary: str,
    tag: str,
    responses: dict[str, Schema],
    parameters: list[Schema] | None = None,
    body: Schema | None = None,
    *,
    authenticated: bool = True,
) -> Schema:
    op: Schema = {"operationId": operation_id, "summary": summary, "tags": [tag], "responses": responses}
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    if not authenticated:
        op["security"] = []
    return op


def _invoke_params() -> list[Schema]:
    return [
        _flag("blocking", "Wait (at most 60 s) for the result; 202 with the id after that."),
        _flag("result", "With `blocking`, answer only the result."),
    ]


def _dag_invoke_params() -> list[Schema]:
    return [
        *_invoke_params(),
        _flag("harvest", "Harvest idle resources inside parallel stages (default: the setting)."),
        _query("policy", {"type": "string", "enum": list(HARVEST_POLICIES)}, "The harvesting policy."),
        _flag("profile", "Record this request for the profiler."),
        _query(
            "profile_cpu",
            {"type": "number", "minimum": 0, "exclusiveMinimum": True},
            "Only with `profile=true`: every function at this many cores instead of the maximum "
            "(the profiler's CPU sweep), clamped to an invoker's capacity and onto the CPU grid.",
        ),
    ]


def _invoke_responses(record: str) -> dict[str, Schema]:
    return {
        "200": returns(ref("InvokeAnswer"), f"The {record} (or only its result, with `result=true`)."),
        "202": returns(ref("ActivationId"), "Accepted (non-blocking, or the blocking wait ran out)."),
        "500": returns(ref("InvokeAnswer"), "The activation failed inside the platform (statusCode 3)."),
        "502": returns(ref("InvokeAnswer"), "The activation failed (application or developer error)."),
        **_errors(400, 404, 413, *AUTHENTICATED),
    }


def _paths(settings: GatewaySettings) -> dict[str, Schema]:
    action, dag = _name_param("action"), _name_param("DAG")
    overwrite = _flag("overwrite", "Replace an existing entity (409 without it).")
    invoke_body = {
        "required": False,
        "description": f"The parameters (a JSON object, at most {settings.max_payload_bytes} bytes).",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    dag_input = {
        "required": False,
        "description": f"The DAG's input (a JSON object, at most {settings.max_dag_payload_bytes} bytes).",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    return {
        "/ping": {
            "get": _operation(
                "ping",
                "Liveness.",
                "misc",
                {"200": returns(ref("Ping"), "Up."), **_errors()},
                authenticated=False,
            )
        },
        "/invokers": {
            "get": _operation(
                "listInvokers",
                "Each invoker's health, as OpenWhisk's controller answers it.",
                "invokers",
                {
                    "200": returns(ref("InvokerStates"), "Invoker id to `up` or `down`."),
                    **_errors(*AUTHENTICATED),
                },
            )
        },
        "/invokers/health": {
            "get": _operation(
                "invokerHealth",
                "Each invoker's last heartbeat (capacity, free, running, queue).",
                "invokers",
                {
                    "200": returns({"type": "array", "items": ref("Heartbeat")}, "Heartbeats."),
                    **_errors(*AUTHENTICATED),
                },
            )
        },
        "/api/v1": {
            "get": _operation(
                "info",
                "API description.",
                "misc",
                {"200": returns(ref("Info"), "Info."), **_errors()},
                authenticated=False,
            )
        },
        # The document itself needs no key: it describes the API, it holds no user data.
        OPENAPI_PATH: {
            "get": _operation(
                "openapi",
                "This OpenAPI document.",
                "misc",
                {"200": returns({"type": "object"}, "The document."), **_errors()},
                authenticated=False,
            )
        },
        "/api/v1/namespaces": {
            "get": _operation(
                "listNamespaces",
                "The key's namespace.",
                "namespaces",
                {
                    "200": returns({"type": "array", "items": {"type": "string"}}, "One namespace."),
                    **_errors(401, 503),
                },
            )
        },
        f"{NS}/actions": {
            "get": _operation(
                "listActions",
                "The namespace's actions, by name, without code.",
                "actions",
                {
                    "200": returns({"type": "array", "items": ref("Action")}, "Actions."),
                    **_errors(400, *AUTHENTICATED),
                },
                [
                    NS_PARAM,
                    _int_query("limit", MAX_LIST, f"At most this many (0 means {MAX_LIST})."),
                    _int_query("skip", MAX_INT, "Skip this many."),
                ],
            )
        },
        f"{NS}/actions/{{name}}": {
            "put": _operation(
                "putAction",
                "Create (or with `overwrite=true` update) an action.",
                "actions",
                {
                    "200": returns(ref("Action"), "The stored action."),
                    **_errors(400, 409, 413, *AUTHENTICATED),
                },
                [NS_PARAM, action, overwrite],
                {"required": True, "content": {"application/json": {"schema": ref("ActionPut")}}},
            ),
            "get": _operation(
                "getAction",
                "One action.",
                "actions",
                {"200": returns(ref("Action"), "The action."), **_errors(404, *AUTHENTICATED)},
                [NS_PARAM, action, _flag("code", "Include the code (default true).")],
            ),
            "delete": _operation(
                "deleteAction",
                "Delete an action.",
                "actions",
                {
                    "200": returns(ref("Action"), "The deleted action."),
                    **_errors(404, *AUTHENTICATED),
                },
                [NS_PARAM, action],
            ),
            "post": _operation(
                "invokeAction",
                "Invoke an action (or a DAG by its name, which then takes the DAG's parameters).",
                "actions",
                _invoke_responses("activation record"),
                [NS_PARAM, action, *_invoke_params()],
                invoke_body,
            ),
        },
        f"{NS}/activations": {
            "get": _operation(
                "listActivations",
                "Activations, newest first.",
                "activations",
                {
                    "200": returns(
                        {"type": "array", "items": ref("Activation")}, "Summaries (records with docs)."
                    ),
                    **_errors(400, *AUTHENTICATED),
                },
                [
                    NS_PARAM,
                    _int_query("limit", MAX_LIST, f"At most this many (0 means {MAX_LIST})."),
                    _int_query("skip", MAX_INT, "Skip this many."),
                    _int_query("since", MAX_INT, "Started at or after this epoch ms."),
                    _int_query("upto", MAX_INT, "Started at or before this epoch ms."),
                    _query("name", {"type": "string"}, "Only this action's (`name` or `package/name`)."),
                    _flag("docs", "Whole records instead of summaries."),
                ],
            )
        },
        **{
            f"{NS}/activations/{{id}}{tail}": {
                "get": _operation(
                    operation_id,
                    summary,
                    "activations",
                    {"200": returns(schema, summary), **_errors(404, *AUTHENTICATED)},
                    [NS_PARAM, ACTIVATION_ID],
                )
            }
            for tail, operation_id, summary, schema in (
                ("", "getActivation", "One activation record.", ref("Activation")),
                ("/result", "getActivationResult", "An activation's response.", {"type": "object"}),
                ("/logs", "getActivationLogs", "An activation's log lines.", ref("Logs")),
            )
        },
        f"{NS}/dags": {
            "get": _operation(
                "listDags",
                f"The namespace's DAGs, by name (a page of at most {MAX_LIST}).",
                "dags",
                {
                    "200": returns({"type": "array", "items": ref("Dag")}, "DAGs."),
                    **_errors(400, *AUTHENTICATED),
                },
                [
                    NS_PARAM,
                    _int_query("limit", MAX_LIST, f"At most this many (0 or none means {MAX_LIST})."),
                    _int_query("skip", MAX_INT, "Skip this many."),
                ],
            )
        },
        f"{NS}/dags/{{name}}": {
            "put": _operation(
                "putDag",
                "Create (or with `overwrite=true` update) a DAG over the namespace's actions.",
                "dags",
                {"200": returns(ref("Dag"), "The stored DAG."), **_errors(400, 409, 413, *AUTHENTICATED)},
                [
                    NS_PARAM,
                    dag,
                    overwrite,
                    _int_query(
                        "slo_ms",
                        86_400_000,
                        "Latency SLO in ms: its requests' deadline for the invokers' least-slack "
                        "scheduler (0 removes it; an update without it keeps the old one).",
                    ),
                ],
                {"required": True, "content": {"application/json": {"schema": ref("Composition")}}},
            ),
            "get": _operation(
                "getDag",
                "One DAG.",
                "dags",
                {"200": returns(ref("Dag"), "The DAG."), **_errors(404, *AUTHENTICATED)},
                [NS_PARAM, dag],
            ),
            "delete": _operation(
                "deleteDag",
                "Delete a DAG.",
                "dags",
                {"200": returns(ref("Dag"), "The deleted DAG."), **_errors(404, *AUTHENTICATED)},
                [NS_PARAM, dag],
            ),
            "post": _operation(
                "invokeDag",
                "Run a DAG.",
                "dags",
                _invoke_responses("DAG-level record"),
                [NS_PARAM, dag, *_dag_invoke_params()],
                dag_input,
            ),
        },
        **_dashboard_paths(),
    }


def _dashboard_paths() -> dict[str, Schema]:
    """The live dashboard: its page and files (no key: they hold no data) and its JSON view."""
    paths: dict[str, Schema] = {}
    for route, (name, kind) in ASSETS.items():
        ok = {"description": f"The dashboard's {name}.", "content": {kind: {"schema": {"type": "string"}}}}
        op = _operation(
            "dashboard" if name == "index.html" else f"dashboardFile_{name.replace('.', '_')}",
            f"The live dashboard's {name} (no key: the page asks for one).",
            "dashboard",
            {"200": ok, **_errors()},
            authenticated=False,
        )
        paths[route] = {"get": op}
    paths[f"{NS}/dashboard"] = {
        "get": _operation(
            "dashboardView",
            "The dashboard's view: invokers and the last finished DAG requests with their stage "
            "timelines, allocations, harvest decisions and measured speedups. A tenant key sees its "
            "namespace; the admin key any namespace by name, or every namespace with `_`.",
            "dashboard",
            {"200": returns(ref("Dashboard"), "The view."), **_errors(400, *AUTHENTICATED)},
            [
                NS_PARAM,
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": MAX_REQUESTS},
                    f"At most this many requests, newest first (default {DEFAULT_REQUESTS}).",
                ),
                _int_query(
                    "since", MAX_INT, "Only requests started at or after this (ms; default: an hour ago)."
                ),
            ],
        )
    }
    return paths


ADMIN = "/api/v1/admin/namespaces"
NAMESPACE_PARAM = _path(
    "namespace",
    {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": NAMESPACE_PATTERN},
    "The namespace name.",
)
UUID_PARAM = _path("uuid", {"type": "string", "format": "uuid"}, "The key's uuid (the part before `:`).")


def _admin_op(operation_id: str, summary: str, ok: Schema, *codes: int, params: list[Schema]) -> Schema:
    """An admin route: the admin key only (a tenant key gets 403)."""
    responses = {"200": ok, **_errors(*codes, *AUTHENTICATED)}
    return _operation(operation_id, summary, "admin", responses, params)


def _admin_paths() -> dict[str, Schema]:
    issued = returns(ref("IssuedKey"), "The new key; its secret is shown only this once.")
    one, key = [NAMESPACE_PARAM], [NAMESPACE_PARAM, UUID_PARAM]
    return {
        ADMIN: {
            "get": _admin_op(
                "adminListNamespaces",
                "Every namespace and how many keys it has.",
                returns({"type": "array", "items": ref("NamespaceSummary")}, "Namespaces."),
                params=[],
            )
        },
        ADMIN + "/{namespace}": {
            "put": _admin_op(
                "adminCreateNamespace", "Create a namespace with its first key.", issued, 400, 409, params=one
            ),
            "delete": _admin_op(
                "adminDeleteNamespace",
                "Delete a namespace and revoke its keys (its entities stay, unreachable).",
                returns(ref("NamespaceDeleted"), "The revoked keys."),
                400,
                404,
                params=one,
            ),
        },
        ADMIN + "/{namespace}/keys": {
            "get": _admin_op(
                "adminListKeys",
                "A namespace's keys (uuids; secrets are stored hashed only).",
                returns({"type": "array", "items": ref("KeySummary")}, "Keys."),
                400,
                404,
                params=one,
            ),
            "post": _admin_op("adminCreateKey", "Issue a further key.", issued, 400, 404, params=one),
        },
        ADMIN + "/{namespace}/keys/{uuid}": {
            "put": _admin_op(
                "adminRotateKey",
                "A new secret for the key (same uuid); the old one stops.",
                issued,
                400,
                404,
                params=key,
            ),
            "delete": _admin_op(
                "adminRevokeKey",
                "Revoke a key: refused on every gateway within a second.",
                returns(ref("KeyRevoked"), "Revoked."),
                400,
                404,
                params=key,
            ),
        },
    }


def openapi_document(settings: GatewaySettings) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Gleaner gateway",
            "version": "1",
            "description": "The OpenWhisk REST API subset Gleaner serves, plus DAGs and invokers. "
            'Every error is OpenWhisk\'s `{"error": "...", "code": "<transaction id>"}`; '
            "`_` as the namespace is the key's own.",
        },
        "servers": [{"url": settings.api_host}],
        "security": [{"basicAuth": []}],
        "paths": {**_paths(settings), **_admin_paths()},
        "components": {
            "securitySchemes": {
                "basicAuth": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "An API key `uuid:key`: a tenant's, or the admin's for `/api/v1/admin`.",
                }
            },
            "schemas": component_schemas(settings),
            "responses": error_responses(),
        },
    }
