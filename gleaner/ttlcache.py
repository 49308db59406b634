"""A small cache whose entries expire, for entity documents read on the hot path.

A CouchDB read costs ~4 ms on pouchdb-server; entities change rarely, and a
writer invalidates its own copy at once, so other replicas may serve a
stale entity for at most ``ttl_s``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

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


class ByRevision:
    """Documents kept by (id, revision), so a request that carries the revision it was
    accepted with runs that very version, read and parsed once per version in a process
    (not again per request). Bounded: the oldest version seen goes first."""

    def __init__(self, max_versions: int = 1024) -> None:
        self._max = max_versions
        self._docs: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def get(
        self, doc_id: str, rev: str | None, load: Callable[[], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Version ``rev`` of ``doc_id`` if seen here; else ``load()`` (the current one),
        which is kept under its own revision."""
        if rev is not None:
            seen = self._docs.get(f"{doc_id}@{rev}")
            if seen is not None:
                return seen
        doc = load()
        if doc is not None:
            self._docs[f"{doc_id}@{doc.get('_rev')}"] = doc
            while len(self._docs) > self._max:
                self._docs.popitem(last=False)
        return doc
