"""CPU and memory permits for threads: the pure :class:`CapacityLedger` behind a lock.

An activation thread blocks in :meth:`ResourcePermits.acquire` until its claim
is granted (FIFO; thesis §3.6). Every live change the ledger decides for
*other* running activations (grow, timely release, safeguard) is applied to
their containers by the resizer each registered with :meth:`attach`, outside
the lock, latest value wins. A resize that fails leaves that activation at its
previous allocation (:meth:`CapacityLedger.revert`) and is recorded.

Each activation's changes are kept as its allocation trajectory and handed
back by :meth:`end`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from gleaner.allocation import AllocationChange, ChangeReason
from gleaner.errors import DockerError
from gleaner.metrics import RESIZES
from invoker_agent.ledger import CapacityLedger, Claim, Resize
from streams.events import now_ms

log = logging.getLogger(__name__)

Resizer = Callable[[float, int], None]  # (cpu cores, memory MB) -> applied, or DockerError


@dataclass(frozen=True, slots=True)
class PermitsView:
    """One invoker's permits at a moment, for its heartbeat and the dashboard."""

    cpu_free: float
    memory_free_mb: int
    waiting: int  # activations waiting for permits
    cpu_lent: float  # cores running claims have lent to others (idle CPU lent across requests)


@dataclass(slots=True)
class _Applier:
    resize: Resizer
    applied: tuple[float, int]
    lock: threading.Lock = field(default_factory=threading.Lock)


class ResourcePermits:
    def __init__(self, ledger: CapacityLedger) -> None:
        self.ledger = ledger
        self._cond = threading.Condition()
        self._changes: dict[str, list[AllocationChange]] = {}
        self._appliers: dict[str, _Applier] = {}

    @property
    def cpu_capacity(self) -> float:
        return self.ledger.cpu_capacity

    @property
    def memory_capacity_mb(self) -> int:
        return self.ledger.memory_capacity_mb

    def fits_ever(self, cpu: float, memory_mb: int) -> bool:
        return self.ledger.fits_ever(cpu, memory_mb)

    # ------------------------------------------------------------------ lifecycle of a claim
    def acquire(self, claim: Claim, timeout_s: float | None = None) -> bool:
        """Block until ``claim`` is granted (its ``cpu`` is then set). False on timeout.
        Raises InvalidLimits when it could never fit."""
        with self._cond:
            self._changes[claim.key] = []
            todo = self._note(self.ledger.submit(claim))
            self._cond.notify_all()
            granted = self._cond.wait_for(lambda: claim.granted, timeout_s)
            if not granted:
                self._changes.pop(claim.key, None)
                todo += self._note(self.ledger.withdraw(claim.key))
                self._cond.notify_all()
        self._apply(todo)
        return granted

    def attach(self, key: str, resize: Resizer, applied: tuple[float, int]) -> None:
        """``key``'s container now runs with ``applied``; later changes go through ``resize``.
        A change decided while the container was being leased is applied at once."""
        with self._cond:
            self._appliers[key] = _Applier(resize, applied)
        self._apply([key])

    def safeguard(self, key: str, note: str) -> None:
        with self._cond:
            todo = self._note(self.ledger.safeguard(key), note)
            self._cond.notify_all()
        self._apply(todo)

    def observe_usage(self, key: str, used_cpu: float) -> None:
        """``key``'s measured CPU use: it may lend idle cores, or take lent ones back."""
        with self._cond:
            todo = self._note(self.ledger.observe_usage(key, used_cpu))
            self._cond.notify_all()
        self._apply(todo)

    @property
    def lending(self) -> bool:
        return self.ledger.scheduler.lending

    def end(self, key: str) -> list[AllocationChange]:
        """``key`` ended: its permits return (first to its siblings); its trajectory."""
        with self._cond:
            self._appliers.pop(key, None)
            todo = self._note(self.ledger.end(key))
            changes = self._changes.pop(key, [])
            self._cond.notify_all()
        self._apply(todo)
        return changes

    def current(self, key: str) -> tuple[float, int] | None:
        with self._cond:
            claim = self.ledger.running.get(key)
            return None if claim is None else (claim.cpu, claim.memory_mb)

    def snapshot(self) -> tuple[float, int, int]:
        """(free cores, free MB, waiting activations)."""
        with self._cond:
            return self.ledger.cpu_free, self.ledger.memory_free_mb, len(self.ledger.waiting)

    def view(self) -> PermitsView:
        with self._cond:
            led = self.ledger
            return PermitsView(led.cpu_free, led.memory_free_mb, len(led.waiting), led.cpu_lent_out())

    def waiting_totals(self) -> tuple[float, float]:
        """(ms during which anything waited, cores granted x ms meanwhile), up to now."""
        with self._cond:
            self.ledger.account()
            return self.ledger.waited_ms, self.ledger.reserved_core_ms

    # ------------------------------------------------------------------ internals
    def _note(self, resizes: list[Resize], note: str | None = None) -> list[str]:
        """Record each change in its claim's trajectory (lock held); the keys to apply."""
        at = now_ms()
        keys: list[str] = []
        for r in resizes:
            changes = self._changes.get(r.key)
            if changes is not None:
                changes.append(AllocationChange(at, r.cpu, r.memory_mb, r.reason, r.note or note))
            if not r.start:
                keys.append(r.key)
                RESIZES.labels(r.reason).inc()
        return keys

    def _apply(self, keys: list[str]) -> None:
        """Bring each container to its claim's current allocation (lock not held)."""
        for key in dict.fromkeys(keys):
            with self._cond:
                applier = self._appliers.get(key)
                claim = self.ledger.running.get(key)
            if applier is None or claim is None:
                continue  # not leased yet (attach applies it) or already ended
            with applier.lock:
                with self._cond:
                    want = (claim.cpu, claim.memory_mb)
                if want == applier.applied or claim.ended:
                    continue
                try:
                    applier.resize(*want)
                    applier.applied = want
                except DockerError as exc:
                    log.warning("live resize of %s to %s failed: %s", key, want, exc)
                    self._failed(key, applier.applied, str(exc))

    def _failed(self, key: str, applied: tuple[float, int], why: str) -> None:
        with self._cond:
            reason: ChangeReason = "resize-failed"
            changes = self._changes.get(key)
            if changes is not None:
                changes.append(AllocationChange(now_ms(), applied[0], applied[1], reason, why[:200]))
            todo = self._note(self.ledger.revert(key, *applied))
            self._cond.notify_all()
        self._apply(todo)
