"""A small cache whose entries expire, for entity documents read on the hot path.

A CouchDB read costs ~4 ms on pouchdb-server; entities change rarely, and a
writer invalidates its own copy at once, so other replicas may serve a
stale entity for at most ``ttl_s``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from gleaner.errors import ServiceError

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(self, ttl_s: float, max_entries: int = 4096, store_down_s: float = 5.0) -> None:
        self.ttl_s = ttl_s
        self.store_down_s = store_down_s
        self._max = max_entries
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._store_down_until = 0.0  # after a failed load, stale copies are served without asking

    def get(self, key: K) -> V | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        if time.monotonic() - hit[0] >= self.ttl_s:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return hit[1]

    def put(self, key: K, value: V) -> None:
        self._items[key] = (time.monotonic(), value)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    def get_or_load(self, key: K, load: Callable[[], V | None]) -> V | None:
        """The cached value, else ``load()``; a missing entity (None) is not cached.
        When ``load`` fails because its store is away (:class:`ServiceError`), an
        expired copy is served if there is one: stale beats stalled."""
        stale = self._items.get(key)
        value = self.get(key)
        if value is None:
            if stale is not None and time.monotonic() < self._store_down_until:
                self.put(key, stale[1])  # the store just failed us: do not wait on it for every key
                return stale[1]
            try:
                value = load()
            except ServiceError:
                self._store_down_until = time.monotonic() + self.store_down_s
                if stale is None:
                    raise
                self.put(key, stale[1])  # re-armed: the next reads do not wait on the store again
                return stale[1]
            if value is not None:
                self.put(key, value)
        return value

    def pop(self, key: K) -> None:
        self._items.pop(key, None)
