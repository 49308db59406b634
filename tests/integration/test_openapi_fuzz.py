"""Fuzz the running gateway from the OpenAPI document it serves (schemathesis).

Every operation gets the coverage phase's boundary cases (including unexpected
methods and content types) and a few generated examples, positive and negative,
derandomized so a CI failure replays. The checks: no 5xx, statuses and bodies as
documented, and every error in OpenWhisk's ``{"error": ..., "code": ...}`` shape.

Entity names are prefixed so the fuzzer never touches another test's entities,
and invokes only ever name entities that do not exist: nothing runs a function.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from gleaner.settings import Settings, load_settings
from streams.gateway.openapi import OPENAPI_PATH, openapi_document
from tests.integration.conftest import TEST_AUTH

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 20  # generated cases per operation, on top of the coverage phase's boundary cases
BUDGET_S = 75.0  # past this the operations not begun are skipped (reported, not passed)
CREATED = "fuzz-"  # PUT, GET and DELETE names: entities this test may create and must remove
ABSENT = "fuzz-absent-"  # invoke names: never created, so an invoke only ever answers 404
KEEP_NS_EVERY = 8
USER, _, KEY = TEST_AUTH.partition(":")


class Budget:
    """An operation is fuzzed whole or not at all: one begun before the budget ran out sends
    every case (a failure found late is still shrunk), one not begun by then is skipped."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: float | None = None
        self.begun: set[str] = set()
        self.skipped: set[str] = set()
        self.sent = 0
        self.by_status: dict[int, int] = {}

    def allows(self, operation: str) -> bool:
        if operation in self.begun:
            return True
        now = time.monotonic()
        self.started = self.started or now
        if now - self.started >= self.seconds:
            self.skipped.add(operation)
            return False
        self.begun.add(operation)
        return True


BUDGET = Budget(BUDGET_S)


def delete_fuzz_entities(api_host: str) -> None:
    with httpx.Client(base_url=f"{api_host}/api/v1/namespaces/_", auth=(USER, KEY), timeout=30) as http:
        listed = http.get("/dags")  # DAGs first: they name actions; one page holds them all here
        listed.raise_for_status()
        fuzzed = [f"/dags/{e['name']}" for e in listed.json() if e["name"].startswith(CREATED)]
        for skip in itertools.count(0, 200):
            listed = http.get("/actions", params={"limit": 200, "skip": skip})
            listed.raise_for_status()
            fuzzed += [f"/actions/{e['name']}" for e in listed.json() if e["name"].startswith(CREATED)]
            if len(listed.json()) < 200:
                break
        for path in fuzzed:
            http.delete(path)


@pytest.fixture(scope="module", autouse=True)
def fuzz_report(stack_up: Settings) -> Iterator[None]:
    yield
    delete_fuzz_entities(stack_up.api_host)
    print(
        f"\nfuzzed the gateway: {BUDGET.sent} requests sent to {len(BUDGET.begun)} operations, "
        f"{len(BUDGET.skipped)} operations skipped past {BUDGET_S:.0f} s; "
        f"statuses {dict(sorted(BUDGET.by_status.items()))}"
    )


def openwhisk_error_shape(
    _ctx: Any, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """Every 4xx and 5xx answer is OpenWhisk's error JSON with a string error and code."""
    if response.status_code < 400:
        return None
    if case.method.upper() == "POST" and response.status_code >= 500:
        return None  # a failed blocking invoke answers its record (not reached here: names are absent)
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise AssertionError(f"{response.status_code} is not JSON: {response.content[:200]!r}") from exc
    if not (
        isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("code"), str)
    ):
        raise AssertionError(f"{response.status_code} is not OpenWhisk's error shape: {body!r}")
    return None


CHECKS = [
    checks.not_a_server_error,
    openwhisk_error_shape,
    checks.status_code_conformance,  # the built-in checks resolve by name (the module's __getattr__)
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def aim_at_own_namespace(case: schemathesis.Case[Any], serial: int) -> None:
    """Most cases use the key's own namespace (``_``) so they reach the handlers; every
    ``KEEP_NS_EVERY``-th keeps the generated one (403, or odd bytes in the path). The entity name
    gets a prefix: only this test's entities are touched, and invokes find none."""
    params = case.path_parameters
    if params is None:
        return
    if "ns" in params and serial % KEEP_NS_EVERY:
        params["ns"] = "_"
    if "name" in params:
        params["name"] = (ABSENT if case.method.upper() == "POST" else CREATED) + str(params["name"])


# Built here, not fetched, so collection needs no stack (schemathesis' lazy fixture loader does
# not run under pytest 9.2); a test below checks the gateway serves this same document.
SETTINGS = load_settings()
schema = schemathesis.openapi.from_dict(openapi_document(SETTINGS))
schema.config.update(base_url=SETTINGS.api_host, basic_auth=(USER, KEY), request_timeout=30)


def test_gateway_serves_the_document(stack_up: Settings) -> None:
    served = httpx.get(f"{stack_up.api_host}{OPENAPI_PATH}", timeout=30)
    assert served.status_code == 200 and served.headers["content-type"].startswith("application/json")
    assert served.json()["paths"] == orjson.loads(orjson.dumps(openapi_document(stack_up)))["paths"]


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,  # the same cases on every run: a CI failure replays
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_fuzzed_requests_get_no_5xx_and_openwhisk_errors(case: schemathesis.Case[Any], couch: Any) -> None:
    if not BUDGET.allows(case.operation.label):
        pytest.skip(f"not fuzzed: the fuzz budget of {BUDGET_S:.0f} s ran out before this operation")
    aim_at_own_namespace(case, BUDGET.sent)
    response = case.call()
    BUDGET.sent += 1
    BUDGET.by_status[response.status_code] = BUDGET.by_status.get(response.status_code, 0) + 1
    case.validate_response(response, checks=CHECKS)


def assert_openwhisk_error(resp: httpx.Response, status: int) -> None:
    assert resp.status_code == status, resp.text[:200]
    body = resp.json()
    assert set(body) == {"error", "code"} and isinstance(body["error"], str)


def test_urls_and_headers_over_8kb_get_openwhisk_errors(stack_up: Settings, couch: Any) -> None:
    base = f"{stack_up.api_host}/api/v1/namespaces/_"
    with httpx.Client(base_url=base, auth=(USER, KEY), timeout=30) as http:
        assert_openwhisk_error(http.get("/actions/" + "a" * 9000), 414)
        assert_openwhisk_error(http.get("/activations", params={"name": "b" * 9000}), 414)
        assert_openwhisk_error(http.get("/actions", headers={"X-Big": "c" * 9000}), 431)
        assert http.get("/actions", params={"limit": 1}).status_code == 200  # and it still serves
