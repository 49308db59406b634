"""Natural batching for a stream: whatever arrived while the last batch was busy.

The reader puts each event in as it comes; the worker takes everything waiting
(up to ``max_batch``) at once. A lone event is taken as soon as it is put: no
batch window adds latency, and no timer wakes an idle process (both sides wait
on events). Under load the batches grow by themselves while the worker is
busy, and the reader waits once ``max_batch`` events are waiting, so at most
one batch is in hand and one waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Generic, TypeVar

T = TypeVar("T")


class Inbox(Generic[T]):
    def __init__(self, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.max_batch = max_batch
        self._items: list[T] = []
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: T) -> None:
        """Add ``item``; waits while ``max_batch`` items are already waiting."""
        while len(self._items) >= self.max_batch:
            self._room.clear()
            await self._room.wait()
        self._items.append(item)
        self._arrived.set()

    async def take(self, within: float | None = None) -> list[T]:
        """Everything waiting, oldest first (at most ``max_batch``); waits for one item,
        for at most ``within`` seconds if given (then an empty list)."""
        while not self._items:
            self._arrived.clear()
            if within is None:
                await self._arrived.wait()
                continue
            if within > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), within)
            if not self._items:
                return []
        batch, self._items = self._items[: self.max_batch], self._items[self.max_batch :]
        self._room.set()
        return batch
