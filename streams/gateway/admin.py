"""Admin routes: namespaces and their keys (what ``wskadmin user`` does in OpenWhisk).

Only the admin key may call them (tenant keys get 403). A secret is answered
once, when it is issued; CouchDB keeps only its hash. Revoking here drops the
key from this gateway's cache at once; other gateways re-read it within
``gleaner.subjects.REVALIDATE_S``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from gleaner import subjects
from gleaner.couchdb import CouchDB
from gleaner.settings_sections import StoreSettings
from streams.gateway.auth import Authenticator
from streams.gateway.http import json_response

ADMIN_PREFIX = "/api/v1/admin/namespaces"
T = TypeVar("T")


def issued(namespace: str, credential: str) -> dict[str, str]:
    uuid, _, _ = credential.partition(":")
    return {"namespace": namespace, "uuid": uuid, "auth": credential}


class AdminRoutes:
    def __init__(self, stores: StoreSettings, auth: Authenticator) -> None:
        self.stores = stores
        self.auth = auth
        self._db: CouchDB | None = None
        self._lock = threading.Lock()

    def register(self, app: web.Application) -> None:
        one = ADMIN_PREFIX + "/{namespace}"
        app.router.add_get(ADMIN_PREFIX, self.list_namespaces)
        app.router.add_put(one, self.create_namespace)
        app.router.add_delete(one, self.delete_namespace)
        app.router.add_get(one + "/keys", self.list_keys)
        app.router.add_post(one + "/keys", self.create_key)
        app.router.add_put(one + "/keys/{uuid}", self.rotate_key)
        app.router.add_delete(one + "/keys/{uuid}", self.revoke_key)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    async def _run(self, request: web.Request, op: Callable[..., T], *args: Any) -> T:
        """Check the admin key, then run a (blocking, rare) subjects operation off the loop."""
        await self.auth.require_admin(request.headers.get("Authorization"))
        with self._lock:
            if self._db is None:
                self._db = CouchDB(self.stores)
        return await asyncio.to_thread(op, self._db, *args)

    async def list_namespaces(self, request: web.Request) -> web.Response:
        return json_response(await self._run(request, subjects.list_namespaces))

    async def create_namespace(self, request: web.Request) -> web.Response:
        ns = request.match_info["namespace"]
        return json_response(issued(ns, await self._run(request, subjects.create_namespace, ns)))

    async def delete_namespace(self, request: web.Request) -> web.Response:
        ns = request.match_info["namespace"]
        revoked = await self._run(request, subjects.delete_namespace, ns)
        for uuid in revoked:
            self.auth.cache.drop_uuid(uuid)
        return json_response({"namespace": ns, "deleted": True, "revoked": revoked})

    async def list_keys(self, request: web.Request) -> web.Response:
        ns = request.match_info["namespace"]
        return json_response(await self._run(request, subjects.list_keys, ns))

    async def create_key(self, request: web.Request) -> web.Response:
        ns = request.match_info["namespace"]
        return json_response(issued(ns, await self._run(request, subjects.create_key, ns)))

    async def rotate_key(self, request: web.Request) -> web.Response:
        ns, uuid = request.match_info["namespace"], request.match_info["uuid"]
        credential = await self._run(request, subjects.rotate_key, ns, uuid)
        self.auth.cache.drop_uuid(subjects.check_uuid(uuid))
        return json_response(issued(ns, credential))

    async def revoke_key(self, request: web.Request) -> web.Response:
        ns, uuid = request.match_info["namespace"], request.match_info["uuid"]
        await self._run(request, subjects.revoke_key, ns, uuid)
        self.auth.cache.drop_uuid(subjects.check_uuid(uuid))
        return json_response({"namespace": ns, "uuid": subjects.check_uuid(uuid), "revoked": True})
