"""In-memory stand-ins for Redis and CouchDB behind the same methods the
product calls, for handler unit tests (integration tests use the real ones)."""

from __future__ import annotations

from typing import Any

from gleaner.errors import CouchDBError, RedisError


class MemoryRedis:
    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.sorted: dict[str, dict[str, float]] = {}
        self.hashes: dict[str, dict[str, bytes]] = {}
        self.down = 0  # the next N calls fail

    def _call(self) -> None:
        if self.down:
            self.down -= 1
            raise RedisError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    def set_if_absent(self, key: str, value: bytes, ttl_s: int) -> bool:
        self._call()
        if key in self.values:
            return False
        self.values[key] = value
        return True

    def set(self, key: str, value: bytes, ttl_s: int) -> None:
        self._call()
        self.values[key] = value

    def replace_if_equal(self, key: str, expected: bytes, value: bytes, ttl_s: int) -> bool:
        self._call()
        if self.values.get(key) != expected:
            return False
        self.values[key] = value
        return True

    def set_many(self, items: dict[str, bytes], ttl_s: int) -> None:
        self._call()
        self.values.update(items)

    def get(self, key: str) -> bytes | None:
        self._call()
        return self.values.get(key)

    def delete(self, key: str) -> None:
        self._call()
        self.values.pop(key, None)

    def zadd(self, key: str, member: str, score: float) -> None:
        self._call()
        self.sorted.setdefault(key, {})[member] = score

    def zrem(self, key: str, member: str) -> None:
        self._call()
        self.sorted.get(key, {}).pop(member, None)

    def zrange_below(self, key: str, score: float, limit: int = 100) -> list[str]:
        self._call()
        members = sorted(self.sorted.get(key, {}).items(), key=lambda kv: kv[1])
        return [m for m, s in members if s <= score][:limit]

    def hset_many(self, key: str, fields: dict[str, bytes]) -> None:
        self._call()
        self.hashes.setdefault(key, {}).update(fields)

    def hdel(self, key: str, *fields: str) -> None:
        self._call()
        for field in fields:
            self.hashes.get(key, {}).pop(field, None)

    def hgetall(self, key: str) -> dict[str, bytes]:
        self._call()
        return dict(self.hashes.get(key, {}))

    def hlen(self, key: str) -> int:
        self._call()
        return len(self.hashes.get(key, {}))


class MemoryCouch:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, dict[str, Any]]] = {}
        self.down = 0

    def put(self, db: str, doc: dict[str, Any]) -> None:
        self.docs.setdefault(db, {})[doc["_id"]] = {"_rev": "1-a", **doc}

    def get_doc(self, db: str, doc_id: str) -> dict[str, Any] | None:
        if self.down:
            self.down -= 1
            raise CouchDBError("CouchDB is unreachable: connection refused")
        return self.docs.get(db, {}).get(doc_id)
