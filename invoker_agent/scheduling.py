"""Scheduling choices of one invoker, as pure functions (no clock, no state).

The ledger (:mod:`invoker_agent.ledger`) owns the claims; this module only
answers two questions about them, so both can be tested on their own:

- **In what order are claims served?** (:func:`order_key`)
  ``fifo`` by arrival at the invoker; ``age`` by when the claim's DAG request
  started; ``slack`` (least slack first) by the latest time the claim can start
  and still let its request meet its deadline: ``deadline - remaining``, where
  ``remaining`` is the request's predicted critical path from this function on.
  Comparing latest starts at one instant is comparing slacks
  (``slack = deadline - now - remaining``). A claim with no deadline (a single
  action, or a DAG with nothing learned yet) has no slack to spare: its latest
  start is when it queued.

  **The waiting bound.** A latest start is clamped into ``[queued - bound,
  queued + bound]``. A claim that queued at ``t`` can therefore be passed only by
  claims that queued before ``t + 2 * bound``: however urgent the later
  arrivals, a large request is not starved.

- **May a waiter start ahead of the head of the queue?** (:func:`reservation`,
  :func:`may_backfill`, EASY backfilling.) The head gets a reserved start: the
  predicted moment enough running claims will have ended for it to fit. A later
  waiter that fits the free capacity now starts now if it is predicted to end
  before that moment, or if it only uses capacity the head will not need even
  then. A running claim whose end cannot be predicted ends "never" for this
  arithmetic; the ledger stops backfilling past a head that waited longer than
  the bound, which keeps the head from waiting forever on wrong predictions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from gleaner.errors import InvalidLimits

SchedulerOrder = Literal["fifo", "age", "slack"]
SCHEDULER_ORDERS: tuple[str, ...] = get_args(SchedulerOrder)


def check_order(name: str) -> SchedulerOrder:
    if name not in SCHEDULER_ORDERS:
        raise ValueError(f"scheduler order {name!r} is not one of {', '.join(SCHEDULER_ORDERS)}")
    return name  # type: ignore[return-value]


class _SchedulerSettings(Protocol):
    """The part of ``gleaner.settings.Settings`` that configures the scheduler."""

    @property
    def scheduler(self) -> str: ...
    @property
    def scheduler_backfill(self) -> bool: ...
    @property
    def scheduler_wait_bound_ms(self) -> float: ...
    @property
    def scheduler_lending(self) -> bool: ...
    @property
    def scheduler_lend_margin(self) -> float: ...


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """How one invoker's ledger serves claims across requests (the default: FIFO alone)."""

    order: SchedulerOrder = "fifo"
    backfill: bool = False  # EASY backfill behind a head that does not fit
    wait_bound_ms: float = 30_000.0  # starvation bound of the order, and of backfill
    lending: bool = False  # lend running claims' measured idle cores to a waiter
    lend_margin: float = 0.25  # cores a lender keeps above its measured use

    def __post_init__(self) -> None:
        try:
            check_order(self.order)
        except ValueError as exc:
            raise InvalidLimits(str(exc)) from exc
        if not self.wait_bound_ms > 0 or not self.lend_margin >= 0:
            raise InvalidLimits("the scheduler needs a positive waiting bound and a lend margin >= 0")

    @classmethod
    def from_settings(cls, s: _SchedulerSettings) -> SchedulerConfig:
        return cls(
            check_order(s.scheduler),
            s.scheduler_backfill,
            s.scheduler_wait_bound_ms,
            s.scheduler_lending,
            s.scheduler_lend_margin,
        )


FIFO_ONLY = SchedulerConfig()  # the invoker before issue 20: one FIFO queue, nothing else


def latest_start(deadline_ms: float | None, remaining_ms: float, queued_ms: float, bound_ms: float) -> float:
    """The latest moment a claim may start and still let its request meet its deadline,
    clamped to within ``bound_ms`` of when it queued (the starvation bound)."""
    if deadline_ms is None or not math.isfinite(deadline_ms):
        return queued_ms
    wanted = deadline_ms - max(0.0, remaining_ms)
    return min(max(wanted, queued_ms - bound_ms), queued_ms + bound_ms)


def order_key(order: SchedulerOrder, seq: int, request_ms: float, urgency: float) -> tuple[float, int]:
    """Smaller first. ``seq`` (arrival at the invoker) breaks ties, so each order is total."""
    if order == "age":
        return (request_ms, seq)
    if order == "slack":
        return (urgency, seq)
    return (0.0, seq)


def run_estimate_ms(run_ms: float | None, cpu_plan: float, cpu: float) -> float:
    """How long a claim predicted to run ``run_ms`` at ``cpu_plan`` cores takes at ``cpu``
    (linear in cores, which errs long when a function scales worse); inf when unknown."""
    if run_ms is None or not math.isfinite(run_ms) or run_ms < 0:
        return math.inf
    if cpu <= 0:
        return math.inf
    return run_ms * max(1.0, cpu_plan / cpu)


@dataclass(frozen=True, slots=True)
class Running:
    """What the reservation needs of a running claim."""

    cpu: float
    memory_mb: int
    ends_ms: float  # predicted end (inf: unknown)


@dataclass(frozen=True, slots=True)
class Reservation:
    """The head's reserved start, and what will still be spare then."""

    start_ms: float  # when the head is predicted to fit (inf: not predictable)
    spare_cpu: float  # free cores at that moment beyond the head's need
    spare_memory_mb: int


def reservation(
    now_ms: float,
    free_cpu: float,
    free_memory_mb: int,
    running: Iterable[Running],
    need_cpu: float,
    need_memory_mb: int,
    eps: float = 1e-9,
) -> Reservation:
    """When the head fits, if running claims end as predicted (growth and releases aside)."""
    cpu, mem, at = free_cpu, free_memory_mb, now_ms
    for r in sorted(running, key=lambda r: r.ends_ms):
        if cpu + eps >= need_cpu and mem >= need_memory_mb:
            break
        at = max(at, r.ends_ms)
        cpu += r.cpu
        mem += r.memory_mb
    if not (cpu + eps >= need_cpu and mem >= need_memory_mb):
        return Reservation(math.inf, 0.0, 0)  # never, on this invoker's present claims
    return Reservation(at, max(0.0, cpu - need_cpu), mem - need_memory_mb)


def may_backfill(now_ms: float, run_ms: float, cpu: float, memory_mb: int, held: Reservation) -> bool:
    """EASY's rule: done before the head's reserved start, or only on what is spare then."""
    if math.isfinite(run_ms) and now_ms + run_ms <= held.start_ms:
        return True
    return cpu <= held.spare_cpu + 1e-9 and memory_mb <= held.spare_memory_mb
