"""The gateway accepts a key minted for one activation (gleaner.activation_keys) as a
tenant key of that activation's namespace, and only while it lives."""

from __future__ import annotations

import asyncio
import base64

import pytest

from gleaner import credentials, subjects
from gleaner.activation_keys import ActivationKeys, new_uuid
from gleaner.errors import Forbidden, Unauthorized
from streams.gateway.auth import Authenticator
from tests.unit.couch_fake import CouchStore, FakeAsyncCouch, FakeCouch
from tests.unit.fakes import MemoryRedis

FAR = 4_102_444_800_000


def basic(credential: str) -> str:
    return "Basic " + base64.b64encode(credential.encode()).decode()


class MemoryVerifier:
    """The gateway's Redis look-up over the invoker's in-memory store."""

    def __init__(self, keys: ActivationKeys) -> None:
        self.keys = keys
        self.asked = 0

    async def namespace_for(self, uuid: str, secret: str) -> str | None:
        self.asked += 1
        return self.keys.namespace_for(f"{uuid}:{secret}")


@pytest.fixture()
def setup() -> tuple[Authenticator, ActivationKeys, MemoryVerifier, CouchStore]:
    store = CouchStore()
    subjects.create_namespace(FakeCouch(store), "alice")
    keys = ActivationKeys(MemoryRedis())
    verifier = MemoryVerifier(keys)
    return Authenticator(FakeAsyncCouch(store), minted=verifier), keys, verifier, store


def test_a_live_minted_key_is_its_namespaces_tenant_and_never_admin(setup) -> None:
    auth, keys, _, _ = setup
    key = keys.mint("alice", "a" * 32, FAR)
    assert asyncio.run(auth.namespace_for(basic(key.credential))) == "alice"
    assert asyncio.run(auth.require_any(basic(key.credential))) == subjects.TENANT
    with pytest.raises(Forbidden):
        asyncio.run(auth.require_admin(basic(key.credential)))


def test_a_revoked_or_wrong_minted_key_is_refused_at_once(setup) -> None:
    auth, keys, _, _ = setup
    key = keys.mint("alice", "a" * 32, FAR)
    assert asyncio.run(auth.namespace_for(basic(key.credential))) == "alice"
    keys.revoke(key)  # no cache in between: the next request is refused
    for credential in (key.credential, f"{key.uuid}:wrong", f"{new_uuid()}:{key.secret}"):
        with pytest.raises(Unauthorized):
            asyncio.run(auth.namespace_for(basic(credential)))


def test_namespace_keys_never_touch_the_minted_store(setup) -> None:
    auth, _, verifier, store = setup
    tenant = subjects.create_key(FakeCouch(store), "alice")
    assert asyncio.run(auth.namespace_for(basic(tenant))) == "alice"
    assert verifier.asked == 0


def test_a_stored_key_that_looks_minted_still_works(setup) -> None:
    auth, _, verifier, store = setup
    credential = f"{new_uuid()}:{credentials.new_secret()}"
    subjects.ensure_subject(FakeCouch(store), "alice", credential)
    assert asyncio.run(auth.namespace_for(basic(credential))) == "alice"
    assert verifier.asked == 1


def test_the_gateways_own_authenticator_accepts_minted_keys() -> None:
    # The gateway wires the Redis verifier in; without it every __OW_API_KEY would be a 401.
    from gleaner.activation_keys import AsyncActivationKeys
    from gleaner.settings import Settings
    from streams.gateway.app import Gateway

    assert isinstance(Gateway(Settings()).auth.minted, AsyncActivationKeys)
