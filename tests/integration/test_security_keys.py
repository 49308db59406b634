"""Keys, namespaces and the stores, tried as an attacker would (issue 10, items 1 and 4).

Every attempt fails, the platform keeps serving, and nothing of the victim is read or changed.
"""

from __future__ import annotations

import json
import stat
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from gleaner import credentials, subjects
from gleaner.cli.main import main as gleaner_main
from gleaner.couchdb import SUBJECTS, CouchDB
from gleaner.credentials import admin_credential, couchdb_login, guest_credential, secret_file, secrets_dir
from gleaner.settings import GUEST_AUTH, Settings
from tests.integration.conftest import TEST_AUTH, TEST_NAMESPACE

pytestmark = pytest.mark.integration
ADMIN = "/api/v1/admin/namespaces"
CODE = "def main(args):\n    return {'secret': 'of-the-victim'}\n"


def basic(credential: str) -> tuple[str, str]:
    user, _, key = credential.partition(":")
    return user, key


@pytest.fixture()
def admin(stack_up: Settings) -> Iterator[httpx.Client]:
    key = admin_credential(stack_up)
    assert key, "gleaner up writes the admin key into the state directory"
    with httpx.Client(base_url=stack_up.api_host, auth=basic(key), timeout=30) as client:
        yield client


@pytest.fixture()
def tenant(admin: httpx.Client) -> Iterator[tuple[str, str]]:
    """A fresh namespace and its key, deleted afterwards."""
    name = f"sec-{uuid.uuid4().hex[:8]}"
    resp = admin.put(f"{ADMIN}/{name}")
    assert resp.status_code == 200, resp.text
    yield name, resp.json()["auth"]
    admin.delete(f"{ADMIN}/{name}")


def actions_status(settings: Settings, credential: str, ns: str = "_") -> int:
    return httpx.get(
        f"{settings.api_host}/api/v1/namespaces/{ns}/actions", auth=basic(credential), timeout=30
    ).status_code


# --- the stores --------------------------------------------------------------------------------


def test_couchdb_refuses_anonymous_writes_reads_and_config(stack_up: Settings, couch: CouchDB) -> None:
    base, db = stack_up.couchdb_url, stack_up.db(SUBJECTS)
    forged = {"type": "namespace", "namespace": "mallory", "uuid": str(uuid.uuid4()), "key": "x"}
    attempts = [
        httpx.put(f"{base}/{db}/mallory", json=forged),
        httpx.post(f"{base}/{db}/_bulk_docs", json={"docs": [{"_id": "mallory2", **forged}]}),
        httpx.get(f"{base}/{db}/_all_docs"),
        httpx.get(f"{base}/{db}/{TEST_NAMESPACE}"),
        httpx.post(f"{base}/{db}/_find", json={"selector": {}}),
        httpx.get(f"{base}/_config"),
        httpx.put(f"{base}/_config/admins/mallory", content=b'"pw"'),
        httpx.put(f"{base}/mallory_db"),
        httpx.delete(f"{base}/{stack_up.db('whisks')}"),
        httpx.put(f"{base}/{db}/_security", json={}),
        httpx.get(f"{base}/{db}/_all_docs", auth=("gleaner", "guessed")),
    ]
    for resp in attempts:
        assert resp.status_code in (401, 403), (resp.request.method, resp.request.url, resp.text)
    assert couch.get_doc(SUBJECTS, "mallory") is None and couch.get_doc(SUBJECTS, "mallory2") is None
    assert httpx.get(f"{base}/mallory_db", auth=couchdb_login(stack_up)).status_code == 404
    assert couch.get_doc(SUBJECTS, TEST_NAMESPACE) is not None  # the platform's own login still works


def test_redis_refuses_clients_without_the_password(stack_up: Settings) -> None:
    for password in (None, "guessed"):
        client = redis.Redis.from_url(stack_up.redis_url, password=password, socket_timeout=3)
        with pytest.raises((redis.AuthenticationError, redis.ResponseError)):
            client.set("mallory", b"owned")
        with pytest.raises((redis.AuthenticationError, redis.ResponseError)):
            client.keys("*")
        client.close()
    from gleaner.redis_store import RedisStore

    store = RedisStore(stack_up)  # the platform's clients read the password
    assert store.ping() and store.get("mallory") is None
    store.close()


def test_secrets_are_owner_only_and_the_guest_key_is_not_the_public_one(stack_up: Settings) -> None:
    assert stat.S_IMODE(secrets_dir(stack_up).stat().st_mode) == 0o700
    for name in ("couchdb", "redis", "admin", "guest"):
        path = secret_file(stack_up, name)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    guest = guest_credential(stack_up)
    assert guest and guest != GUEST_AUTH
    assert actions_status(stack_up, GUEST_AUTH) == 401  # OpenWhisk's published key opens nothing
    assert actions_status(stack_up, guest) == 200


def test_keys_are_not_stored_in_plain_text(couch: CouchDB) -> None:
    secret = TEST_AUTH.partition(":")[2]
    docs = couch.call(couch.find(SUBJECTS, {}, limit=10_000))["docs"]
    assert docs and secret not in json.dumps(docs)
    key = couch.get_doc(SUBJECTS, subjects.key_id(TEST_AUTH.partition(":")[0]))
    assert key is not None and key["algo"] == "pbkdf2_sha256" and "key" not in key


# --- routes ------------------------------------------------------------------------------------


def test_invokers_need_a_key(stack_up: Settings) -> None:
    for path in ("/invokers", "/invokers/health"):
        url = stack_up.api_host + path
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, auth=basic(credentials.new_credential())).status_code == 401
        assert httpx.get(url, auth=basic(TEST_AUTH)).status_code == 200
    assert httpx.get(stack_up.api_host + "/ping").status_code == 200  # liveness stays open


def test_a_tenant_key_cannot_use_admin_routes(stack_up: Settings, couch: CouchDB) -> None:
    name = f"sec-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=stack_up.api_host, auth=basic(TEST_AUTH), timeout=30) as http:
        attempts = [
            http.get(ADMIN),
            http.put(f"{ADMIN}/{name}"),
            http.post(f"{ADMIN}/{TEST_NAMESPACE}/keys"),
            http.get(f"{ADMIN}/{TEST_NAMESPACE}/keys"),
            http.put(f"{ADMIN}/{TEST_NAMESPACE}/keys/{TEST_AUTH.partition(':')[0]}"),
            http.delete(f"{ADMIN}/{TEST_NAMESPACE}"),
        ]
    for resp in attempts:
        assert resp.status_code == 403 and set(resp.json()) == {"error", "code"}, resp.text
    assert httpx.get(stack_up.api_host + ADMIN).status_code == 401
    assert couch.get_doc(SUBJECTS, name) is None
    assert actions_status(stack_up, TEST_AUTH) == 200  # its key was neither rotated nor revoked


def test_the_admin_key_owns_no_namespace(stack_up: Settings) -> None:
    admin_key = admin_credential(stack_up)
    assert admin_key and actions_status(stack_up, admin_key) == 403


# --- revocation --------------------------------------------------------------------------------


def test_a_key_revoked_over_rest_is_refused_one_second_later(
    stack_up: Settings, admin: httpx.Client, tenant: tuple[str, str]
) -> None:
    name, key = tenant
    assert actions_status(stack_up, key) == 200
    resp = admin.delete(f"{ADMIN}/{name}/keys/{key.partition(':')[0]}")
    assert resp.status_code == 200 and resp.json()["revoked"] is True
    time.sleep(1.0)
    assert actions_status(stack_up, key) == 401


def test_a_key_revoked_elsewhere_is_refused_one_second_later(
    stack_up: Settings, couch: CouchDB, tenant: tuple[str, str]
) -> None:
    """Revoked behind the gateway's back (another gateway, or the store): its cache re-reads."""
    name, key = tenant
    assert actions_status(stack_up, key) == 200  # now cached by the gateway
    subjects.revoke_key(couch, name, key.partition(":")[0])
    time.sleep(1.0)
    assert actions_status(stack_up, key) == 401


def test_rotation_stops_the_old_secret(
    stack_up: Settings, admin: httpx.Client, tenant: tuple[str, str]
) -> None:
    name, old = tenant
    assert actions_status(stack_up, old) == 200
    new = admin.put(f"{ADMIN}/{name}/keys/{old.partition(':')[0]}").json()["auth"]
    time.sleep(1.0)
    assert actions_status(stack_up, old) == 401 and actions_status(stack_up, new) == 200


# --- namespaces stay apart ---------------------------------------------------------------------


def test_namespace_b_cannot_read_or_run_a_s_actions(stack_up: Settings, admin: httpx.Client) -> None:
    a, b = f"sec-a-{uuid.uuid4().hex[:6]}", f"sec-b-{uuid.uuid4().hex[:6]}"
    key_a, key_b = (admin.put(f"{ADMIN}/{n}").json()["auth"] for n in (a, b))
    api = f"{stack_up.api_host}/api/v1/namespaces"
    try:
        made = httpx.put(
            f"{api}/_/actions/vault", json={"exec": {"kind": "python:3", "code": CODE}}, auth=basic(key_a)
        )
        assert made.status_code == 200, made.text
        with httpx.Client(auth=basic(key_b), timeout=30) as mallory:
            assert mallory.get(f"{api}/{a}/actions/vault").status_code == 403
            assert mallory.get(f"{api}/{a}/actions").status_code == 403
            assert mallory.post(f"{api}/{a}/actions/vault", params={"blocking": "true"}).status_code == 403
            assert mallory.delete(f"{api}/{a}/actions/vault").status_code == 403
            assert mallory.get(f"{api}/_/actions/vault").status_code == 404  # its own namespace has none
            assert mallory.get(f"{api}/{a}/activations").status_code == 403
            assert "of-the-victim" not in mallory.get(f"{api}/_/actions").text
        still = httpx.get(f"{api}/_/actions/vault", auth=basic(key_a))
        assert still.status_code == 200 and "of-the-victim" in still.text
    finally:
        for n in (a, b):
            admin.delete(f"{ADMIN}/{n}")


# --- the admin CLI -----------------------------------------------------------------------------


def test_the_admin_cli_creates_rotates_revokes_and_deletes(
    stack_up: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"sec-cli-{uuid.uuid4().hex[:6]}"

    def run(*argv: str) -> str:
        capsys.readouterr()
        assert gleaner_main([*argv, "--apihost", stack_up.api_host]) == 0
        return capsys.readouterr().out.strip()

    first = run("namespace", "create", name)
    assert actions_status(stack_up, first) == 200
    assert name in run("namespace", "list")
    second = run("key", "create", name)
    assert sorted(run("key", "list", name).splitlines()[1:]) == sorted(
        k.partition(":")[0] for k in (first, second)
    )
    rotated = run("key", "rotate", name, first)
    run("key", "revoke", name, second)
    time.sleep(1.0)
    assert [actions_status(stack_up, k) for k in (first, second, rotated)] == [401, 401, 200]
    run("namespace", "delete", name)
    time.sleep(1.0)
    assert actions_status(stack_up, rotated) == 401
    assert name not in run("namespace", "list")
    assert gleaner_main(["namespace", "create", "_bad/name", "--apihost", stack_up.api_host]) == 1


def test_admin_routes_answer_bad_input_with_openwhisk_errors(
    stack_up: Settings, admin: httpx.Client, tenant: tuple[str, str]
) -> None:
    name, key = tenant
    cases = [
        (admin.put(f"{ADMIN}/_admin"), 400),  # the admin's own pseudo-namespace is no name
        (admin.put(f"{ADMIN}/{'x' * 300}"), 400),
        (admin.put(f"{ADMIN}/{name}"), 409),
        (admin.delete(f"{ADMIN}/sec-absent-{uuid.uuid4().hex[:6]}"), 404),
        (admin.post(f"{ADMIN}/sec-absent-{uuid.uuid4().hex[:6]}/keys"), 404),
        (admin.delete(f"{ADMIN}/{name}/keys/not-a-uuid"), 400),
        (admin.put(f"{ADMIN}/{name}/keys/{uuid.uuid4()}"), 404),
        (admin.delete(f"{ADMIN}/{TEST_NAMESPACE}/keys/{key.partition(':')[0]}"), 404),  # not that ns's key
    ]
    for resp, status in cases:
        assert resp.status_code == status, (resp.request.method, resp.request.url, resp.text)
        assert set(resp.json()) == {"error", "code"}
    assert actions_status(stack_up, key) == 200  # none of it touched the tenant
