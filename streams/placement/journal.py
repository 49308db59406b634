"""Placement's unacknowledged list, kept in Redis so a restarted placement finds it.

One hash, field = activation id, value = JSON ``{invoker, request, sent_at}``
(``request``: the ActivationRequest event as sent; ``invoker`` empty while a
taken-back activation waits to be sent again). Writes are write-behind: the
hot path only notes changes in memory, and :func:`keep_written` writes them
in one ``HSET`` and one ``HDEL`` about every 100 ms, off the dispatch thread.

Why a window is safe: a crash loses at most the last ~100 ms of notes (or
those since Redis went away, while it is away). Those
activations are still in their invoker's Kafka topic (uncommitted until they
finish), so an invoker that comes back runs or skips them as before; only a
re-dispatch from an invoker that never comes back would miss them. A lost
delete leaves an entry whose completion a restarted placement never sees: it is
sent again to an invoker that skips it, and forgotten when it grows stale.
Redis being away never stops dispatch: the batch is kept and retried, logged
once per outage and counted in ``gleaner_placement_unacked_store_errors``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import orjson

from gleaner.errors import GleanerError, RedisError
from gleaner.metrics import PLACEMENT_UNACKED_STORE_ERRORS
from gleaner.settings import Settings
from streams.events import ActivationRequest, decode

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 0.1
BACKOFF_MAX_S = 10.0


def unacked_key(settings: Settings) -> str:
    """The hash's key; a prefixed deployment (its own topics) has its own list."""
    prefix = settings.topic_prefix.strip(".")
    return "gleaner:placement:unacked" + (f":{prefix}" if prefix else "")


class HashStore(Protocol):
    """The hash operations of :class:`gleaner.redis_store.RedisStore` used here."""

    def hset_many(self, key: str, fields: dict[str, bytes]) -> None: ...

    def hdel(self, key: str, *fields: str) -> None: ...

    def hgetall(self, key: str) -> dict[str, bytes]: ...


class MemoryHashes:
    """A :class:`HashStore` in memory (tests, or a run without Redis)."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, bytes]] = {}
        self.down = 0  # the next N calls fail
        self.calls = 0

    def _call(self) -> None:
        self.calls += 1
        if self.down:
            self.down -= 1
            raise RedisError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    def hset_many(self, key: str, fields: dict[str, bytes]) -> None:
        self._call()
        self.hashes.setdefault(key, {}).update(fields)

    def hdel(self, key: str, *fields: str) -> None:
        self._call()
        for f in fields:
            self.hashes.get(key, {}).pop(f, None)

    def hgetall(self, key: str) -> dict[str, bytes]:
        self._call()
        return dict(self.hashes.get(key, {}))


@dataclass(frozen=True, slots=True)
class Dispatched:
    invoker: str  # "" while taken back and waiting for a healthy invoker
    request: ActivationRequest
    sent_at: float  # wall clock (epoch s): it must mean the same after a restart


def encode(entry: Dispatched) -> bytes:
    request = entry.request.to_bytes().decode()
    return orjson.dumps({"invoker": entry.invoker, "request": request, "sent_at": entry.sent_at})


def decode_entry(raw: bytes) -> Dispatched:
    """One stored entry (raises MalformedEvent, or another GleanerError, when it is not one)."""
    data = decode(raw)
    invoker, request, sent_at = data.get("invoker"), data.get("request"), data.get("sent_at")
    if not isinstance(invoker, str) or not isinstance(request, str) or not isinstance(sent_at, int | float):
        raise GleanerError("not an unacknowledged entry")
    return Dispatched(invoker, ActivationRequest.from_dict(decode(request.encode())), float(sent_at))


class UnackedJournal:
    """Changes to write, batched; thread-safe. An id is either to set or to delete, never both."""

    def __init__(self, store: HashStore, key: str) -> None:
        self._store = store
        self.key = key
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one batch at a time: a delete never overtakes its set
        self._put: dict[str, Dispatched] = {}  # encoded when written, off the hot path
        self._del: set[str] = set()

    def noted(self, activation_id: str, entry: Dispatched) -> None:
        with self._lock:
            self._put[activation_id] = entry
            self._del.discard(activation_id)

    def forgot(self, activation_id: str) -> None:
        with self._lock:
            self._put.pop(activation_id, None)
            self._del.add(activation_id)

    @property
    def backlog(self) -> int:
        with self._lock:
            return len(self._put) + len(self._del)

    def flush(self) -> None:
        """Write what changed since the last flush; on a RedisError the batch is kept (raises)."""
        with self._flushing:
            with self._lock:
                put, self._put = self._put, {}
                gone, self._del = self._del, set()
            try:  # at most two round trips, none when nothing changed
                if put:
                    self._store.hset_many(self.key, {aid: encode(d) for aid, d in put.items()})
                if gone:
                    self._store.hdel(self.key, *gone)
            except RedisError:
                with self._lock:  # what changed meanwhile is newer: it wins
                    for aid, d in put.items():
                        if aid not in self._put and aid not in self._del:
                            self._put[aid] = d
                    self._del.update(aid for aid in gone if aid not in self._put)
                raise

    def load(self) -> dict[str, Dispatched]:
        """Every stored entry; unreadable ones are deleted (raises RedisError)."""
        out: dict[str, Dispatched] = {}
        for aid, raw in self._store.hgetall(self.key).items():
            try:
                out[aid] = decode_entry(raw)
            except GleanerError as exc:
                log.warning("dropping unreadable unacknowledged entry %s: %s", aid, exc)
                self.forgot(aid)
        return out


def keep_written(flush: Callable[[], bool], stop: threading.Event, every_s: float = FLUSH_EVERY_S) -> None:
    """Call ``flush`` (True: written) every ``every_s`` until ``stop``, backing off while it fails.
    Its own thread: Redis being slow or away never holds up dispatch."""
    delay = every_s
    while not stop.wait(delay):
        try:
            ok = flush()
        except Exception:  # a bug here must not end the writer: the list would stop being kept
            log.exception("writing placement's unacknowledged list failed")
            ok = False
        delay = every_s if ok else min(BACKOFF_MAX_S, max(delay * 2, 0.5))


def count_store_error(what: str, exc: Exception, first: bool) -> None:
    PLACEMENT_UNACKED_STORE_ERRORS.inc()
    if first:
        log.warning("%s placement's unacknowledged list in Redis failed (kept in memory): %s", what, exc)
