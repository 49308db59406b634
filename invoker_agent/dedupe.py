"""Run each activation id at most once per invoker, across restarts.

A claim in Redis says who runs an activation: ``running:<invoker>:<incarnation>``
then ``done``. A duplicate delivery finds the claim and is skipped. After a
crash, Kafka redelivers what was not committed; the restarted invoker (same
id, new incarnation) finds its own stale ``running`` claim and takes the
activation over, so nothing Kafka still holds is lost. An activation that
placement re-dispatched from a silent invoker is taken over the same way by
the invoker it went to; once that one holds it, the silent invoker's late
copy (when it comes back) finds the claim and is skipped. A takeover needs a
previous holder that is another run: work sent back to the very run that
still holds it (placement thought it silent, and it was the only invoker or
came back) is a duplicate of a running activation, never a second run.

A duplicate of an activation this run finished gets its completion published
again (:class:`RecentCompletions` keeps the last few), so a sender that never
saw the first one still gets its answer.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

from gleaner.errors import RedisError
from gleaner.redis_store import RedisStore

log = logging.getLogger(__name__)
_TTL_S = 24 * 3600


class Claim(Enum):
    RUN = "run"
    TAKEOVER = "takeover"  # run it, but first ask the previous holder's containers for an answer
    DUPLICATE = "duplicate"  # a duplicate of an activation still running (here or elsewhere): skip
    FINISHED = "finished"  # a duplicate of a finished activation (its completion delivered): skip


@dataclass(frozen=True, slots=True)
class Holder:
    """Who held an activation before a takeover: an invoker and one run of it."""

    invoker: str
    incarnation: str


def _key(activation_id: str) -> str:
    return f"gleaner:activation:{activation_id}"


class ActivationClaims:
    def __init__(self, store: RedisStore, invoker_id: str, incarnation: str) -> None:
        self._store = store
        self._invoker = invoker_id
        self._mine = f"running:{invoker_id}:{incarnation}".encode()
        self._holders: dict[str, Holder] = {}

    def claim(self, activation_id: str, takeover_from: str | None = None) -> Claim:
        """RUN if this invoker should run it. ``takeover_from`` names an invoker that
        went silent holding it (placement re-dispatched it here): its unfinished
        claim passes to us; a finished one is FINISHED. A claim this very run
        holds is never taken over, whoever sent the activation again: it is
        running here (DUPLICATE)."""
        try:
            if self._store.set_if_absent(_key(activation_id), self._mine, _TTL_S):
                return Claim.RUN
            held = (self._store.get(_key(activation_id)) or b"").decode()
        except RedisError as exc:
            # Availability first: run it; the record's id still dedupes in CouchDB.
            log.warning("claim check skipped for %s: %s", activation_id, exc)
            return Claim.RUN
        state, _, rest = held.partition(":")
        owner, _, incarnation = rest.partition(":")
        if state == "done":
            return Claim.FINISHED
        if state != "running" or held.encode() == self._mine:
            # Ours (this run's: running here now, not a crash to recover from) or unreadable.
            return Claim.DUPLICATE
        if owner == self._invoker:
            log.info("taking over %s from a previous incarnation of %s", activation_id, owner)
        elif takeover_from is not None and owner == takeover_from:
            log.info("taking over %s from silent invoker %s", activation_id, owner)
        else:
            return Claim.DUPLICATE
        try:
            # Only if the claim is still the one read: the holder may have finished it, or
            # another invoker taken it over, since the read.
            if not self._store.replace_if_equal(_key(activation_id), held.encode(), self._mine, _TTL_S):
                return self._lost_takeover(activation_id)
        except RedisError as exc:
            log.warning("takeover of %s not recorded: %s", activation_id, exc)
        self._holders[activation_id] = Holder(owner, incarnation)
        return Claim.TAKEOVER

    def _lost_takeover(self, activation_id: str) -> Claim:
        """The claim changed between our read and our takeover: finished, or someone else's."""
        try:
            if self._store.set_if_absent(_key(activation_id), self._mine, _TTL_S):
                return Claim.RUN  # it expired in between
            now = (self._store.get(_key(activation_id)) or b"").decode()
        except RedisError as exc:
            log.warning("claim of %s not re-read after a lost takeover: %s", activation_id, exc)
            return Claim.DUPLICATE  # someone else holds it: never run it twice
        return Claim.FINISHED if now.partition(":")[0] == "done" else Claim.DUPLICATE

    def previous_holder(self, activation_id: str) -> Holder | None:
        """Who held ``activation_id`` before this invoker took it over (asked once)."""
        return self._holders.pop(activation_id, None)

    def finished(self, activation_ids: list[str]) -> None:
        if not activation_ids:
            return
        try:
            self._store.set_many({_key(a): b"done" for a in activation_ids}, _TTL_S)
        except RedisError as exc:
            log.warning("could not mark %d activations done: %s", len(activation_ids), exc)


class RecentCompletions:
    """The completions this run delivered last, to publish again on a duplicate.

    Bounded twice: at most ``max_items`` of them and ``max_bytes`` in all (the
    oldest go first); one larger than ``max_bytes`` is not kept. Thread-safe:
    completions are noted from the producer's delivery callbacks and looked up
    from the workers.
    """

    def __init__(self, max_items: int = 1000, max_bytes: int = 32 * 2**20) -> None:
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def delivered(self, activation_id: str, key: str, value: bytes) -> None:
        """``value`` (produced under ``key``) is on the broker as ``activation_id``'s completion."""
        with self._lock:
            old = self._items.pop(activation_id, None)
            if old is not None:
                self._bytes -= len(old[1])
            if len(value) > self._max_bytes or self._max_items <= 0:
                return
            self._items[activation_id] = (key, value)
            self._bytes += len(value)
            while len(self._items) > self._max_items or self._bytes > self._max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= len(dropped)

    def get(self, activation_id: str) -> tuple[str, bytes] | None:
        """The key and bytes of ``activation_id``'s delivered completion, if still kept."""
        with self._lock:
            return self._items.get(activation_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes
