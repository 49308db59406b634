"""Who may call what: tenant keys, the admin key, and none (streams.gateway.auth)."""

from __future__ import annotations

import asyncio
import base64

import pytest

from gleaner import credentials, subjects
from gleaner.errors import Forbidden, Unauthorized
from streams.gateway.auth import Authenticator
from streams.gateway.openapi import OPENAPI_PATH
from tests.unit.couch_fake import CouchStore, FakeAsyncCouch, FakeCouch
from tests.unit.streams.test_gateway_app import ask


def basic(credential: str) -> str:
    return "Basic " + base64.b64encode(credential.encode()).decode()


@pytest.fixture()
def keys() -> tuple[Authenticator, str, str]:
    store = CouchStore()
    db = FakeCouch(store)
    tenant = subjects.create_namespace(db, "alice")
    admin = credentials.new_credential()
    subjects.ensure_admin(db, admin)
    return Authenticator(FakeAsyncCouch(store)), tenant, admin


def test_a_tenant_key_maps_to_its_namespace_and_cannot_act_as_admin(
    keys: tuple[Authenticator, str, str],
) -> None:
    auth, tenant, _ = keys
    assert asyncio.run(auth.namespace_for(basic(tenant))) == "alice"
    assert asyncio.run(auth.require_any(basic(tenant))) == subjects.TENANT
    with pytest.raises(Forbidden):
        asyncio.run(auth.require_admin(basic(tenant)))


def test_the_admin_key_owns_no_namespace(keys: tuple[Authenticator, str, str]) -> None:
    auth, _, admin = keys
    asyncio.run(auth.require_admin(basic(admin)))
    assert asyncio.run(auth.require_any(basic(admin))) == subjects.ADMIN
    with pytest.raises(Forbidden):
        asyncio.run(auth.namespace_for(basic(admin)))


@pytest.mark.parametrize(
    "header", [None, "Bearer x", "Basic !!!", basic("nocolon"), basic(f"{credentials.new_credential()}")]
)
def test_missing_or_unknown_keys_are_401(keys: tuple[Authenticator, str, str], header: str | None) -> None:
    auth, _, _ = keys
    for check in (auth.namespace_for, auth.require_admin, auth.require_any):
        with pytest.raises(Unauthorized):
            asyncio.run(check(header))


def test_operational_and_admin_routes_refuse_requests_without_a_key() -> None:
    paths = [
        ("GET", "/invokers"),
        ("GET", "/invokers/health"),
        ("GET", "/api/v1/admin/namespaces"),
        ("PUT", "/api/v1/admin/namespaces/x"),
        ("DELETE", "/api/v1/admin/namespaces/x/keys/00000000-0000-0000-0000-000000000001"),
    ]
    answers = asyncio.run(
        ask([(m, p, {}) for m, p in paths] + [("GET", "/ping", {}), ("GET", OPENAPI_PATH, {})])
    )
    for (method, path), resp in zip(paths, answers, strict=False):
        assert resp.status_code == 401, (method, path, resp.text)
        assert set(resp.json()) == {"error", "code"}
    assert [r.status_code for r in answers[-2:]] == [200, 200]  # /ping and the document stay open
