"""Warm container pool: one initialised action version per container, reused LIFO.

A warm hit costs a dict pop (plus a ``docker update`` when the allocation changed, as
harvesting does); a miss costs ``docker run`` (~0.3-0.5 s), proxy start-up and ``/init``.
Docker calls happen outside the lock, so a cold start never blocks other acquires.

Pre-warm (:mod:`invoker_agent.prewarm`) starts containers ahead of need with
:meth:`ContainerPool.reserve_warming` and :meth:`ContainerPool.warm`; they park idle
like any released container and go with the same keep-alive. An acquire that
finds no idle container while one for its key is warming waits for it rather
than start a second one; the wait is reported as its cold start (``init_ms``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from gleaner.container_labels import INCARNATION_LABEL, INVOKER_LABEL
from gleaner.errors import DockerError
from gleaner.settings import Settings
from invoker_agent.docker_engine import DEFAULT_CPU_SHARES, ContainerInfo, DockerEngine
from invoker_agent.proxy_client import ActionProxyClient
from monitor.cgroups import CgroupPaths

log = logging.getLogger(__name__)

ACTION_LABEL = "gleaner.action"
PROXY_PORT = 8080
READY_TIMEOUT_S = 30.0
_EPS = 1e-9


@dataclass(eq=False)  # identity semantics: a lease is one container's tenancy
class Lease:
    container: ContainerInfo
    client: ActionProxyClient
    cold: bool
    init_ms: float | None
    resized: bool
    cpu: float
    memory_mb: int
    key: str = ""
    cpu_shares: int = DEFAULT_CPU_SHARES  # its CPU weight (OpenWhisk's policy weighs by memory)
    idle_since: float = field(default=0.0, repr=False)
    # The container's cgroup directories, found on its first run (they last as long as it).
    cgroup: CgroupPaths | None = field(default=None, repr=False)


class ContainerPool:
    def __init__(
        self, engine: DockerEngine, settings: Settings, image: str | None = None, incarnation: str = ""
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.image = image or settings.runtime_image
        self.incarnation = incarnation
        self._lock = threading.Lock()
        self._warmed = threading.Condition(self._lock)  # a pre-warmed container parked
        self._idle: dict[str, list[Lease]] = {}  # key -> LIFO stack
        self._warming: dict[str, int] = {}  # key -> pre-warm starts under way
        self._busy: dict[str, Lease] = {}  # container id -> lease
        self._closed = False

    # ------------------------------------------------------------------ acquire / release
    def acquire(
        self,
        key: str,
        *,
        cpu: float,
        memory_mb: int,
        init: Callable[[ActionProxyClient], None],
        cpu_shares: int = DEFAULT_CPU_SHARES,
    ) -> Lease:
        """A container for action version ``key`` with the given allocation, ready to /run."""
        started = time.perf_counter()
        waited = False
        while True:
            while (warm := self._take_idle(key)) is not None:
                lease = self._reuse(warm, cpu, memory_mb, cpu_shares)
                if lease is not None:
                    if waited:  # it waited for a pre-warm start: that part of a cold start it saw
                        lease.cold, lease.init_ms = True, (time.perf_counter() - started) * 1000.0
                    return lease
            if not self._wait_for_warming(key, started + READY_TIMEOUT_S):
                return self._cold_start(key, cpu, memory_mb, init, cpu_shares)
            waited = True

    # ------------------------------------------------------------------ pre-warm
    def reserve_warming(self, key: str, wanted: int, room: int) -> int:
        """How many containers to pre-warm for ``key`` so that ``wanted`` are idle or
        warming (at most ``room``), counted as warming at once: two hints for one key
        never start more than it needs. Call :meth:`warm` that many times."""
        with self._lock:
            if self._closed:
                return 0
            idle = len(self._idle.get(key, ()))
            count = containers_to_start(wanted, idle, self._warming.get(key, 0), room)
            if count:
                self._warming[key] = self._warming.get(key, 0) + count
            return count

    def warm(
        self, key: str, *, cpu: float, memory_mb: int, init: Callable[[ActionProxyClient], None]
    ) -> Lease:
        """Start one reserved container for ``key`` and park it idle (raises like a cold start)."""
        try:
            lease = self._cold_start(key, cpu, memory_mb, init)
            self.release(lease)
            return lease
        finally:
            with self._lock:
                left = self._warming.get(key, 0) - 1
                if left > 0:
                    self._warming[key] = left
                else:
                    self._warming.pop(key, None)
                self._warmed.notify_all()

    def idle_count(self, key: str) -> int:
        with self._lock:
            return len(self._idle.get(key, ()))

    def _wait_for_warming(self, key: str, deadline: float) -> bool:
        """Wait while a container for ``key`` is being pre-warmed; False when none is
        (or the wait ran out): then the caller starts its own."""
        with self._lock:
            while self._warming.get(key, 0) > 0 and not self._idle.get(key):
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or self._closed:
                    return False
                self._warmed.wait(remaining)
            return bool(self._idle.get(key))

    def release(self, lease: Lease) -> None:
        """Back to the idle pool, ready for the next activation of the same key."""
        with self._lock:
            if self._busy.pop(lease.container.id, None) is None:
                return  # destroyed meanwhile, or released twice
            if not self._closed:
                lease.idle_since = time.monotonic()
                self._idle.setdefault(lease.key, []).append(lease)
                return
        self._remove(lease)

    def destroy(self, lease: Lease) -> None:
        """Remove the container (after a timeout, an OOM kill, a crash)."""
        with self._lock:
            self._busy.pop(lease.container.id, None)
            stack = self._idle.get(lease.key, [])
            if lease in stack:
                stack.remove(lease)
        self._remove(lease)

    # ------------------------------------------------------------------ housekeeping
    def reap_idle(self, now: float | None = None) -> int:
        """Remove containers idle for longer than ``settings.container_keepalive_s``."""
        now = time.monotonic() if now is None else now
        cutoff = now - self.settings.container_keepalive_s
        expired: list[Lease] = []
        with self._lock:
            for key, stack in list(self._idle.items()):
                keep = [lease for lease in stack if lease.idle_since > cutoff]
                expired.extend(lease for lease in stack if lease.idle_since <= cutoff)
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]
        for lease in expired:
            self._remove(lease)
        return len(expired)

    def evict_idle(self, count: int = 1, *, keep: str | None = None) -> int:
        """Remove up to ``count`` least recently used idle containers (to free memory),
        none of action version ``keep``."""
        with self._lock:
            idle = sorted(
                (lease for key, stack in self._idle.items() if key != keep for lease in stack),
                key=lambda x: x.idle_since,
            )
            victims = idle[:count]
            for lease in victims:
                self._idle[lease.key].remove(lease)
                if not self._idle[lease.key]:
                    del self._idle[lease.key]
        for lease in victims:
            self._remove(lease)
        return len(victims)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "idle": sum(len(s) for s in self._idle.values()),
                "busy": len(self._busy),
                "warming": sum(self._warming.values()),
                "memory_mb": sum(lease.memory_mb for lease in self._busy.values())
                + sum(lease.memory_mb for s in self._idle.values() for lease in s),
            }

    def shutdown(self) -> None:
        """Remove every container of this pool, idle or leased."""
        with self._lock:
            self._closed = True
            self._warmed.notify_all()
            everything = [lease for stack in self._idle.values() for lease in stack]
            everything += self._busy.values()
            self._idle.clear()
            self._busy.clear()
        for lease in everything:
            self._remove(lease)

    # ------------------------------------------------------------------ internals
    def _take_idle(self, key: str) -> Lease | None:
        with self._lock:
            if self._closed:
                raise DockerError("the container pool is shut down")
            stack = self._idle.get(key)
            if not stack:
                return None
            lease = stack.pop()  # LIFO: the most recently used is the warmest
            if not stack:
                del self._idle[key]
            self._busy[lease.container.id] = lease
            return lease

    def _reuse(
        self, lease: Lease, cpu: float, memory_mb: int, cpu_shares: int = DEFAULT_CPU_SHARES
    ) -> Lease | None:
        reweighed = lease.cpu_shares != cpu_shares
        resized = abs(lease.cpu - cpu) > _EPS or lease.memory_mb != memory_mb or reweighed
        if resized:
            try:
                self.engine.update(
                    lease.container.id,
                    cpu=cpu,
                    memory_mb=memory_mb,
                    cpu_shares=cpu_shares if reweighed else None,
                )
            except DockerError as exc:
                # e.g. the new memory limit is below what the container uses now
                log.info("resize of %s refused, replacing it: %s", lease.container.name, exc)
                self.destroy(lease)
                return None
        lease.cold, lease.init_ms, lease.resized = False, None, resized
        lease.cpu, lease.memory_mb, lease.cpu_shares = cpu, memory_mb, cpu_shares
        return lease

    def _cold_start(
        self,
        key: str,
        cpu: float,
        memory_mb: int,
        init: Callable[[ActionProxyClient], None],
        cpu_shares: int = DEFAULT_CPU_SHARES,
    ) -> Lease:
        started = time.perf_counter()
        name = f"gleaner-{self.settings.invoker_id}-{uuid.uuid4().hex[:12]}"
        labels = {
            INVOKER_LABEL: self.settings.invoker_id,
            INCARNATION_LABEL: self.incarnation,
            ACTION_LABEL: key[:255],
        }
        info = self.engine.start(
            image=self.image, name=name, cpu=cpu, memory_mb=memory_mb, labels=labels, cpu_shares=cpu_shares
        )
        client = ActionProxyClient(info.ip, PROXY_PORT, token=info.token)
        lease = Lease(
            info,
            client,
            cold=True,
            init_ms=None,
            resized=False,
            cpu=cpu,
            memory_mb=memory_mb,
            key=key,
            cpu_shares=cpu_shares,
        )
        with self._lock:
            self._busy[info.id] = lease
            closed = self._closed
        try:
            if closed:
                raise DockerError("the container pool is shut down")
            client.wait_ready(READY_TIMEOUT_S)
            init(client)
        except BaseException:
            self.destroy(lease)
            raise
        lease.init_ms = (time.perf_counter() - started) * 1000.0
        return lease

    def _remove(self, lease: Lease) -> None:
        lease.client.close()
        try:
            self.engine.remove(lease.container.id)
        except DockerError as exc:
            log.warning("could not remove container %s: %s", lease.container.name, exc)


def containers_to_start(wanted: int, idle: int, warming: int, room: int) -> int:
    """Pre-warm decision, pure: what is missing of ``wanted`` beyond the idle and warming
    containers of a key, at most ``room`` (starts this invoker may still begin)."""
    return max(0, min(wanted - idle - warming, room))
