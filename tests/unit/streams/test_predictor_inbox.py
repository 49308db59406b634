"""The predictor's inbox: a lone event is taken at once, events that arrive while
the worker is busy are taken together, and the reader waits once a batch is full."""

from __future__ import annotations

import asyncio

import pytest

from streams.predictor_stream.inbox import Inbox


def test_a_lone_item_is_taken_as_soon_as_it_is_put():
    async def scenario() -> list[int]:
        inbox: Inbox[int] = Inbox(8)
        taker = asyncio.ensure_future(inbox.take())
        await asyncio.sleep(0)
        assert not taker.done()  # nothing yet: it waits, on no timer
        await inbox.put(1)
        return await taker

    assert asyncio.run(scenario()) == [1]


def test_items_that_arrive_while_the_worker_is_busy_come_as_one_batch_in_order():
    async def scenario() -> list[list[int]]:
        inbox: Inbox[int] = Inbox(8)
        for i in range(5):
            await inbox.put(i)
        first = await inbox.take()
        await inbox.put(5)
        return [first, await inbox.take()]

    assert asyncio.run(scenario()) == [[0, 1, 2, 3, 4], [5]]


def test_a_full_inbox_holds_the_reader_until_a_batch_is_taken():
    async def scenario() -> tuple[list[int], list[int], bool]:
        inbox: Inbox[int] = Inbox(3)

        async def read() -> None:
            for i in range(5):
                await inbox.put(i)

        reader = asyncio.ensure_future(read())
        await asyncio.sleep(0.01)
        held = not reader.done() and len(inbox) == 3
        first = await inbox.take()
        await reader
        return first, await inbox.take(), held

    first, second, held = asyncio.run(scenario())
    assert held and first == [0, 1, 2] and second == [3, 4]


def test_a_batch_needs_room_for_one_item():
    with pytest.raises(ValueError, match="at least 1"):
        Inbox(0)


def test_a_take_within_a_time_returns_what_arrived_or_nothing_when_it_is_up():
    async def scenario() -> tuple[list[int], list[int], list[int], list[int]]:
        inbox: Inbox[int] = Inbox(8)
        empty = await inbox.take(within=0.01)
        now = await inbox.take(within=0)  # no wait at all
        await inbox.put(1)
        waiting = await inbox.take(within=0)
        later = asyncio.get_running_loop().call_later(0.01, lambda: asyncio.ensure_future(inbox.put(2)))
        arrived = await inbox.take(within=5)
        later.cancel()
        return empty, now, waiting, arrived

    assert asyncio.run(scenario()) == ([], [], [1], [2])
