"""Basic auth with OpenWhisk API keys (``uuid:key``), one subject per namespace."""

from __future__ import annotations

import base64
import binascii
import time

from gleaner.couchdb import SUBJECTS, AsyncCouchDB
from gleaner.errors import Unauthorized

_TTL_S = 30.0


def parse_basic(header: str | None) -> tuple[str, str]:
    if not header or not header.startswith("Basic "):
        raise Unauthorized("The resource requires authentication, which was not supplied with the request")
    try:
        user, sep, key = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("The supplied authentication is invalid") from exc
    if not sep or not user or not key:
        raise Unauthorized("The supplied authentication is invalid")
    return user, key


class Authenticator:
    """Maps an API key to its namespace; answers are cached briefly."""

    def __init__(self, db: AsyncCouchDB) -> None:
        self._db = db
        self._cache: dict[tuple[str, str], tuple[float, str]] = {}

    async def namespace_for(self, header: str | None) -> str:
        uuid, key = parse_basic(header)
        hit = self._cache.get((uuid, key))
        if hit and time.monotonic() - hit[0] < _TTL_S:
            return hit[1]
        found = await self._db.call(self._db.find(SUBJECTS, {"uuid": uuid}, limit=5))
        for doc in found["docs"]:
            if doc.get("key") == key:
                self._cache[(uuid, key)] = (time.monotonic(), doc["namespace"])
                return str(doc["namespace"])
        raise Unauthorized("The supplied authentication is invalid")
