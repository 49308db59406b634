"""Values that travel by reference.

Inputs and outputs above ``inline_payload_bytes`` never ride in Kafka: they go
to the data store (Redis, with a TTL) and the event carries a reference
``{"$gleaner_ref": "<key>", "size": <bytes>}``. The invoker resolves
references in a function's input (at the top level and inside a fan-in's
``value`` list) and offloads a large result, so functions only ever see
plain dicts.
"""

from __future__ import annotations

from typing import Any

import orjson

from gleaner.errors import BadRequest
from gleaner.redis_store import RedisStore

REF = "$gleaner_ref"
_PREFIX = "gleaner:data:"


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get(REF), str)


def size_of(value: Any) -> int:
    """Serialized size in bytes; a reference counts as the size of what it names."""
    if is_ref(value):
        return int(value.get("size", 0))
    if isinstance(value, dict) and isinstance(value.get("value"), list):
        inner = value["value"]
        if any(is_ref(v) for v in inner):
            rest = {k: v for k, v in value.items() if k != "value"}
            return len(orjson.dumps(rest)) + sum(size_of(v) for v in inner)
    return len(orjson.dumps(value))


class DataStore:
    def __init__(self, store: RedisStore, threshold_bytes: int, ttl_s: int) -> None:
        self._store = store
        self.threshold = threshold_bytes
        self._ttl = ttl_s

    def offload(self, key: str, value: dict[str, Any]) -> dict[str, Any]:
        """``value`` itself when small, else a reference to it in the store."""
        raw = orjson.dumps(value)
        if len(raw) <= self.threshold:
            return value
        self._store.set(_PREFIX + key, raw, self._ttl)
        return {REF: key, "size": len(raw)}

    def fetch(self, ref: dict[str, Any]) -> Any:
        raw = self._store.get(_PREFIX + ref[REF])
        if raw is None:
            raise BadRequest(f"data {ref[REF]} expired or never existed (TTL {self._ttl}s)")
        return orjson.loads(raw)

    def resolve(self, value: Any) -> Any:
        """Replace references at the top level and inside a ``value`` list."""
        if is_ref(value):
            return self.resolve(self.fetch(value))
        if isinstance(value, dict):
            inner = value.get("value")
            if isinstance(inner, list) and any(is_ref(v) for v in inner):
                return {**value, "value": [self.fetch(v) if is_ref(v) else v for v in inner]}
        return value
