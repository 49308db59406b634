"""Basic auth with OpenWhisk API keys (``uuid:key``): tenant keys own one namespace each; the
admin key owns none and alone may use the admin routes (see gleaner.subjects). A key an
invoker minted for one activation (``__OW_API_KEY``, gleaner.activation_keys) is a tenant
key of that activation's namespace while the activation runs."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from gleaner.activation_keys import MintedKeyVerifier, is_minted
from gleaner.couchdb import AsyncCouchDB
from gleaner.errors import Forbidden, Unauthorized
from gleaner.subjects import ADMIN, TENANT, CredentialCache, Verified, parse_credential, verify_async

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

    def __init__(
        self,
        db: AsyncCouchDB,
        cache: CredentialCache | None = None,
        minted: MintedKeyVerifier | None = None,
    ) -> None:
        self._db = db
        self.cache = cache or CredentialCache()
        self.minted = minted  # per-activation keys (Redis); None: only stored keys are valid

    async def _verified(self, header: str | None) -> Verified:
        user, key = parse_basic(header)
        credential = f"{user}:{key}"
        entry = await self._minted(credential)
        if entry is None:
            entry = await verify_async(self._db, credential, self.cache)
        if entry is None:
            raise Unauthorized(INVALID)
        return entry

    async def _minted(self, credential: str) -> Verified | None:
        """A live per-activation key as a tenant entry; None for any other key (checked
        against CouchDB next, so a stored key that happens to look minted still works)."""
        parsed = parse_credential(credential)
        if self.minted is None or parsed is None or not is_minted(parsed[0]):
            return None
        uuid, secret = parsed
        namespace = await self.minted.namespace_for(uuid, secret)
        return Verified(uuid, namespace, TENANT, "", 0.0) if namespace is not None else None

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


async def request_namespace(auth: Authenticator, request: web.Request) -> str:
    """The caller's namespace, when the path's ``{ns}`` is it or ``_`` (403 otherwise)."""
    own = await auth.namespace_for(request.headers.get("Authorization"))
    if request.match_info.get("ns", "_") not in ("_", own):
        raise Forbidden(NOT_ALLOWED)
    return own
