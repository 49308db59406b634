"""Basic auth with OpenWhisk API keys (``uuid:key``): tenant keys own one namespace each; the
admin key owns none and alone may use the admin routes (see gleaner.subjects)."""

from __future__ import annotations

import base64
import binascii

from gleaner.couchdb import AsyncCouchDB
from gleaner.errors import Forbidden, Unauthorized
from gleaner.subjects import ADMIN, TENANT, CredentialCache, Verified, verify_async

MISSING = "The resource requires authentication, which was not supplied with the request"
INVALID = "The supplied authentication is invalid"
NOT_ALLOWED = "The supplied authentication is not authorized to access this resource."


def parse_basic(header: str | None) -> tuple[str, str]:
    if not header or not header.startswith("Basic "):
        raise Unauthorized(MISSING)
    try:
        user, sep, key = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized(INVALID) from exc
    if not sep or not user or not key:
        raise Unauthorized(INVALID)
    return user, key


class Authenticator:
    """Maps a request's key to who it is. Verified keys are cached by digest and re-read
    every ``subjects.REVALIDATE_S``, so a revoked key stops within that time here too."""

    def __init__(self, db: AsyncCouchDB, cache: CredentialCache | None = None) -> None:
        self._db = db
        self.cache = cache or CredentialCache()

    async def _verified(self, header: str | None) -> Verified:
        user, key = parse_basic(header)
        entry = await verify_async(self._db, f"{user}:{key}", self.cache)
        if entry is None:
            raise Unauthorized(INVALID)
        return entry

    async def namespace_for(self, header: str | None) -> str:
        """The tenant's namespace; the admin key owns none (403)."""
        entry = await self._verified(header)
        if entry.role != TENANT:
            raise Forbidden(NOT_ALLOWED)
        return entry.namespace

    async def require_admin(self, header: str | None) -> None:
        if (await self._verified(header)).role != ADMIN:
            raise Forbidden(NOT_ALLOWED)

    async def require_any(self, header: str | None) -> str:
        """Any valid key, tenant or admin (read-only operational routes); return its role."""
        return (await self._verified(header)).role
