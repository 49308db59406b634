"""Which dispatched activations no invoker has answered yet.

Placement notes every activation it sends to an invoker and forgets it when
a completion with its id appears (an invoker's, or a platform failure record).
When an invoker goes silent (no heartbeat for ``invoker_unhealthy_after_s``),
what it still owes is taken back: it waits here, marked as taken back, until
placement sends it to a healthy invoker.

What keeps the list equal to the work in flight:
- ids whose completion was seen are remembered (the last ``remember_done``):
  a later dispatch of one (a replayed invocation, a take-back that raced its
  completion) is not noted, since its invoker skips it as a duplicate and
  never answers;
- an entry older than ``stale_after_s`` is dropped: an invoker that is still
  healthy has long answered it, so its completion went where this list could not
  see it (before a restart); kept, it would be sent again on every silence.

Thread-safe (acks arrive on a listener thread); bounded, oldest forgotten
first. Its size is the ``gleaner_placement_unacknowledged`` gauge. With a
journal every change is also written to Redis (write-behind, see
:mod:`streams.placement.journal`), and :meth:`recover` reads back what a
previous placement left.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable

from gleaner.errors import RedisError
from gleaner.metrics import PLACEMENT_UNACKNOWLEDGED
from streams.events import ActivationRequest
from streams.placement.journal import Dispatched, UnackedJournal, count_store_error

log = logging.getLogger(__name__)
TAKEN_BACK = ""  # the invoker of an entry taken back and not sent again yet
STALE_AFTER_S = 3600.0  # past any action's time limit (5 min) plus a long queue


class Unacknowledged:
    def __init__(
        self,
        max_entries: int = 200_000,
        *,
        journal: UnackedJournal | None = None,
        stale_after_s: float = STALE_AFTER_S,
        remember_done: int = 50_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, Dispatched] = OrderedDict()
        self._per_invoker: Counter[str] = Counter()
        self._done: OrderedDict[str, None] = OrderedDict()
        self._max = max_entries
        self._remember = remember_done
        self._stale_after = stale_after_s
        self._clock = clock
        self._journal = journal
        self._loaded = journal is None
        self._failing = False  # the store failed last time (log once per outage)
        PLACEMENT_UNACKNOWLEDGED.set(0)

    # -- the hot path ------------------------------------------------------------
    def sent(self, invoker: str, request: ActivationRequest) -> bool:
        """Note ``request`` as sent to ``invoker``; False (not noted) when it already completed."""
        aid = request.activation_id
        with self._lock:
            if aid in self._done:
                return False
            self._put(aid, Dispatched(invoker, request, self._clock()))
            while len(self._items) > self._max:
                self._drop(next(iter(self._items)))
            self._changed()
        return True

    def acked(self, activation_id: str) -> None:
        with self._lock:
            self._done[activation_id] = None
            self._done.move_to_end(activation_id)
            while len(self._done) > self._remember:
                self._done.popitem(last=False)
            if activation_id in self._items:
                self._drop(activation_id)
                self._changed()

    def completed(self, activation_id: str) -> bool:
        """Whether a completion of ``activation_id`` was seen (recently)."""
        with self._lock:
            return activation_id in self._done

    # -- silent invokers ---------------------------------------------------------
    def take_back(self, invoker: str) -> int:
        """Mark everything ``invoker`` still owes as taken back from it, to be sent again."""
        with self._lock:
            owed = [(aid, d) for aid, d in self._items.items() if d.invoker == invoker]
            for aid, d in owed:
                again = dataclasses.replace(d.request, redispatched_from=invoker)
                self._put(aid, Dispatched(TAKEN_BACK, again, d.sent_at))
            if owed:
                self._changed()
            return len(owed)

    def pending(self) -> list[ActivationRequest]:
        """What was taken back and waits for a healthy invoker, oldest first."""
        with self._lock:
            if not self._per_invoker[TAKEN_BACK]:
                return []
            return [d.request for d in self._items.values() if d.invoker == TAKEN_BACK]

    def owed(self, older_than_s: float = 0.0) -> list[ActivationRequest]:
        """What was dispatched at least ``older_than_s`` ago and not acknowledged, oldest first."""
        horizon = self._clock() - older_than_s
        with self._lock:
            return [d.request for d in self._items.values() if d.sent_at <= horizon]

    def invokers(self) -> set[str]:
        """The invokers that owe something."""
        with self._lock:
            return {i for i, n in self._per_invoker.items() if n > 0 and i != TAKEN_BACK}

    def expire(self) -> int:
        """Drop entries older than ``stale_after_s``; how many."""
        horizon = self._clock() - self._stale_after
        with self._lock:
            old = [aid for aid, d in self._items.items() if d.sent_at < horizon]
            for aid in old:
                self._drop(aid)
            if old:
                self._changed()
            return len(old)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    # -- Redis ---------------------------------------------------------------------
    def recover(self) -> bool:
        """Read back the list a previous placement left (once); False while Redis cannot be read."""
        if self._loaded or self._journal is None:
            return True
        try:
            stored = self._journal.load()
        except RedisError as exc:
            count_store_error("reading", exc, first=not self._failing)
            self._failing = True
            return False
        found = 0
        with self._lock:
            # Older than anything noted since the start: oldest at the front.
            for aid, d in sorted(stored.items(), key=lambda kv: kv[1].sent_at, reverse=True):
                if aid in self._done:
                    self._journal.forgot(aid)
                elif aid not in self._items:  # noted again since: that one is newer
                    self._items[aid] = d
                    self._items.move_to_end(aid, last=False)
                    self._per_invoker[d.invoker] += 1
                    found += 1
            self._loaded = True
            self._changed()
        if found:
            log.info("found %d unacknowledged activations left by the last run", found)
        return True

    def flush(self) -> bool:
        """Write the changes since the last flush (recovering first); False when Redis failed."""
        if self._journal is None:
            return True
        if not self.recover():
            return False
        try:
            self._journal.flush()
        except RedisError as exc:
            count_store_error("writing", exc, first=not self._failing)
            self._failing = True
            return False
        if self._failing:
            log.info("placement's unacknowledged list is written to Redis again")
            self._failing = False
        return True

    # -- under the lock ------------------------------------------------------------
    def _put(self, aid: str, entry: Dispatched) -> None:
        old = self._items.pop(aid, None)
        if old is not None:
            self._per_invoker[old.invoker] -= 1
        self._items[aid] = entry
        self._per_invoker[entry.invoker] += 1
        if self._journal is not None:
            self._journal.noted(aid, entry)

    def _drop(self, aid: str) -> None:
        d = self._items.pop(aid)
        self._per_invoker[d.invoker] -= 1
        if self._journal is not None:
            self._journal.forgot(aid)

    def _changed(self) -> None:
        PLACEMENT_UNACKNOWLEDGED.set(len(self._items))
