"""Placement policies, pure: which invoker gets an activation.

``GreedyJSQ`` is the thesis's Algorithm 2: the first function of a
composition goes to the healthy invoker with the shortest queue, and the
composition's later functions follow it to the same invoker while it stays
healthy. ``GreedyRoundRobin`` is the thesis's variant (§4.5): the same
composition cache over a round-robin first placement. The others are
baselines kept for comparison (JSQ, round robin, OpenWhisk's hash).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class InvokerView:
    id: str
    healthy: bool
    queue_length: int


class Policy(Protocol):
    def choose(self, invokers: Sequence[InvokerView], composition: str | None, action: str) -> str | None: ...


def _healthy(invokers: Sequence[InvokerView]) -> list[InvokerView]:
    return [i for i in invokers if i.healthy]


def jsq(invokers: Sequence[InvokerView]) -> str | None:
    """Shortest queue; ties go to the lowest id so choices are reproducible."""
    healthy = _healthy(invokers)
    if not healthy:
        return None
    return min(healthy, key=lambda i: (i.queue_length, i.id)).id


class JoinShortestQueue:
    def choose(self, invokers: Sequence[InvokerView], composition: str | None, action: str) -> str | None:
        return jsq(invokers)


class RoundRobin:
    def __init__(self) -> None:
        self._next = 0

    def choose(self, invokers: Sequence[InvokerView], composition: str | None, action: str) -> str | None:
        healthy = sorted(_healthy(invokers), key=lambda i: i.id)
        if not healthy:
            return None
        self._next = (self._next + 1) % len(healthy)
        return healthy[self._next].id


class CompositionCache:
    """Greedy placement over a ``first`` policy: a composition's first function goes where
    ``first`` says, and its later functions follow to that invoker while it is healthy, so
    data-dependent functions share an invoker. Actions without a composition go by ``first``."""

    def __init__(self, first: Policy, max_cached: int = 100_000) -> None:
        self.first = first
        self.cache: dict[str, str] = {}
        self._max = max_cached

    def choose(self, invokers: Sequence[InvokerView], composition: str | None, action: str) -> str | None:
        if composition is not None:
            cached = self.cache.get(composition)
            if cached is not None and any(i.id == cached and i.healthy for i in invokers):
                return cached
        chosen = self.first.choose(invokers, composition, action)
        if chosen is not None and composition is not None:
            if composition not in self.cache and len(self.cache) >= self._max:
                self.cache.pop(next(iter(self.cache)))  # oldest first: dicts keep insertion order
            self.cache[composition] = chosen
        return chosen

    def forget(self, composition: str) -> None:
        self.cache.pop(composition, None)


class GreedyJSQ(CompositionCache):
    """The thesis's Algorithm 2: the first function by JSQ, the rest follow it."""

    def __init__(self, max_cached: int = 100_000) -> None:
        super().__init__(JoinShortestQueue(), max_cached)


class GreedyRoundRobin(CompositionCache):
    """The thesis's Greedy RR (§4.5): the first function by round robin, the rest follow it.
    Round robin advances only on first placements, so compositions, not functions, take turns."""

    def __init__(self, max_cached: int = 100_000) -> None:
        super().__init__(RoundRobin(), max_cached)


class HashPlacement:
    """OpenWhisk's: a home invoker from the action's hash, then probe with a
    step co-prime to the number of invokers until a healthy one is found."""

    def choose(self, invokers: Sequence[InvokerView], composition: str | None, action: str) -> str | None:
        ordered = sorted(invokers, key=lambda i: i.id)
        n = len(ordered)
        if n == 0:
            return None
        digest = int.from_bytes(hashlib.sha256(action.encode()).digest()[:8], "big")
        home = digest % n
        steps = [s for s in range(1, n + 1) if math.gcd(s, n) == 1]
        step = steps[digest % len(steps)]
        for k in range(n):
            candidate = ordered[(home + k * step) % n]
            if candidate.healthy:
                return candidate.id
        return None


# Name -> policy, as settings (GLEANER_PLACEMENT_POLICY) and the CLI name them; GreedyJSQ is the default.
PLACEMENT_POLICY_FACTORIES: dict[str, Callable[[], Policy]] = {
    "greedy-jsq": GreedyJSQ,
    "jsq": JoinShortestQueue,
    "round-robin": RoundRobin,
    "greedy-round-robin": GreedyRoundRobin,
    "hash": HashPlacement,
}
