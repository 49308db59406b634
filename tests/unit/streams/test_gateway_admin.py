"""The admin routes (streams/gateway/admin.py) in a real gateway app over an in-memory
CouchDB: only the admin key may call them, a secret is answered once when issued, and a
rotated, revoked or deleted key is refused by this gateway at once, not after its cache
ages (the cache here never ages on its own)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest

from gleaner import credentials, subjects
from gleaner.couchdb import AsyncCouchDB, Call
from gleaner.errors import Unauthorized
from gleaner.settings import Settings
from streams.gateway.admin import ADMIN_PREFIX, issued
from streams.gateway.app import Gateway
from streams.gateway.auth import Authenticator
from tests.unit.couch_fake import CouchStore, FakeCouch, _encode
from tests.unit.streams.gateway_server import ask

UUID = "00000000-0000-4000-8000-000000000001"


def basic(credential: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credential.encode()).decode()}


class NoMintedKeys:
    """No per-activation keys (their Redis look-up is not under test)."""

    async def namespace_for(self, uuid: str, secret: str) -> str | None:
        return None


class Stack:
    """A gateway whose CouchDB is ``store``, its admin key, and a tenant key of ``alice``."""

    def __init__(self) -> None:
        self.store = CouchStore()
        self.admin = credentials.new_credential()
        subjects.ensure_admin(FakeCouch(self.store), self.admin)
        self.alice = subjects.create_namespace(FakeCouch(self.store), "alice")

    def gateway(self) -> Gateway:
        async def call(c: Call) -> Any:
            return _encode(c, *self.store.answer(c))

        db = AsyncCouchDB(Settings())
        db.call = call  # type: ignore[method-assign,assignment]
        # A cache that never ages: a key refused below was dropped from it, not re-read.
        auth = Authenticator(db, cache=subjects.CredentialCache(revalidate_s=1e9), minted=NoMintedKeys())
        gateway = Gateway(Settings(), auth=auth, db=db)
        gateway.admin._db = FakeCouch(self.store)  # the admin routes' blocking client
        return gateway

    def keys_of(self, namespace: str) -> list[str]:
        return [k["uuid"] for k in subjects.list_keys(FakeCouch(self.store), namespace)]


@pytest.fixture()
def stack() -> Stack:
    return Stack()


def run(gateway: Gateway, *requests: tuple[str, str, dict[str, Any]]) -> list[httpx.Response]:
    return asyncio.run(ask(list(requests), gateway))


def test_issued_splits_the_uuid_off_the_credential() -> None:
    assert issued("alice", f"{UUID}:s3cret") == {"namespace": "alice", "uuid": UUID, "auth": f"{UUID}:s3cret"}


def test_a_tenant_key_or_none_is_refused_and_nothing_is_created(stack: Stack) -> None:
    calls_before = len(stack.store.calls)
    tenant, nobody = run(
        stack.gateway(),
        ("PUT", f"{ADMIN_PREFIX}/bob", {"headers": basic(stack.alice)}),
        ("PUT", f"{ADMIN_PREFIX}/bob", {}),
    )
    assert (tenant.status_code, nobody.status_code) == (403, 401)
    assert "error" in tenant.json() and "error" in nobody.json()
    assert "bob" not in [n["namespace"] for n in subjects.list_namespaces(FakeCouch(stack.store))]
    # The key checks read CouchDB; nothing was written.
    reads = stack.store.calls[calls_before:]
    assert reads and all(c.method == "GET" or c.path.endswith(("/_find", "/_all_docs")) for c in reads)


def test_the_admin_creates_a_namespace_whose_key_works_and_is_answered_once(stack: Stack) -> None:
    gateway = stack.gateway()
    created, listed, keys = run(
        gateway,
        ("PUT", f"{ADMIN_PREFIX}/bob", {"headers": basic(stack.admin)}),
        ("GET", ADMIN_PREFIX, {"headers": basic(stack.admin)}),
        ("GET", f"{ADMIN_PREFIX}/bob/keys", {"headers": basic(stack.admin)}),
    )
    assert created.status_code == 200
    body = created.json()
    assert body["namespace"] == "bob" and body["auth"].startswith(body["uuid"] + ":")
    assert asyncio.run(gateway.auth.namespace_for(basic(body["auth"])["Authorization"])) == "bob"
    assert {"alice", "bob"} <= {n["namespace"] for n in listed.json()}
    # The listing names the key; its secret was answered once, at creation.
    assert [k["uuid"] for k in keys.json()] == [body["uuid"]]
    assert body["auth"].split(":")[1] not in keys.text


def test_a_rotated_key_is_refused_at_once_and_the_new_one_works(stack: Stack) -> None:
    gateway = stack.gateway()
    (uuid,) = stack.keys_of("alice")
    header = basic(stack.alice)["Authorization"]
    assert asyncio.run(gateway.auth.namespace_for(header)) == "alice"  # now cached
    (rotated,) = run(gateway, ("PUT", f"{ADMIN_PREFIX}/alice/keys/{uuid}", {"headers": basic(stack.admin)}))
    assert rotated.status_code == 200 and rotated.json()["uuid"] == uuid
    assert rotated.json()["auth"] != stack.alice
    with pytest.raises(Unauthorized):
        asyncio.run(gateway.auth.namespace_for(header))
    assert asyncio.run(gateway.auth.namespace_for(basic(rotated.json()["auth"])["Authorization"])) == "alice"


def test_a_revoked_key_is_refused_at_once(stack: Stack) -> None:
    gateway = stack.gateway()
    (uuid,) = stack.keys_of("alice")
    header = basic(stack.alice)["Authorization"]
    assert asyncio.run(gateway.auth.namespace_for(header)) == "alice"
    (revoked,) = run(
        gateway, ("DELETE", f"{ADMIN_PREFIX}/alice/keys/{uuid}", {"headers": basic(stack.admin)})
    )
    assert revoked.json() == {"namespace": "alice", "uuid": uuid, "revoked": True}
    with pytest.raises(Unauthorized):
        asyncio.run(gateway.auth.namespace_for(header))
    assert stack.keys_of("alice") == []


def test_deleting_a_namespace_revokes_every_key_of_it_at_once(stack: Stack) -> None:
    gateway = stack.gateway()
    second = subjects.create_key(FakeCouch(stack.store), "alice")
    for credential in (stack.alice, second):
        assert asyncio.run(gateway.auth.namespace_for(basic(credential)["Authorization"])) == "alice"
    (deleted,) = run(gateway, ("DELETE", f"{ADMIN_PREFIX}/alice", {"headers": basic(stack.admin)}))
    body = deleted.json()
    assert body["namespace"] == "alice" and body["deleted"] is True
    assert sorted(body["revoked"]) == sorted(c.split(":")[0] for c in (stack.alice, second))
    for credential in (stack.alice, second):
        with pytest.raises(Unauthorized):
            asyncio.run(gateway.auth.namespace_for(basic(credential)["Authorization"]))


def test_a_malformed_uuid_or_namespace_is_a_400_and_an_unknown_key_a_404(stack: Stack) -> None:
    bad_uuid, bad_ns, unknown = run(
        stack.gateway(),
        ("DELETE", f"{ADMIN_PREFIX}/alice/keys/not-a-uuid", {"headers": basic(stack.admin)}),
        ("PUT", f"{ADMIN_PREFIX}/-bad", {"headers": basic(stack.admin)}),
        ("PUT", f"{ADMIN_PREFIX}/alice/keys/{UUID}", {"headers": basic(stack.admin)}),
    )
    assert (bad_uuid.status_code, bad_ns.status_code, unknown.status_code) == (400, 400, 404)
    assert stack.keys_of("alice") != []  # nothing was revoked on the way
