"""Pre-warm along the DAG, the invoker's side: start containers a DAG request
will need in its later stages, while its earlier stages run.

A hint (``prewarm.hint`` on ``invoker.<id>``) names functions and how many
containers each needs at once. For each, the invoker starts what is missing
(:meth:`ContainerPool.reserve_warming`: idle and warming containers of the
action version count) in the background, initialises it with the action's
code, and parks it idle. Nothing here can delay or fail a real activation:

- a pre-warmed container takes no permits: permits are for running
  activations, and an idle container (pre-warmed or left warm by a run) holds
  none, as before; an activation that takes it over takes permits as usual;
- starts run on their own small thread pool, at most
  ``prewarm_max_starting`` at once, and a hint that finds them all busy with
  more queued is dropped (``busy``) rather than start containers late;
- while the pool's containers would hold more memory than the invoker has, a
  start evicts the least recently used idle container of another action, and is skipped
  (``no_memory``) when the busy ones alone leave no room;
- a failure is logged and counted, never raised to the consume loop;
- an unused container goes with the keep-alive like any idle one.

A redelivered hint (same id) changes nothing (``duplicate``).

Just in time: a hint comes per request and stage, when its stage is about to be
needed, and may carry a delay (``delay_ms`` after it was sent: its stage is known
to be that far off). Such a hint waits on one timer thread, not in a start slot,
and is taken up when due; a full timer queue drops it (``busy``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from gleaner.actions import Limits
from gleaner.allocation import Allocation
from gleaner.errors import GleanerError
from gleaner.metrics import PREWARMS
from gleaner.settings import Settings
from invoker_agent.container_pool import Lease
from invoker_agent.proxy_client import ActionProxyClient, InitError
from streams.events import PrewarmFunction, PrewarmHint, now_ms

log = logging.getLogger(__name__)

SEEN_HINTS = 4096  # hint ids remembered to drop redeliveries
QUEUED_PER_STARTER = 4  # queued functions per start slot before hints are dropped
MAX_DELAYED = 1024  # hints waiting for their time before later ones are dropped


class Pool(Protocol):
    def reserve_warming(self, key: str, wanted: int, room: int) -> int: ...

    def warm(
        self, key: str, *, cpu: float, memory_mb: int, init: Callable[[ActionProxyClient], None]
    ) -> Lease: ...

    def stats(self) -> dict[str, int]: ...

    def evict_idle(self, count: int = 1, *, keep: str | None = None) -> int: ...


class Actions(Protocol):
    def get(self, namespace: str, name: str, rev: str | None) -> dict[str, Any] | None: ...


class Capacity(Protocol):
    @property
    def memory_capacity_mb(self) -> int: ...

    def fits_ever(self, cpu: float, memory_mb: int) -> bool: ...


def container_key(namespace: str, action: str, doc: dict[str, Any]) -> str:
    """The pool key of an action version; the executor keys its containers the same way."""
    return f"{namespace}/{action}@{doc['_rev']}"


def initializer(action: str, doc: dict[str, Any]) -> Callable[[ActionProxyClient], None]:
    """The /init the executor gives a cold container of this action (same name, code, env)."""
    exec_ = doc["exec"]

    def init(client: ActionProxyClient) -> None:
        client.init(
            name=action,
            main=exec_.get("main", "main"),
            code=exec_["code"],
            binary=bool(exec_.get("binary")),
            env={},
        )

    return init


def allocation_for(planned: Allocation | None, limits: Limits, capacity: Capacity) -> tuple[float, int]:
    """What to start the container at: the plan if this invoker can hold it, else the
    user's (the executor falls back the same way); a different one later costs a resize."""
    if planned is not None and capacity.fits_ever(planned.cpu, planned.memory_mb):
        return planned.cpu, planned.memory_mb
    return limits.cpu, limits.memory_mb


class SeenHints:
    """The last ``size`` hint ids, to drop redeliveries (thread-safe)."""

    def __init__(self, size: int = SEEN_HINTS) -> None:
        self._size = size
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, hint_id: str) -> bool:
        with self._lock:
            if hint_id in self._ids:
                return False
            self._ids[hint_id] = None
            while len(self._ids) > self._size:
                self._ids.popitem(last=False)
            return True


def start_in_s(submitted_ms: int, delay_ms: int, now: int) -> float:
    """How long a hint still waits: until ``submitted_ms + delay_ms``, and never longer
    than its delay (a sender's clock ahead of ours must not stretch it)."""
    return max(0.0, min(delay_ms, submitted_ms + delay_ms - now) / 1000.0)


class Later:
    """Calls ``take(item)`` for each item once its time comes, on one thread (a timer
    per hint would be a thread per hint). Thread-safe; :meth:`close` drops what waits."""

    def __init__(self, take: Callable[[PrewarmHint], None], limit: int = MAX_DELAYED) -> None:
        self._take = take
        self._limit = limit
        self._heap: list[tuple[float, int, PrewarmHint]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, in_s: float, item: PrewarmHint) -> bool:
        """Schedule ``item`` in ``in_s`` seconds; False when full or closed."""
        with self._cond:
            if self._closed or len(self._heap) >= self._limit:
                return False
            heapq.heappush(self._heap, (time.monotonic() + in_s, next(self._order), item))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="prewarm-later", daemon=True)
                self._thread.start()
            self._cond.notify()
            return True

    def waiting(self) -> int:
        with self._cond:
            return len(self._heap)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
                if self._closed:
                    return
                _, _, item = heapq.heappop(self._heap)
            try:
                self._take(item)
            except Exception:  # a bug in one must not end the timer for the others
                log.exception("a delayed pre-warm hint failed")


class Prewarmer:
    def __init__(
        self,
        settings: Settings,
        pool: Pool,
        actions: Actions,
        capacity: Capacity,
        starter: ThreadPoolExecutor | None = None,
        max_delayed: int = MAX_DELAYED,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.actions = actions
        self.capacity = capacity
        self.max_starting = settings.prewarm_max_starting
        self._starter = starter or ThreadPoolExecutor(self.max_starting, thread_name_prefix="prewarm")
        self._seen = SeenHints()
        self._lock = threading.Lock()
        self._queued = 0  # functions accepted and not yet finished
        self._later = Later(self._start, max_delayed)

    def hint(self, hint: PrewarmHint) -> None:
        """Take a hint from the consume loop: returns at once, starts in the background."""
        if not self.settings.prewarm:
            PREWARMS.labels("off").inc()
            return
        if not self._seen.first_time(hint.hint_id):
            PREWARMS.labels("duplicate").inc()
            return
        wait_s = start_in_s(hint.submitted_ms, hint.delay_ms, now_ms())
        if wait_s <= 0:
            self._start(hint)
        elif not self._later.add(wait_s, hint):
            PREWARMS.labels("busy").inc()

    def _start(self, hint: PrewarmHint) -> None:
        """Queue the hint's functions on the start slots (or drop them when too many wait)."""
        for function in hint.functions:
            with self._lock:
                if self._queued >= self.max_starting * QUEUED_PER_STARTER:
                    PREWARMS.labels("busy").inc()
                    continue
                self._queued += 1
            self._starter.submit(self._run, hint.namespace, function)

    def delayed(self) -> int:
        """Hints waiting for their time."""
        return self._later.waiting()

    def close(self) -> None:
        self._later.close()
        self._starter.shutdown(wait=False, cancel_futures=True)

    # -- one function (starter thread) ----------------------------------------------
    def _run(self, namespace: str, function: PrewarmFunction) -> None:
        try:
            outcome = self.prewarm(namespace, function)
        except Exception:  # a bug here must not end the starter thread
            log.exception("pre-warm of %s/%s crashed", namespace, function.action)
            outcome = "failed"
        finally:
            with self._lock:
                self._queued -= 1
        PREWARMS.labels(outcome).inc()

    def prewarm(self, namespace: str, function: PrewarmFunction) -> str:
        """Start what ``function`` lacks; the outcome (a metric label)."""
        try:
            doc = self.actions.get(namespace, function.action, None)
        except GleanerError as exc:
            log.warning("pre-warm of %s/%s: action store unreachable: %s", namespace, function.action, exc)
            return "failed"
        if doc is None:
            return "unknown_action"
        try:
            limits = Limits.from_json(doc["limits"])
        except (GleanerError, KeyError, TypeError, ValueError) as exc:
            log.warning("pre-warm of %s/%s: unreadable limits: %s", namespace, function.action, exc)
            return "failed"
        cpu, memory_mb = allocation_for(function.allocation, limits, self.capacity)
        key = container_key(namespace, function.action, doc)
        init = initializer(function.action, doc)
        started = 0
        # One at a time, each re-checked: a run may have left one warm meanwhile, and a
        # hint's other functions take the other start slots.
        while started < function.count:
            if not self._room_for(memory_mb, key):
                return "no_memory" if started == 0 else "started"
            if self.pool.reserve_warming(key, function.count, room=1) == 0:
                break
            try:
                self.pool.warm(key, cpu=cpu, memory_mb=memory_mb, init=init)
            except InitError as exc:
                log.info("pre-warm of %s failed to initialise: %s", key, exc)
                return "failed"
            except GleanerError as exc:
                log.warning("pre-warm of %s failed: %s", key, exc)
                return "failed"
            started += 1
            log.info("pre-warmed %s (stage %s) at %.2f cores / %d MB", key, function.stage, cpu, memory_mb)
        return "started" if started else "warm"

    def _room_for(self, memory_mb: int, key: str) -> bool:
        """Room in the pool's memory for one more container, evicting the least
        recently used idle ones first (as OpenWhisk's ContainerPool does): idle
        containers left by earlier work must not block pre-warm for good."""
        while self.pool.stats().get("memory_mb", 0) + memory_mb > self.capacity.memory_capacity_mb:
            if self.pool.evict_idle(1, keep=key) == 0:
                return False
        return True
