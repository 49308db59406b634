"""Per-activation API keys: the ``__OW_API_KEY`` an action gets.

OpenWhisk hands an action its namespace's own key. Gleaner stores namespace keys only
hashed (:mod:`gleaner.subjects`), so it cannot; instead the invoker mints a fresh
``uuid:secret`` for the activation's namespace when the activation starts, and revokes
it when the activation ends. The key is a tenant key of that namespace and nothing
more: never admin, never another namespace.

Storage: one Redis key per minted key, ``gleaner:activation-key:<uuid>`` holding the
namespace, the activation id, the SHA-256 of the secret and the expiry, with a Redis
TTL of the activation's deadline plus :data:`GRACE_MS` (an invoker that crashes
mid-run leaves nothing valid behind for long). Every gateway process reads the same
Redis, so each accepts the key the moment it is minted and refuses it the moment it
is revoked. The secret is 64 random letters and digits (~380 bits): a plain SHA-256
is enough to keep a Redis dump from holding usable keys, and costs microseconds
(the gateway checks it on every request; PBKDF2 would cost tens of milliseconds).

Only the gateway accepts them (functions reach nothing else of the platform: not Kafka,
whose consumers check namespace keys only).

Minted uuids are version-8 UUIDs (RFC 9562 "custom"), so the gateway sends only them
to Redis: other keys never pay for the look-up. ``uuid4`` namespace keys never collide
with them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import time
import uuid as uuidlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from gleaner.credentials import new_secret, redis_password
from gleaner.errors import RedisError
from gleaner.subjects import parse_credential

if TYPE_CHECKING:
    import redis.asyncio

    from gleaner.settings_sections import StoreSettings

PREFIX = "gleaner:activation-key:"
# Past the activation's deadline the key lives this much longer at most (the invoker
# normally revokes it at the end of the run; this bounds a crashed invoker's leftovers).
GRACE_MS = 5_000
_VERSION = 8


# --- pure logic -----------------------------------------------------------------------------


def new_uuid() -> str:
    """A random version-8 UUID: the mark of a minted key."""
    value = int.from_bytes(secrets.token_bytes(16), "big")
    value &= ~(0xF << 76)
    value |= _VERSION << 76  # version nibble
    value &= ~(0x3 << 62)
    value |= 0x2 << 62  # RFC 4122 variant
    return str(uuidlib.UUID(int=value))


def is_minted(uuid: str) -> bool:
    """Could ``uuid`` (canonical form) name a minted key? Cheap: no parsing beyond a string index."""
    return len(uuid) == 36 and uuid[14] == "8"


def redis_key(uuid: str) -> str:
    return PREFIX + uuid


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class MintedKey:
    uuid: str
    secret: str
    namespace: str
    activation_id: str
    expires_ms: int

    @property
    def credential(self) -> str:
        return f"{self.uuid}:{self.secret}"

    def record(self) -> bytes:
        return json.dumps(
            {
                "namespace": self.namespace,
                "activation_id": self.activation_id,
                "sha256": digest(self.secret),
                "expires_ms": self.expires_ms,
            },
            separators=(",", ":"),
        ).encode()

    def ttl_s(self, now_ms: int) -> int:
        return max(1, math.ceil((self.expires_ms - now_ms) / 1000))


def mint(namespace: str, activation_id: str, deadline_ms: int) -> MintedKey:
    return MintedKey(new_uuid(), new_secret(), namespace, activation_id, deadline_ms + GRACE_MS)


def namespace_of(raw: bytes | None, secret: str, now_ms: int) -> str | None:
    """The namespace a stored record grants ``secret``, or None (no record, wrong secret,
    expired, or a record this module did not write)."""
    if raw is None:
        return None
    try:
        record: Any = json.loads(raw)
        namespace, stored, expires = record["namespace"], record["sha256"], int(record["expires_ms"])
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(namespace, str) or not isinstance(stored, str):
        return None
    if not hmac.compare_digest(digest(secret), stored) or now_ms > expires:
        return None
    return namespace


def _now_ms() -> int:
    return int(time.time() * 1000)


# --- the invoker's side (sync) ------------------------------------------------------------------


class KeyStore(Protocol):
    """What :class:`ActivationKeys` needs of Redis (:class:`gleaner.redis_store.RedisStore`)."""

    def set(self, key: str, value: bytes, ttl_s: int) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def delete(self, key: str) -> None: ...


class ActivationKeys:
    """Mint, check and revoke per-activation keys in Redis. Raises RedisError."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store

    @classmethod
    def for_settings(cls, settings: StoreSettings) -> ActivationKeys:
        from gleaner.redis_store import RedisStore

        return cls(RedisStore(settings))

    def mint(self, namespace: str, activation_id: str, deadline_ms: int) -> MintedKey:
        key = mint(namespace, activation_id, deadline_ms)
        self.store.set(redis_key(key.uuid), key.record(), key.ttl_s(_now_ms()))
        return key

    def revoke(self, key: MintedKey) -> None:
        self.store.delete(redis_key(key.uuid))

    def namespace_for(self, credential: str) -> str | None:
        parsed = parse_credential(credential)
        if parsed is None or not is_minted(parsed[0]):
            return None
        uuid, secret = parsed
        return namespace_of(self.store.get(redis_key(uuid)), secret, _now_ms())


# --- the gateway's side (async) -----------------------------------------------------------------


class MintedKeyVerifier(Protocol):
    async def namespace_for(self, uuid: str, secret: str) -> str | None: ...


class AsyncActivationKeys:
    """The gateway's check of minted keys: one Redis GET, no cache (a revoked key must stop
    at once). The client is made on first use, inside the running event loop."""

    def __init__(self, settings: StoreSettings) -> None:
        self._settings = settings
        self._redis: redis.asyncio.Redis[bytes] | None = None

    def _client(self) -> redis.asyncio.Redis[bytes]:
        if self._redis is None:
            import redis.asyncio

            self._redis = redis.asyncio.Redis.from_url(
                self._settings.redis_url,
                password=redis_password(self._settings),
                socket_timeout=2,
                socket_connect_timeout=2,
            )
        return self._redis

    async def namespace_for(self, uuid: str, secret: str) -> str | None:
        import redis as redis_errors

        try:
            raw = await self._client().get(redis_key(uuid))
        except redis_errors.RedisError as exc:
            raise RedisError(f"Redis at {self._settings.redis_url} failed: {exc}") from exc
        return namespace_of(raw if isinstance(raw, bytes) else None, secret, _now_ms())
