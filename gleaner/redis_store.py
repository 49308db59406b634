"""The one boundary to Redis. Errors are wrapped as :class:`RedisError`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis

from gleaner.credentials import redis_password
from gleaner.errors import RedisError
from gleaner.settings_sections import StoreSettings


def connect(settings: StoreSettings, **kwargs: Any) -> redis.Redis[bytes]:
    """A client for ``settings.redis_url`` with its password (the URL's, the setting's, or the
    embedded server's)."""
    password = redis_password(settings)
    if password is not None and not urlsplit(settings.redis_url).password:
        kwargs["password"] = password
    return redis.Redis.from_url(settings.redis_url, **kwargs)


# Compare-and-set in one server-side step: a read then a write would let another client
# change the key in between.
_REPLACE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


class RedisStore:
    def __init__(self, settings: StoreSettings) -> None:
        self._url = settings.redis_url
        self._redis = connect(settings, socket_timeout=2, socket_connect_timeout=2)

    def _wrap(self, exc: Exception) -> RedisError:
        return RedisError(f"Redis at {self._url} failed: {exc}")

    def set_if_absent(self, key: str, value: bytes, ttl_s: int) -> bool:
        try:
            return bool(self._redis.set(key, value, nx=True, ex=ttl_s))
        except redis.RedisError as exc:
            raise self._wrap(exc) from exc

    def set(self, key: str, value: bytes, ttl_s: int) -> None:
        try:
            self._redis.set(key, value, ex=ttl_s)
        except redis.RedisError as exc:
            raise self._wrap(exc) from exc

    def replace_if_equal(self, key: str, expected: bytes, value: bytes, ttl_s: int) -> bool:
        """Set ``key`` to ``value`` only while it still holds ``expected`` (one atomic step);
        whether it was set."""
        try:
            answer: Any = self._redis.eval(_REPLACE_IF_EQUAL, 1, key, expected, value, ttl_s)  # type: ignore[no-untyped-call]
            return bool(answer)
        except redis.RedisError as exc:
            raise self._wrap(exc) from exc

    def set_many(self, items: dict[str, bytes], ttl_s: int) -> None:
        try:
            pipe = self._redis.pipeline(transaction=False)
            for key, value in items.items():
                pipe.set(key, value, ex=ttl_s)
            pipe.execute()
        except redis.RedisError as exc:
            raise self._wrap(exc) from exc

    def get(self, key: str) -> bytes | None:
        try:
            value: Any = self._redis.get(key)
        except redis.RedisError as exc:
            raise self._wrap(exc) from exc
        return value if isinstance(value, bytes) else None

    def delete(self, key: str) -> None:
        try:
            self._redis.delete(key)
        except redis.RedisError as exc:
            raise self._wrap(exc) from exc

    def zadd(self, key: str, member: str, score: float) -> None:
        try:
            self._redis.zadd(key, {member: score})
        except redis.RedisError as exc:
            raise self._wrap(exc) from exc

    def zrem(self, key: str, member: str) -> None:
        try:
            self._redis.zrem(key, member)
        except redis.RedisError as exc:
            raise self._wrap(exc) from exc

    def zrange_below(self, key: str, score: float, limit: int = 100) -> list[str]:
        try:
            members: Any = self._redis.zrangebyscore(key, "-inf", score, start=0, num=limit)
        except redis.RedisError as exc:
            raise self._wrap(exc) from exc
        return [m.decode() for m in members]

    def hset_many(self, key: str, fields: dict[str, bytes]) -> None:
        """Set ``fields`` of the hash ``key`` in one round trip."""
        if not fields:
            return
        try:
            self._redis.hset(key, mapping=fields)  # type: ignore[arg-type]
        except redis.RedisError as exc:
            raise self._wrap(exc) from exc

    def hdel(self, key: str, *fields: str) -> None:
        if not fields:
            return
        try:
            self._redis.hdel(key, *fields)
        except redis.RedisError as exc:
            raise self._wrap(exc) from exc

    def hgetall(self, key: str) -> dict[str, bytes]:
        try:
            raw: Any = self._redis.hgetall(key)
        except redis.RedisError as exc:
            raise self._wrap(exc) from exc
        return {k.decode(): v for k, v in raw.items()}

    def hlen(self, key: str) -> int:
        try:
            return int(self._redis.hlen(key))
        except redis.RedisError as exc:
            raise self._wrap(exc) from exc

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except redis.RedisError as exc:
            raise self._wrap(exc) from exc

    def close(self) -> None:
        self._redis.close()
