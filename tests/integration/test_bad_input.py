"""Every interface answers bad input with OpenWhisk's error JSON and the right status."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import TEST_AUTH, TEST_NAMESPACE

pytestmark = pytest.mark.integration
CODE = "def main(args):\n    return args\n"


@pytest.fixture(scope="module")
def http(stack_up, couch):
    user, _, key = TEST_AUTH.partition(":")
    with httpx.Client(base_url=f"{stack_up.api_host}/api/v1/namespaces/_", auth=(user, key), timeout=30) as c:
        c.put(
            "/actions/echo-bad",
            params={"overwrite": "true"},
            json={"exec": {"kind": "python:3", "code": CODE}},
        )
        yield c


def assert_error(resp: httpx.Response, status: int, fragment: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "code"} and fragment.lower() in body["error"].lower()
    assert len(body["code"]) == 32


def test_unknown_action_is_404(http):
    assert_error(http.post("/actions/nope-nope", params={"blocking": "true"}, json={}), 404, "does not exist")
    assert_error(http.get("/actions/nope-nope"), 404, "does not exist")
    assert_error(http.get("/activations/" + "0" * 32), 404, "does not exist")


def test_malformed_bodies_are_400(http):
    assert_error(
        http.put("/actions/x1", params={"overwrite": "true"}, content=b"{not json"), 400, "malformed"
    )
    assert_error(http.post("/actions/echo-bad", content=b"[1, 2]"), 400, "JSON object")
    assert_error(
        http.put("/actions/x1", json={"exec": {"kind": "cobol:1", "code": CODE}}), 400, "not supported"
    )
    assert_error(
        http.put("/actions/x1", json={"exec": {"kind": "python:3", "code": CODE}, "limits": {"memory": 10}}),
        400,
        "memory limit",
    )
    assert_error(
        http.put("/actions/x1", json={"exec": {"kind": "python:3", "code": CODE}, "limits": {"cpu": 99}}),
        400,
        "cpu limit",
    )
    assert_error(
        http.put("/actions/x1", json={"exec": {"kind": "python:3", "code": CODE}, "limits": {"timeout": 1}}),
        400,
        "timeout",
    )
    assert_error(http.post("/actions/echo-bad", params={"blocking": "maybe"}, json={}), 400, "true or false")
    assert_error(http.get("/activations", params={"limit": "lots"}), 400, "integer")


def test_payload_over_the_limit_is_413(http, stack_up):
    big = {"blob": "x" * (stack_up.max_payload_bytes + 10)}
    assert_error(
        http.post("/actions/echo-bad", params={"blocking": "true"}, json=big), 413, "maximum allowed"
    )


def test_auth_errors(stack_up, couch):
    base = f"{stack_up.api_host}/api/v1/namespaces"
    assert_error(httpx.get(f"{base}/_/actions"), 401, "requires authentication")
    assert_error(httpx.get(f"{base}/_/actions", auth=("nobody", "wrong")), 401, "invalid")
    user, _, key = TEST_AUTH.partition(":")
    assert_error(httpx.get(f"{base}/guest/actions", auth=(user, key)), 403, "not authorized")
    ok = httpx.get(f"{base}/{TEST_NAMESPACE}/actions", auth=(user, key))
    assert ok.status_code == 200


def test_gateway_keeps_serving_after_bad_input(http):
    for _ in range(3):
        http.post("/actions/echo-bad", content=b"\xff\xfe")
    resp = http.post("/actions/echo-bad", params={"blocking": "true", "result": "true"}, json={"still": "up"})
    assert resp.status_code == 200 and resp.json() == {"still": "up"}


def test_deep_json_and_huge_integers_get_openwhisk_errors_not_500(http):
    deep: object = {}
    for _ in range(300):
        deep = {"a": deep}
    assert_error(http.post("/actions/echo-bad", json=deep), 400, "deeper than")
    assert_error(http.get("/activations", params={"skip": str(2**70)}), 400, "must be between")
    assert_error(http.get("/activations", params={"since": str(2**64)}), 400, "must be between")


def test_one_name_rule_a_non_ascii_action_name_is_refused_over_rest(http):
    resp = http.put("/actions/rel-é", json={"exec": {"kind": "python:3", "code": CODE}})
    assert_error(resp, 400, "not valid")
