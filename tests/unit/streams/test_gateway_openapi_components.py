"""The components of the gateway's OpenAPI document (streams/gateway/openapi_components.py):
every error status the gateway answers is described, every reference resolves, and the
action limits are the settings' own bounds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from gleaner.actions import KINDS, MAX_CODE_BYTES
from gleaner.settings import Settings
from streams.gateway.errors import HTTP_STATUS
from streams.gateway.openapi import openapi_document
from streams.gateway.openapi_components import (
    ERROR_DESCRIPTIONS,
    component_schemas,
    error_responses,
    ref,
    returns,
)

SCHEMA_REF = "#/components/schemas/"
RESPONSE_REF = "#/components/responses/"


def refs(node: Any) -> Iterator[str]:
    """Every ``$ref`` anywhere under ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_ref_and_returns_build_openapi_fragments() -> None:
    assert ref("Dag") == {"$ref": "#/components/schemas/Dag"}
    assert returns(ref("Dag"), "The DAG.") == {
        "description": "The DAG.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Dag"}}},
    }


def test_every_client_or_service_error_status_the_gateway_answers_is_described() -> None:
    # 500 and 502 are an activation's own answers (the invoke routes describe them).
    answered = {status for status in HTTP_STATUS.values() if 400 <= status < 500 or status == 503}
    assert answered <= ERROR_DESCRIPTIONS.keys(), answered - ERROR_DESCRIPTIONS.keys()
    assert all(text.strip().endswith(".") for text in ERROR_DESCRIPTIONS.values())


def test_one_error_response_per_described_status_all_in_openwhisks_error_json() -> None:
    responses = error_responses()
    assert set(responses) == {f"Error{code}" for code in ERROR_DESCRIPTIONS}
    for code, text in ERROR_DESCRIPTIONS.items():
        assert responses[f"Error{code}"] == returns(ref("Error"), text)
    error = component_schemas(Settings().gateway)["Error"]
    assert error["required"] == ["error", "code"]
    assert set(error["properties"]) == {"error", "code"}


def test_every_reference_in_the_document_names_a_component_that_exists() -> None:
    settings = Settings()
    doc = openapi_document(settings.gateway)
    schemas, responses = component_schemas(settings.gateway), error_responses()
    found = set(refs(doc["paths"])) | set(refs(schemas))
    assert found, "the document references no component"
    for target in found:
        if target.startswith(SCHEMA_REF):
            assert target.removeprefix(SCHEMA_REF) in schemas, target
        else:
            assert target.startswith(RESPONSE_REF), target
            assert target.removeprefix(RESPONSE_REF) in responses, target


def test_what_an_object_schema_requires_it_also_describes() -> None:
    for name, schema in component_schemas(Settings().gateway).items():
        if "properties" in schema:
            missing = set(schema.get("required", [])) - set(schema["properties"])
            assert not missing, f"{name} requires {missing} without describing them"


@pytest.mark.parametrize(
    ("cpu_min", "cpu_max", "memory_min_mb", "timeout_min_ms", "timeout_max_ms", "encoding_base_mb"),
    [(0.25, 2.0, 128, 100, 300_000, 8192), (0.5, 16.0, 64, 50, 60_000, 4096)],
)
def test_the_action_limits_are_the_settings_bounds(
    cpu_min: float,
    cpu_max: float,
    memory_min_mb: int,
    timeout_min_ms: int,
    timeout_max_ms: int,
    encoding_base_mb: int,
) -> None:
    settings = replace(
        Settings(),
        cpu_min=cpu_min,
        cpu_max=cpu_max,
        memory_min_mb=memory_min_mb,
        timeout_min_ms=timeout_min_ms,
        timeout_max_ms=timeout_max_ms,
        encoding_base_mb=encoding_base_mb,
    )
    limits = component_schemas(settings.gateway)["ActionPut"]["properties"]["limits"]
    props = limits["properties"]
    assert (props["cpu"]["minimum"], props["cpu"]["maximum"]) == (cpu_min, cpu_max)
    assert props["memory"]["minimum"] == memory_min_mb and "maximum" not in props["memory"]
    assert (props["timeout"]["minimum"], props["timeout"]["maximum"]) == (timeout_min_ms, timeout_max_ms)
    assert f"(cpu - 1) * {encoding_base_mb} + memory" in limits["description"]


def test_the_exec_schema_names_the_runtimes_and_the_code_limit() -> None:
    exec_in = component_schemas(Settings().gateway)["ActionPut"]["properties"]["exec"]
    assert exec_in["required"] == ["code"]
    props = exec_in["properties"]
    assert props["kind"]["enum"] == sorted(KINDS)
    assert str(MAX_CODE_BYTES) in props["code"]["description"]
    assert "maxLength" not in props["code"]  # stated, not enforced by fuzzers' 48 MiB strings
    main = re.compile(props["main"]["pattern"])
    assert main.match("main") and main.match("_handler2")
    assert not main.match("2main") and not main.match("ma-in") and not main.match("")
