"""OpenWhisk's action environment on the real stack (issue 11 item 7).

An action reads its ``__OW_*`` variables and calls the platform back with its
``__OW_API_KEY`` through ``__OW_API_HOST``, with nothing but the standard library
(the runtime image has no OpenWhisk client): it lists its namespace's actions and
invokes another action. The key is a tenant key of its own namespace only (another
namespace and the admin routes refuse it), stops working when the activation ends,
and the container's environment holds no secret of the platform.
"""

from __future__ import annotations

import textwrap
from typing import Any

import docker
import httpx
import pytest

from gleaner.credentials import admin_credential, couchdb_login, guest_credential, redis_password
from gleaner.gateway_client import OpenWhiskClient
from gleaner.secrets_file import platform_secret_path, read_secret
from gleaner.settings import Settings
from tests.integration.conftest import TEST_AUTH, TEST_NAMESPACE

pytestmark = pytest.mark.integration

OW_NAMES = {
    "__OW_API_HOST",
    "__OW_API_KEY",
    "__OW_NAMESPACE",
    "__OW_ACTION_NAME",
    "__OW_ACTION_VERSION",
    "__OW_ACTIVATION_ID",
    "__OW_DEADLINE",
}
TIMEOUT_MS = 60_000

CALLER_CODE = """
import base64, json, os, urllib.error, urllib.request

BLOCKING = "blocking=true&result=true"

def call(method, path, body=None):
    key = os.environ.get("__OW_API_KEY", "")
    request = urllib.request.Request(
        os.environ["__OW_API_HOST"] + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": "Basic " + base64.b64encode(key.encode()).decode(),
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            return [answer.status, json.loads(answer.read())]
    except urllib.error.HTTPError as exc:
        return [exc.code, json.loads(exc.read() or b"null")]
    except OSError as exc:
        return [type(exc).__name__, str(exc)]

def main(args):
    ns = os.environ.get("__OW_NAMESPACE")
    listed = call("GET", "/api/v1/namespaces/%s/actions?limit=200" % ns)
    if listed[0] == 200:
        listed[1] = sorted(a["name"] for a in listed[1])
    return {
        "env": dict(os.environ),
        "listed": listed,
        "invoked": call("POST", "/api/v1/namespaces/_/actions/%s?%s" % (args["other"], BLOCKING), {"n": 41}),
        "other_namespace": call("GET", "/api/v1/namespaces/%s/actions" % args["foreign"])[0],
        "admin": call("GET", "/api/v1/admin/namespaces")[0],
    }
"""

CALLEE_CODE = """
def main(args):
    return {"n": args["n"] + 1}
"""


def deploy(ow: OpenWhiskClient, name: str, code: str, memory: int) -> None:
    body = {
        "exec": {"kind": "python:3", "code": textwrap.dedent(code)},
        "limits": {"cpu": 0.5, "memory": memory, "timeout": TIMEOUT_MS},
    }
    ow.put_action(name, body, overwrite=True)


def platform_secrets(settings: Settings) -> dict[str, str]:
    """Every secret of the platform a function must never see, by what it is."""
    found = {
        "redis password": redis_password(settings),
        "couchdb password": (couchdb_login(settings) or ("", ""))[1],
        "admin key": admin_credential(settings),
        "guest key": guest_credential(settings),
        "test namespace key": TEST_AUTH,
        "platform secret": settings.platform_secret or read_secret(platform_secret_path(settings)),
        "kafka password": settings.kafka_sasl_password,
    }
    out = {what: value for what, value in found.items() if value}
    # A key's secret alone counts as a leak too.
    out.update({f"{what} (secret part)": v.partition(":")[2] for what, v in found.items() if v and ":" in v})
    assert {"redis password", "admin key", "platform secret"} <= out.keys(), "the stack has its secrets"
    return out


def test_an_action_calls_the_platform_with_its_own_key(
    ow: OpenWhiskClient, stack_up: Settings, unique: str
) -> None:
    caller, callee = f"env-caller-{unique}", f"env-callee-{unique}"
    deploy(ow, callee, CALLEE_CODE, memory=128)
    deploy(ow, caller, CALLER_CODE, memory=256)
    status, record = ow.invoke(caller, {"other": callee, "foreign": "guest"}, blocking=True, result=False)
    assert status == 200 and record["response"]["statusCode"] == 0, record["response"]
    out: dict[str, Any] = record["response"]["result"]
    env: dict[str, str] = out["env"]
    ow_env = {k: v for k, v in env.items() if k.startswith("__OW_")}
    print("__OW_* of the run:", {k: (v if k != "__OW_API_KEY" else "<key>") for k, v in ow_env.items()})

    # OpenWhisk's variables, with this activation's values.
    assert ow_env.keys() == OW_NAMES
    assert ow_env["__OW_NAMESPACE"] == TEST_NAMESPACE
    assert ow_env["__OW_ACTION_NAME"] == f"/{TEST_NAMESPACE}/{caller}"
    assert ow_env["__OW_ACTION_VERSION"] == record["version"]
    assert ow_env["__OW_ACTIVATION_ID"] == record["activationId"]
    assert record["start"] + TIMEOUT_MS <= int(ow_env["__OW_DEADLINE"]) <= record["end"] + TIMEOUT_MS
    assert ow_env["__OW_API_HOST"].startswith("http://")
    if not stack_up.action_api_host:
        assert ow_env["__OW_API_HOST"].endswith(f":{stack_up.gateway_port}")
    key = ow_env["__OW_API_KEY"]
    assert key != TEST_AUTH  # minted for this activation: the namespace's own key is stored hashed

    # The key works for its namespace: listing and invoking, like the namespace's own key.
    assert out["listed"][0] == 200, out["listed"]
    assert {caller, callee} <= set(out["listed"][1])
    assert out["invoked"] == [200, {"n": 42}]
    # ...and for nothing else.
    assert out["other_namespace"] == 403
    assert out["admin"] == 403

    # Once the activation ended, the key is refused.
    gone = httpx.get(
        f"{stack_up.api_host}/api/v1/namespaces/_/actions", auth=tuple(key.split(":", 1)), timeout=30
    )
    assert gone.status_code == 401, gone.text

    # Nothing of the platform in the environment: no secret, no store address or setting.
    leaks = {
        what
        for what, secret in platform_secrets(stack_up).items()
        for name, value in env.items()
        if secret in value or secret in name
    }
    assert not leaks, leaks
    # The image's own variables are the image's (the workloads' image adds GLEANER_DIGITS_MODEL).
    image_env = image_variables(stack_up, record["gleaner"]["container"])
    assert not [
        n
        for n in env
        if n not in image_env
        and (n.startswith("__GLEANER") or "GLEANER" in n or "REDIS" in n or "KAFKA" in n or "COUCH" in n)
    ]


def image_variables(settings: Settings, container: str) -> set[str]:
    """The variable names the container's image sets (``docker image inspect``)."""
    client = docker.DockerClient(base_url=settings.docker_host) if settings.docker_host else docker.from_env()
    try:
        image = client.api.inspect_container(container)["Image"]
        return {item.partition("=")[0] for item in client.api.inspect_image(image)["Config"]["Env"] or []}
    finally:
        client.close()


def test_the_containers_own_environment_holds_the_api_host_and_no_platform_secret(
    ow: OpenWhiskClient, stack_up: Settings, unique: str
) -> None:
    """What Docker keeps for the container (``docker inspect``): the proxy's own secret (wiped
    inside before user code runs; tests/integration/test_security_containers.py) and the
    API host; none of the platform's secrets."""
    name = f"env-plain-{unique}"
    deploy(ow, name, CALLEE_CODE, memory=128)
    status, record = ow.invoke(name, {"n": 1}, blocking=True, result=False)
    assert status == 200 and record["response"]["result"] == {"n": 2}
    client = docker.DockerClient(base_url=stack_up.docker_host) if stack_up.docker_host else docker.from_env()
    try:
        config_env = client.api.inspect_container(record["gleaner"]["container"])["Config"]["Env"]
    finally:
        client.close()
    names = {item.partition("=")[0] for item in config_env}
    assert {"__GLEANER_PROXY_TOKEN", "__OW_API_HOST"} <= names
    assert not names & (OW_NAMES - {"__OW_API_HOST"})  # the rest comes per run, never at creation
    secrets = platform_secrets(stack_up)
    assert not {what for what, secret in secrets.items() for item in config_env if secret in item}
