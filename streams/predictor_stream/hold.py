"""Requests that wait for the key store, and the batch loop that holds them.

When CouchDB cannot be read, a tenant's request (one not signed by the platform)
can be neither admitted nor refused: the planning step returns it as
:class:`~streams.predictor_stream.events.Held`, with every later event of its
partition. The loop keeps those events, unacknowledged and in order, in a
:class:`Hold` and plans them again after a bounded exponential backoff (0.2 s
doubling to 5 s); meanwhile the events of other partitions go on, and new events
of a held partition join the hold behind it. Only a request that has waited
``bound_s`` (``platform_retry_s``, as long as an activation waits for the action
store) is dead-lettered, with why.

Offsets stay put: a held event is not acknowledged, and Faust commits a
partition only up to its first unacknowledged offset, so a crash while holding
replays the held requests. Faust also waits for unacknowledged events before it
gives a partition up in a rebalance, so a rebalance during an outage waits for
the hold (at most ``bound_s``). The hold is bounded (``capacity`` events): once
full, the loop takes nothing new until it empties, and the inbox and Faust's
buffers hold the reader back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from streams.predictor_stream.events import Held, Incoming, Partition, Where

log = logging.getLogger(__name__)
E = TypeVar("E")  # a consumer's event (Faust's), acknowledged once handed over
R = TypeVar("R")  # what planning makes of an event that does not wait
FIRST_DELAY_S = 0.2
MAX_DELAY_S = 5.0


def _position(where: Where) -> tuple[str, int, int]:
    return where.topic, where.partition, where.offset


class Hold(Generic[E]):
    """The held events in their order, since when each waits, and when to try them again."""

    def __init__(
        self,
        bound_s: float,
        capacity: int,
        clock: Callable[[], float] = time.monotonic,
        first_delay_s: float = FIRST_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
    ) -> None:
        self.bound_s = bound_s
        self.capacity = capacity
        self.clock = clock
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self._events: list[tuple[E, Incoming]] = []
        self._since: dict[tuple[str, int, int], float] = {}
        self._next_at: float | None = None  # None: nothing held, or taken out to try again
        self._delay = first_delay_s

    def __len__(self) -> int:
        return len(self._events)

    def full(self) -> bool:
        return len(self._events) >= self.capacity

    def partitions(self) -> frozenset[Partition]:
        """The partitions with events held: their newer events wait behind."""
        return frozenset((inc.where.topic, inc.where.partition) for _, inc in self._events)

    def may_wait(self, where: Where) -> bool:
        """Whether the event at ``where`` may wait (longer) for the key store."""
        now = self.clock()
        return now - self._since.get(_position(where), now) < self.bound_s

    def due_in(self) -> float | None:
        """Seconds until the held events are tried again (0: now); None when none is held."""
        if not self._events or self._next_at is None:
            return None
        return max(0.0, self._next_at - self.clock())

    def release(self) -> list[tuple[E, Incoming]]:
        """The held events, oldest first, when it is time to try them again (they leave
        the hold, and come back through :meth:`keep` if they must wait on); else none."""
        if not self._events or self._next_at is None or self.clock() < self._next_at:
            return []
        released, self._events, self._next_at = self._events, [], None
        return released

    def keep(self, held: Sequence[tuple[E, Incoming, Held]]) -> None:
        """Holds ``held`` (newer than any event held already) and, if it was just tried
        or is newly held, sets when to try again: the delay doubles from try to try."""
        now = self.clock()
        self._events.extend((event, inc) for event, inc, _ in held)
        self._since = {
            position: self._since.get(position, now)
            for position in (_position(inc.where) for _, inc in self._events)
        }
        if not self._events:
            self._next_at, self._delay = None, self.first_delay_s
            return
        if self._next_at is None:
            self._next_at = now + self._delay
            why = next((h.reason for _, _, h in held if not h.behind), "")
            log.warning(
                "%d requests wait for the key store%s; trying again in %.1f s",
                len(self._events),
                f" ({why})" if why else "",
                self._delay,
            )
            self._delay = min(self.max_delay_s, self._delay * 2)


async def plan_in_order(
    take: Callable[[float | None], Awaitable[list[E]]],
    incoming: Callable[[E], Incoming],
    plan: Callable[[list[Incoming], Hold[E]], Awaitable[Sequence[R | Held]]],
    hand_over: Callable[[list[tuple[E, Incoming, R]]], Awaitable[None]],
    hold: Hold[E],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Plans batches for good: ``take(within)`` gives the events that arrived (waiting at most
    ``within`` seconds, or for one event when None), ``plan`` makes an outcome of each or
    says it waits, and ``hand_over`` gets the outcomes of the events that do not wait, in
    order (and acknowledges them). Held events are planned again, before anything newer."""
    while True:
        due_in = hold.due_in()
        if hold.full():
            await sleep(due_in or 0.0)
            new: list[E] = []
        else:
            new = await take(due_in)
        batch = hold.release() + [(event, incoming(event)) for event in new]
        if not batch:
            continue
        outs = await plan([inc for _, inc in batch], hold)
        ready: list[tuple[E, Incoming, R]] = []
        held: list[tuple[E, Incoming, Held]] = []
        for (event, inc), out in zip(batch, outs, strict=True):
            if isinstance(out, Held):
                held.append((event, inc, out))
            else:
                ready.append((event, inc, out))
        if ready:
            await hand_over(ready)
        hold.keep(held)
