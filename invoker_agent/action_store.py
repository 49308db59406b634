"""Action documents as the invoker needs them, cached.

A request pinned to a revision (the gateway always pins) is immutable and
cached for good; an unpinned one (a raw Kafka producer) is re-read after
``action_cache_ttl_s``, so updates reach the invoker quickly. While CouchDB is
unreachable an expired copy is served rather than none.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from gleaner.couchdb import WHISKS, CouchDB
from gleaner.errors import ServiceError

_MAX = 512


class ActionStore:
    def __init__(self, db: CouchDB, ttl_s: float) -> None:
        self._db = db
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str, str | None], tuple[float, dict[str, Any]]] = OrderedDict()

    def get(self, namespace: str, name: str, rev: str | None) -> dict[str, Any] | None:
        key = (namespace, name, rev)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and (rev is not None or now - hit[0] < self._ttl):
                self._cache.move_to_end(key)
                return hit[1]
        try:
            doc = self._db.get_doc(WHISKS, f"{namespace}/{name}", rev)
            if doc is None and rev is not None:  # an old revision may be compacted away
                doc = self._db.get_doc(WHISKS, f"{namespace}/{name}")
        except ServiceError:
            if hit is None:
                raise
            with self._lock:  # CouchDB is away: the copy we have beats waiting for it, re-armed
                self._cache[key] = (now, hit[1])
            return hit[1]
        if doc is None:
            return None
        with self._lock:
            self._cache[key] = (now, doc)
            while len(self._cache) > _MAX:
                self._cache.popitem(last=False)
        return doc
