"""Where compositions live between events: Redis.

Why Redis and not a Faust table: the gateway and operators read a request's
progress from it, Redis already holds the data passed between functions and
(later) the harvested allocations, and a restarted stream needs no changelog
replay before it can work. Requests and their completions are keyed by the
request id and read by one consumer group with range assignment, so a
request's events are always handled by one member, one at a time: each
request has a single writer and needs no locking.
"""

from __future__ import annotations

import orjson

from composer.statemachine import RequestState
from gleaner.redis_store import RedisStore

_TTL_S = 7 * 24 * 3600


def _key(request_id: str) -> str:
    return f"gleaner:dag:request:{request_id}"


def _deadlines(partition: int) -> str:
    return f"gleaner:dag:deadlines:{partition}"


class CompositionStore:
    def __init__(self, store: RedisStore) -> None:
        self._store = store

    def load(self, request_id: str) -> tuple[RequestState, dict[str, object]] | None:
        raw = self._store.get(_key(request_id))
        if raw is None:
            return None
        data = orjson.loads(raw)
        return RequestState.from_dict(data["state"]), data["dag"]

    def save(self, state: RequestState, dag: dict[str, object], partition: int) -> None:
        self._store.set(_key(state.request_id), orjson.dumps({"state": state.to_dict(), "dag": dag}), _TTL_S)
        if state.status == "running":
            self._store.zadd(_deadlines(partition), state.request_id, state.deadline_ms)
        else:
            self._store.zrem(_deadlines(partition), state.request_id)

    def expired(self, partition: int, now_ms: int) -> list[str]:
        return self._store.zrange_below(_deadlines(partition), now_ms)

    def running(self, partitions: int, limit: int) -> list[tuple[RequestState, dict[str, object]]]:
        """Requests still running (their deadlines are pending), at most ``limit`` per
        partition; for operators (the dashboard), so a request that ends meanwhile is skipped."""
        found = []
        for partition in range(partitions):
            for request_id in self._store.zrange_below(_deadlines(partition), float("inf"), limit):
                loaded = self.load(request_id)
                if loaded is not None and loaded[0].status == "running":
                    found.append(loaded)
        return found
