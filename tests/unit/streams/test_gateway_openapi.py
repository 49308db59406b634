"""The gateway's OpenAPI document: it names exactly the routes the app registers, and it is valid."""

from __future__ import annotations

import orjson
import schemathesis
from schemathesis.core.result import Err

from gleaner.actions import _ENTITY_NAME
from gleaner.settings import Settings
from streams.gateway.app import Gateway
from streams.gateway.dashboard import ASSETS
from streams.gateway.openapi import ENTITY_NAME_PATTERN, OPENAPI_PATH, openapi_document

METHODS = {"get", "put", "post", "delete", "patch"}


def registered_routes() -> set[tuple[str, str]]:
    app = Gateway(Settings()).app()
    # aiohttp adds a HEAD route for every GET; the document lists the GETs.
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


def documented_routes(doc: dict[str, object]) -> set[tuple[str, str]]:
    paths = doc["paths"]
    assert isinstance(paths, dict)
    return {(method, path) for path, item in paths.items() for method in item if method in METHODS}


def test_document_names_exactly_the_registered_routes() -> None:
    doc = openapi_document(Settings().gateway)
    assert documented_routes(doc) == registered_routes()
    assert ("get", OPENAPI_PATH) in registered_routes()


def test_document_is_valid_openapi_and_every_operation_loads() -> None:
    schema = schemathesis.openapi.from_dict(openapi_document(Settings().gateway))
    schema.validate()  # raises on a document that breaks the OpenAPI 3.0 meta-schema
    results = list(schema.get_all_operations())
    broken = [result.err() for result in results if isinstance(result, Err)]
    assert not broken
    assert len(results) == len(documented_routes(openapi_document(Settings().gateway)))


def test_document_survives_json_and_states_the_settings_bounds() -> None:
    settings = Settings(max_payload_bytes=1234, cpu_max=3.0)
    doc = orjson.loads(orjson.dumps(openapi_document(settings.gateway)))
    limits = doc["components"]["schemas"]["ActionPut"]["properties"]["limits"]["properties"]
    assert limits["cpu"]["maximum"] == 3.0
    invoke = doc["paths"]["/api/v1/namespaces/{ns}/actions/{name}"]["post"]
    assert "1234 bytes" in invoke["requestBody"]["description"]


def test_only_the_public_routes_skip_authentication() -> None:
    doc = openapi_document(Settings().gateway)
    public = {path for path, item in doc["paths"].items() for op in item.values() if op.get("security") == []}
    # /invokers needs a key (issue 10); the dashboard's page and files hold no data (its view needs a key)
    assert public == {"/ping", "/api/v1", OPENAPI_PATH, *ASSETS}


def test_name_pattern_is_the_entity_name_rule() -> None:
    assert _ENTITY_NAME.pattern == ENTITY_NAME_PATTERN
