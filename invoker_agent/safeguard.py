"""The safeguard (Freyr; Libra): a harvested activation running near its cap
gets its user allocation back, live.

Near its cap means CPU use averaging >= 90 % of its current CPU limit over the
last two windows (each at least one CFS period, so a throttled container is not
mistaken for an idle one), or memory >= 90 % of its limit. The average, not each
window: CFS grants the quota per 100 ms period, so a capped container's rate in
one window swings around its cap (0.8x, then 1.2x) and a per-window test could
miss it for a whole second.

Work-aware: a harvested CPU-bound function runs at its cap by design, so being at
the cap says nothing about whether it was sized wrongly. When the activation
carries a predicted amount of work (CPU-seconds), the CPU condition fires only
once it has used more than that and is still at its cap: the model
underestimated it (a straggler predicted light). Memory fires as before. :class:`NearCap` is the pure
decision; :class:`SafeguardWatch` is one thread that checks every watched
activation once per window, reading the samples its cgroup sampler already takes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.cgroups import CgroupSampler
from monitor.usage import MIB

log = logging.getLogger(__name__)

CPU_NEAR = 0.90
MEMORY_NEAR = 0.90
WINDOWS = 2


@dataclass(slots=True)
class NearCap:
    """Keeps the last windows' use as a fraction of the cap; says why once the safeguard should fire."""

    cpu_near: float = CPU_NEAR
    memory_near: float = MEMORY_NEAR
    windows: int = WINDOWS
    work_cpu_s: float | None = None  # predicted CPU-seconds; None: fire on the cap alone
    recent: list[float] = field(default_factory=list)  # use / limit of the last windows

    def observe(
        self,
        cpu_used: float,
        cpu_limit: float,
        memory_mb: float,
        memory_limit_mb: float,
        cpu_s_so_far: float = 0.0,
    ) -> str | None:
        if memory_limit_mb > 0 and memory_mb >= self.memory_near * memory_limit_mb:
            return f"memory {memory_mb:.0f} MB >= {self.memory_near:.0%} of its {memory_limit_mb:.0f} MB"
        self.recent = [*self.recent[-(self.windows - 1) :], cpu_used / cpu_limit if cpu_limit > 0 else 0.0]
        share = sum(self.recent) / self.windows
        near = len(self.recent) == self.windows and share >= self.cpu_near
        if near and (self.work_cpu_s is None or cpu_s_so_far > self.work_cpu_s):
            used = f"cpu {share * cpu_limit:.2f} cores >= {self.cpu_near:.0%} of its {cpu_limit:g}"
            if self.work_cpu_s is not None:
                return f"{used} after {cpu_s_so_far:.2f} CPU-s, beyond the {self.work_cpu_s:.2f} predicted"
            return f"{used} over {self.windows} windows"
        return None


def window_rate(samples: list[tuple[int, int, int]], window_ns: int) -> tuple[float, float] | None:
    """(cores, MB) over the last window of at least ``window_ns``; None before one has passed."""
    if len(samples) < 2:
        return None
    last = samples[-1]
    for earlier in reversed(samples[:-1]):
        if last[0] - earlier[0] >= window_ns:
            dt = last[0] - earlier[0]
            return max(0, last[1] - earlier[1]) / dt, last[2] / MIB
    return None


def cpu_seconds(samples: list[tuple[int, int, int]]) -> float:
    """CPU-seconds used since the first sample (a warm container's counter starts earlier)."""
    return max(0, samples[-1][1] - samples[0][1]) / 1e9 if len(samples) >= 2 else 0.0


@dataclass(slots=True)
class _Watched:
    sampler: CgroupSampler
    limits: Callable[[], tuple[float, int] | None]  # its current (cpu, memory MB), None once ended
    fire: Callable[[str], None]
    check: NearCap


@dataclass(slots=True)
class _Reported:
    """An activation whose CPU use the scheduler wants each window (lending across requests)."""

    sampler: CgroupSampler
    report: Callable[[float], None]  # cores: the peak of the last USAGE_WINDOWS windows
    rates: list[float]


USAGE_WINDOWS = 3  # no report before this many windows: a starting function looks idle


class SafeguardWatch:
    """Checks watched activations every ``window_ms`` on one daemon thread."""

    def __init__(self, window_ms: int) -> None:
        self.window_ns = window_ms * 1_000_000
        self.window_s = window_ms / 1000
        self._lock = threading.Lock()
        self._watched: dict[str, _Watched] = {}
        self._reported: dict[str, _Reported] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def watch(
        self,
        key: str,
        sampler: CgroupSampler,
        limits: Callable[[], tuple[float, int] | None],
        fire: Callable[[str], None],
        work_cpu_s: float | None = None,
    ) -> None:
        with self._lock:
            self._watched[key] = _Watched(sampler, limits, fire, NearCap(work_cpu_s=work_cpu_s))
            self._start()

    def report_usage(self, key: str, sampler: CgroupSampler, report: Callable[[float], None]) -> None:
        """Each window, tell ``report`` the activation's recent peak use (once enough are seen)."""
        with self._lock:
            self._reported[key] = _Reported(sampler, report, [])
            self._start()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="safeguard", daemon=True)
            self._thread.start()

    def unwatch(self, key: str) -> None:
        with self._lock:
            self._watched.pop(key, None)

    def forget(self, key: str) -> None:
        """``key`` ended: no safeguard, no usage reports."""
        with self._lock:
            self._watched.pop(key, None)
            self._reported.pop(key, None)

    def stop(self) -> None:
        self._stop.set()

    def check_once(self) -> None:
        self._check_safeguards()
        self._report_usage()

    def _report_usage(self) -> None:
        with self._lock:
            reported = list(self._reported.values())
        for r in reported:
            rate = window_rate(list(r.sampler.samples), self.window_ns)
            if rate is None:
                continue
            r.rates = [*r.rates[-(USAGE_WINDOWS - 1) :], rate[0]]
            if len(r.rates) < USAGE_WINDOWS:
                continue
            try:
                r.report(max(r.rates))
            except Exception:  # lending must never take the invoker down
                log.exception("usage report failed")

    def _check_safeguards(self) -> None:
        with self._lock:
            watched = list(self._watched.items())
        for key, w in watched:
            samples = list(w.sampler.samples)
            rate = window_rate(samples, self.window_ns)
            limits = w.limits()
            if rate is None or limits is None:
                continue
            why = w.check.observe(rate[0], limits[0], rate[1], limits[1], cpu_seconds(samples))
            if why is None:
                continue
            self.unwatch(key)  # once: it now has its user allocation
            try:
                w.fire(why)
            except Exception:  # a safeguard must never take the invoker down
                log.exception("safeguard of %s failed", key)

    def _loop(self) -> None:
        while not self._stop.wait(self.window_s):
            self.check_once()
