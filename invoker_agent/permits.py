"""CPU and memory permits, granted together (thesis §3.6, extended semaphore).

An activation waits until both its cores and its megabytes are free. Waiters
are served strictly in arrival order, so a large request is not starved by a
stream of small ones behind it.
"""

from __future__ import annotations

import threading
from collections import deque

from gleaner.errors import InvalidLimits

_EPS = 1e-9


class ResourcePermits:
    def __init__(self, cpu_capacity: float, memory_capacity_mb: int) -> None:
        self.cpu_capacity = cpu_capacity
        self.memory_capacity_mb = memory_capacity_mb
        self._cpu_free = cpu_capacity
        self._mem_free = memory_capacity_mb
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()

    def fits_ever(self, cpu: float, memory_mb: int) -> bool:
        return cpu <= self.cpu_capacity + _EPS and memory_mb <= self.memory_capacity_mb

    def acquire(self, cpu: float, memory_mb: int, timeout_s: float | None = None) -> bool:
        """Block until both are free (FIFO). False on timeout."""
        if not self.fits_ever(cpu, memory_mb):
            raise InvalidLimits(
                f"allocation {cpu} cores / {memory_mb} MB exceeds the invoker's capacity "
                f"{self.cpu_capacity} cores / {self.memory_capacity_mb} MB"
            )
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            ok = self._cond.wait_for(
                lambda: (
                    self._queue[0] is ticket and self._cpu_free + _EPS >= cpu and self._mem_free >= memory_mb
                ),
                timeout_s,
            )
            if not ok:
                self._queue.remove(ticket)
                self._cond.notify_all()
                return False
            self._queue.popleft()
            self._cpu_free -= cpu
            self._mem_free -= memory_mb
            self._cond.notify_all()
            return True

    def release(self, cpu: float, memory_mb: int) -> None:
        with self._cond:
            self._cpu_free = min(self.cpu_capacity, self._cpu_free + cpu)
            self._mem_free = min(self.memory_capacity_mb, self._mem_free + memory_mb)
            self._cond.notify_all()

    def resize(self, old: tuple[float, int], new: tuple[float, int]) -> bool:
        """Swap a running activation's permits without queueing (for live
        resizes later); False when the extra is not free now."""
        dcpu, dmem = new[0] - old[0], new[1] - old[1]
        with self._cond:
            if self._cpu_free + _EPS < dcpu or self._mem_free < dmem:
                return False
            self._cpu_free -= dcpu
            self._mem_free -= dmem
            self._cond.notify_all()
            return True

    def snapshot(self) -> tuple[float, int, int]:
        """(free cores, free MB, waiting activations)."""
        with self._cond:
            return self._cpu_free, self._mem_free, len(self._queue)
