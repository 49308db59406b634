"""The predictor's fetch wait, short while requests flow and long when idle.

Faust's aiokafka consumer hard-codes ``fetch_max_wait_ms=1500``, and Tansu
holds a fetch for the whole wait whatever arrives. So the wait bounds the hop
into the predictor: 1500 ms would cost ~750 ms a request. A
5 ms wait keeps the hop short but has the broker and this process answer
~200 empty fetches a second when nothing happens. The wait therefore follows
the traffic: ``busy_ms`` from the first request on, ``idle_ms`` once none has
come for ``idle_after_s``. A request after a quiet spell pays at most
``idle_ms`` more; the ones behind it, nothing.

Why a patch and not a setting: faust-streaming (0.15.3) passes
``fetch_max_wait_ms=1500`` to aiokafka in ``_create_worker_consumer`` and has no
setting for it, and a wait that changes at run time is only aiokafka's private
``_fetch_max_wait_ms`` (the consumer's, and its fetcher's, read per fetch request).
``tests/unit/streams/test_predictor_fetch_wait.py`` fails when either library changes
what this module relies on.
"""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import Callable
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread


def wait_ms(now: float, last_request: float, busy_ms: int, idle_ms: int, idle_after_s: float) -> int:
    """The fetch wait that fits the traffic at ``now`` (pure)."""
    return busy_ms if now - last_request < idle_after_s else idle_ms


class AdaptiveFetchWait:
    """Sets the fetch wait of the aiokafka consumers Faust creates."""

    def __init__(
        self,
        busy_ms: int,
        idle_ms: int,
        idle_after_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.busy_ms = busy_ms
        self.idle_ms = max(busy_ms, idle_ms)
        self.idle_after_s = idle_after_s
        self._clock = clock
        self._last = clock()
        self.current_ms = busy_ms  # start busy: a restarted stream may have a backlog
        self._consumers: weakref.WeakSet[Any] = weakref.WeakSet()

    def adopt(self, consumer: Any) -> None:
        """Track an aiokafka consumer (before or after it started)."""
        self._consumers.add(consumer)
        self._apply(consumer, self.current_ms)

    def request_seen(self) -> None:
        """A request arrived: back to the short wait at once if idle."""
        self._last = self._clock()
        if self.current_ms != self.busy_ms:
            self._set(self.busy_ms)

    def tick(self) -> None:
        """Periodically: go to the idle wait after a quiet spell."""
        want = wait_ms(self._clock(), self._last, self.busy_ms, self.idle_ms, self.idle_after_s)
        if want != self.current_ms:
            self._set(want)

    def _set(self, ms: int) -> None:
        self.current_ms = ms
        for consumer in list(self._consumers):
            self._apply(consumer, ms)

    @staticmethod
    def _apply(consumer: Any, ms: int) -> None:
        consumer._fetch_max_wait_ms = ms
        fetcher = getattr(consumer, "_fetcher", None)  # built when the consumer starts
        if fetcher is not None:
            fetcher._fetch_max_wait_ms = ms  # read each time a fetch request is built


_active: AdaptiveFetchWait | None = None


def install(control: AdaptiveFetchWait) -> None:
    """Route the consumers Faust creates from now on to ``control``."""
    global _active
    _active = control
    original = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(original, "_gleaner_adaptive", False):
        return

    @functools.wraps(original)
    def create(self: AIOKafkaConsumerThread, transport: Any) -> Any:
        consumer = original(self, transport)
        if _active is not None:
            _active.adopt(consumer)
        return consumer

    create._gleaner_adaptive = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._create_worker_consumer = create  # type: ignore[method-assign]
