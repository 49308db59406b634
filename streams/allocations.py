"""Per-function allocations decided for one DAG request, kept in Redis.

The predictor stream writes them before it publishes the request's plan; the
invoker reads them when it starts (or resizes) a function's container.
Key: ``gleaner:alloc:<request id>:<stage>:<index>``, with a TTL, so nothing
outlives the request by long.
"""

from __future__ import annotations

from typing import Any

import orjson

from gleaner.redis_store import RedisStore


def _key(request_id: str, stage: int, index: int) -> str:
    return f"gleaner:alloc:{request_id}:{stage}:{index}"


class AllocationStore:
    def __init__(self, store: RedisStore) -> None:
        self._store = store

    def write(self, request_id: str, allocations: dict[tuple[int, int], dict[str, Any]], ttl_s: int) -> None:
        if allocations:
            self._store.set_many(
                {_key(request_id, s, i): orjson.dumps(a) for (s, i), a in allocations.items()}, ttl_s
            )

    def read(self, request_id: str, stage: int, index: int) -> dict[str, Any] | None:
        raw = self._store.get(_key(request_id, stage, index))
        if raw is None:
            return None
        value = orjson.loads(raw)
        return value if isinstance(value, dict) else None
