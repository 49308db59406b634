"""The predictor's batch loop through a key store outage: a tenant's request the
store cannot check waits (with backoff) instead of being dead-lettered, keeps its
partition's order, and is dead-lettered with why only after its bound; other
partitions and platform-signed requests go on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
import pytest

from gleaner.errors import CouchDBError
from streams.kafka.signing import Signer, normalize_headers, tenant_headers
from streams.predictor_stream.events import (
    DEADLETTERS,
    PLANS,
    Gate,
    Held,
    Incoming,
    Outgoing,
    Where,
    plan_or_hold,
)
from streams.predictor_stream.hold import Hold, plan_in_order
from tests.unit.streams.test_predictor_events import EchoPlanner, request, rid

LIMIT = 10_000
SIGNER = Signer(b"s" * 32)
BOUND_S = 120.0


def on(partition: int, offset: int) -> Where:
    return Where("dag.requests", partition, offset, 1_700_000_000_000)


def signed(n: int, where: Where) -> Incoming:
    raw = request(request_id=rid(n))
    return Incoming(b"k", raw, where, normalize_headers(SIGNER.headers(where.topic, b"k", raw)))


def tenant(n: int, where: Where) -> Incoming:
    return Incoming(b"k", request(request_id=rid(n)), where, normalize_headers(tenant_headers("u:guest-key")))


class Store:
    """The key store: its key check fails with a store error ``failures`` times, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, credential: str) -> str | None:
        self.calls += 1
        if self.calls <= self.failures:
            raise CouchDBError("connection refused")
        return {"u:guest-key": "guest"}.get(credential)


class Done(Exception):
    """The script has run out and nothing is held: the loop would wait for good."""


class World:
    """A fake clock, the events that arrive at their times, and what was handed over."""

    def __init__(self, arrivals: Sequence[tuple[float, list[Incoming]]], failures: int) -> None:
        self.now = 0.0
        self.arrivals = list(arrivals)
        self.store = Store(failures)
        self.gate = Gate(SIGNER, self.store)
        self.waits: list[float | None] = []  # each wait of the loop: for events or to try again
        self.handed: list[tuple[Where, Outgoing]] = []  # in the order handed over (and acked)

    def clock(self) -> float:
        return self.now

    async def take(self, within: float | None) -> list[Incoming]:
        self.waits.append(within)
        if not self.arrivals:
            if within is None:
                raise Done
            self.now += within
            return []
        at, events = self.arrivals[0]
        if within is not None and at > self.now + within:
            self.now += within
            return []
        self.now = max(self.now, at)
        self.arrivals.pop(0)
        return events

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    async def plan(self, batch: list[Incoming], hold: Hold[Incoming]) -> list[Outgoing | Held]:
        return plan_or_hold(
            EchoPlanner(), batch, LIMIT, self.gate, hold.may_wait, hold.bound_s, hold.partitions()
        )

    async def hand_over(self, ready: list[tuple[Incoming, Incoming, Outgoing]]) -> None:
        self.handed.extend((inc.where, out) for _, inc, out in ready)

    def run(self, capacity: int = 128) -> Hold[Incoming]:
        hold: Hold[Incoming] = Hold(BOUND_S, capacity, self.clock)
        loop = plan_in_order(self.take, lambda e: e, self.plan, self.hand_over, hold, self.sleep)
        with pytest.raises(Done):
            asyncio.run(loop)
        return hold


def keys(world: World, topic: str = PLANS) -> list[bytes | None]:
    return [out.key for _, out in world.handed if out.topic == topic]


def test_a_request_the_key_store_fails_twice_is_planned_in_order_with_those_after_it():
    world = World(
        [
            (0.0, [signed(0, on(0, 0)), tenant(1, on(0, 1)), signed(2, on(0, 2))]),
            (0.1, [signed(3, on(0, 3)), signed(4, on(1, 0))]),  # while held: 3 waits, 4 goes on
        ],
        failures=2,
    )
    hold = world.run()
    assert [out.topic for _, out in world.handed] == [PLANS] * 5  # nothing dead-lettered
    assert keys(world) == [rid(n).encode() for n in (0, 4, 1, 2, 3)]
    offsets = [w.offset for w, _ in world.handed if w.partition == 0]
    assert offsets == [0, 1, 2, 3]  # partition 0 in its order
    assert world.store.calls == 3  # one check per try: the waiting ones behind it are not read
    # tried again after 0.2 s, then 0.4 s more; then the hold is empty
    assert world.now == pytest.approx(0.6) and len(hold) == 0 and hold.due_in() is None


def test_a_request_the_key_store_never_answers_is_dead_lettered_after_its_bound_with_why():
    world = World([(0.0, [tenant(1, on(0, 1)), signed(2, on(0, 2))])], failures=10_000)
    world.run()
    assert [(w.offset, out.topic) for w, out in world.handed] == [(1, DEADLETTERS), (2, PLANS)]
    reason = orjson.loads(world.handed[0][1].value)["reason"]
    assert reason == (
        "namespace guest not proven: the key store could not be read (connection refused)"
        " and the request waited 120 s for it; send it again"
    )
    assert BOUND_S <= world.now <= BOUND_S + 5.0  # given up at the first try past the bound
    tries = [w for w in world.waits if w]
    assert tries[:6] == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0])
    assert max(tries) == pytest.approx(5.0)  # the delay stops doubling at 5 s


def test_platform_signed_requests_never_wait_for_the_key_store():
    world = World(
        [(0.0, [signed(n, on(n % 2, n)) for n in range(4)]), (1.0, [signed(4, on(0, 4))])], failures=10_000
    )
    world.run()
    assert keys(world) == [rid(n).encode() for n in range(5)]
    assert world.store.calls == 0 and world.now == 1.0 and world.waits == [None, None, None]


def test_a_full_hold_takes_nothing_new_until_it_empties():
    world = World(
        [(0.0, [tenant(0, on(0, 0)), signed(1, on(0, 1))]), (0.0, [signed(2, on(1, 0))])], failures=1
    )
    world.run(capacity=2)
    # the second batch (another partition) is taken only once partition 0 went on
    assert keys(world) == [rid(n).encode() for n in range(3)]
    assert world.waits[:2] == [None, pytest.approx(0.2)]  # the first wait for it is a sleep, not a take
