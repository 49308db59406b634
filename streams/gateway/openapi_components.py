"""The components of the gateway's OpenAPI document (streams/gateway/openapi.py): the
entity and error schemas, and one error response per status the gateway answers."""

from __future__ import annotations

from typing import Any

from gleaner.actions import KINDS, MAX_CODE_BYTES
from gleaner.settings_sections import GatewaySettings

Schema = dict[str, Any]

ERROR_DESCRIPTIONS = {
    400: "Malformed or out-of-range input (query parameter, body, name or limits).",
    401: "The API key is missing or invalid.",
    403: "The API key is not authorized for this namespace (or, a tenant key, for an admin route).",
    404: "The entity does not exist.",
    409: "The entity exists and `overwrite=true` was not asked (or a DAG would share an action's name).",
    413: "The request body is above the allowed size.",
    414: "The request URL is longer than 8 KB.",
    431: "A request header is longer than 8 KB.",
    503: "A backing service (CouchDB, Kafka, Redis) failed.",
}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def returns(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_responses() -> dict[str, Schema]:
    """``Error<status>``: OpenWhisk's error JSON, described for each status."""
    return {f"Error{code}": returns(ref("Error"), text) for code, text in ERROR_DESCRIPTIONS.items()}


def _key_values() -> Schema:
    item = {"type": "object", "required": ["key"], "properties": {"key": {"type": "string"}, "value": {}}}
    return {"type": "array", "items": item}


def component_schemas(settings: GatewaySettings) -> dict[str, Schema]:
    string, integer, obj = {"type": "string"}, {"type": "integer"}, {"type": "object"}
    limits_in = {
        "type": "object",
        "description": "Missing limits take the defaults; `memory` above the largest allowed memory "
        f"with no `cpu` is the encoding (cpu - 1) * {settings.encoding_base_mb} + memory.",
        "properties": {
            "cpu": {"type": "number", "minimum": settings.cpu_min, "maximum": settings.cpu_max},
            "memory": {"type": "integer", "minimum": settings.memory_min_mb},
            "timeout": {
                "type": "integer",
                "minimum": settings.timeout_min_ms,
                "maximum": settings.timeout_max_ms,
            },
            "logs": {"type": "integer", "minimum": 0, "maximum": 10},
        },
    }
    exec_in = {
        "type": "object",
        "required": ["code"],
        "properties": {
            "kind": {"type": "string", "enum": sorted(KINDS)},
            # The size limit is stated, not a maxLength: fuzzers would send 48 MiB strings.
            "code": {"type": "string", "minLength": 1, "description": f"At most {MAX_CODE_BYTES} bytes."},
            "main": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
            "binary": {"type": "boolean", "description": "A base64 zip with __main__.py."},
        },
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error", "code"],
            "properties": {
                "error": {**string, "description": "What went wrong."},
                "code": {**string, "description": "The transaction id (32 hex characters)."},
            },
        },
        "Ping": {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}},
        "Info": {"type": "object", "required": ["description", "api_paths"]},
        "InvokerStates": {
            "type": "object",
            "additionalProperties": {"type": "string", "enum": ["up", "down"]},
        },
        "Heartbeat": {"type": "object", "required": ["invoker", "healthy"]},
        "Dashboard": {
            "type": "object",
            "required": ["scope", "generated_ms", "invokers", "requests"],
            "properties": {
                "scope": {**string, "description": "The namespace shown, or `*` for every namespace."},
                "generated_ms": integer,
                "invokers": {"type": "array", "items": obj},
                "requests": {"type": "array", "items": obj},
            },
        },
        "NamespaceSummary": {
            "type": "object",
            "required": ["namespace", "keys"],
            "properties": {"namespace": string, "keys": integer, "created": integer},
        },
        "KeySummary": {
            "type": "object",
            "required": ["uuid"],
            "properties": {"uuid": string, "created": integer},
        },
        "IssuedKey": {
            "type": "object",
            "required": ["namespace", "uuid", "auth"],
            "properties": {
                "namespace": string,
                "uuid": string,
                "auth": {**string, "description": "The key `uuid:secret`, for ~/.wskprops' AUTH."},
            },
        },
        "NamespaceDeleted": {
            "type": "object",
            "required": ["namespace", "deleted", "revoked"],
            "properties": {
                "namespace": string,
                "deleted": {"type": "boolean"},
                "revoked": {"type": "array", "items": string},
            },
        },
        "KeyRevoked": {
            "type": "object",
            "required": ["namespace", "uuid", "revoked"],
            "properties": {"namespace": string, "uuid": string, "revoked": {"type": "boolean"}},
        },
        "ActionPut": {
            "type": "object",
            "description": "`exec` is required to create; an update keeps what it does not name.",
            "properties": {
                "exec": exec_in,
                "limits": limits_in,
                "parameters": _key_values(),
                "annotations": _key_values(),
                "publish": {"type": "boolean"},
            },
        },
        "Action": {
            "type": "object",
            "required": ["namespace", "name", "version", "exec", "limits", "annotations"],
            "properties": {
                "namespace": string,
                "name": string,
                "version": string,
                "exec": obj,
                "limits": obj,
                "parameters": _key_values(),
                "annotations": _key_values(),
                "publish": {"type": "boolean"},
                "updated": integer,
            },
        },
        "ActivationId": {
            "type": "object",
            "required": ["activationId"],
            "properties": {"activationId": string},
        },
        "Activation": {
            "type": "object",
            "required": ["activationId", "namespace", "name"],
            "properties": {"activationId": string, "namespace": string, "name": string, "response": obj},
        },
        "InvokeAnswer": {"description": "An activation record, or with `result=true` any JSON result."},
        "Logs": {"type": "object", "required": ["logs"], "properties": {"logs": {"type": "array"}}},
        "Composition": {
            "description": "Our DAG document or anything OpenWhisk Composer's `compose` writes: a tree "
            '(`{"type": "sequence", "components": [...]}`), `{"composition": ..., "ast": ...}`, '
            "a conductor entity, or a list of entities.",
            "anyOf": [{"type": "object"}, {"type": "array"}],
        },
        "Dag": {
            "type": "object",
            "required": ["namespace", "name", "version", "composition"],
            "properties": {
                "namespace": string,
                "name": string,
                "version": string,
                "composition": obj,
                "slo_ms": {"type": "integer", "minimum": 1},
            },
        },
    }
