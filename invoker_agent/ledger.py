"""One invoker's CPU and memory, as a pure ledger of claims (no threads, no I/O).

Every activation is a :class:`Claim`: it waits in one FIFO queue, is granted
CPU and memory together (thesis §3.6), may change its CPU while it runs, and
gives everything back when it ends. Each operation returns the
:class:`Resize` steps that the caller applies to containers; the ledger never
touches Docker. :mod:`invoker_agent.permits` wraps it in a lock for threads.

What a *live* claim (policy ``gleaner``) may do beyond the thesis's static grant:

- **start now**: at the head of the queue, start at the largest grid value
  that fits the free cores, at least ``floor`` (the user allocation, or the plan
  when that is lower), rather than wait for the whole plan;
- **grow**: take cores that free up, back up to its plan, before any later
  arrival is served (it arrived first);
- **timely release**: when a sibling (same request, same stage) ends, its cores
  go to the running siblings up to each one's useful maximum ``cap``, first to
  the one predicted to finish last; only the rest returns to the queue.

A **safeguard** (policies ``libra`` and ``gleaner``) raises a harvested claim
back to its user allocation, ahead of every waiter.

**Yield** (load-aware, on for ``gleaner`` unless ``GLEANER_HARVEST_YIELD=false``):
cores a claim holds above what it is owed (its plan; its user allocation once
the safeguard fired) are extra: whatever timely release or growth gave it. The
moment anyone waits, a yielding claim gives the extra back (``reclaim``), and
while anyone waits it receives none; when the queue is empty it takes them
again. Under load a sibling's cores then start the next request instead of
speeding a straggler past its plan, so a request is never charged more than
its plan while another waits.

**Order** (``GLEANER_SCHEDULER``, :mod:`invoker_agent.scheduling`): ``fifo`` serves by
arrival, and growth before any waiter (it arrived first). ``age`` and ``slack``
(least slack first, the default) order the queue by the DAG request's start or by
each claim's latest start, and growth (including a safeguard's) waits its turn
in that order, so a straggler's extra cores never delay a more urgent claim. Under
``slack``, a yielding claim also gives back the acceleration of its plan above its
user allocation while a more urgent claim waits (the core-second budget: cores
above the user allocation come only from capacity nobody more urgent needs).

**Backfill** (EASY, on with ``GLEANER_SCHEDULER_BACKFILL``): when the head of the
queue does not fit, a later waiter that fits now starts now, if it is predicted to
end before the head's reserved start or uses only what the head will not need
then; never past a head that has waited longer than the waiting bound.

**Idle capacity** (opt-in per claim): while nobody waits, a claim may borrow idle
cores up to their ``cap``; the moment a claim queues, every borrowed core is
taken back (``reclaim``). Borrowed cores are never charged to the request: the
stage budget bounds ``target``, not what is lent.

Invariant (property-tested): free + Σ granted == capacity, per dimension, and
nothing is ever negative.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from gleaner.allocation import ChangeReason
from gleaner.errors import InvalidLimits
from invoker_agent.scheduling import (
    FIFO_ONLY,
    Running,
    SchedulerConfig,
    latest_start,
    may_backfill,
    order_key,
    reservation,
    run_estimate_ms,
)
from streams.events import now_ms

EPS = 1e-9
TAKE_BACK_NEAR = 0.9  # a lender using this share of what it kept takes its lent cores back


def floor_to_step(value: float, step: float) -> float:
    """The largest multiple of ``step`` not above ``value`` (float noise forgiven)."""
    return round(math.floor(value / step + 1e-6) * step, 9)


@dataclass(slots=True)
class Claim:
    key: str  # activation id
    cpu_plan: float  # what it was planned (or asked) to run with
    memory_mb: int
    cpu_floor: float  # the least it may start with (<= cpu_plan)
    cap: float  # useful maximum: timely release never goes above it
    user_cpu: float
    user_memory_mb: int
    live: bool = False  # start-now, grow and timely release
    borrows: bool = False  # may borrow idle cores while nobody waits
    guarded: bool = False  # the safeguard fired: it grows back to its user allocation
    priority: float = 0.0  # by age: when its DAG request started (epoch ms); older goes first
    group: tuple[str, int] | None = None  # (DAG request, stage): who shares released cores
    work: float = 0.0  # predicted work; with it, who is predicted to finish last
    yields: bool = False  # load-aware: what it holds above its user allocation goes to waiters
    deadline_ms: float | None = None  # its DAG request's deadline (epoch ms); None: none known
    remaining_ms: float = 0.0  # predicted critical path of its request from this function on
    run_ms: float | None = None  # its own predicted run at cpu_plan; None: unknown
    # granted state
    cpu: float = 0.0
    granted: bool = False
    ended: bool = False
    target: float = field(default=0.0)  # what it may grow back to (plan, or more after a release)
    lent: float = 0.0  # idle cores it holds on loan, above what it was granted
    seq: int = 0
    lent_out: float = 0.0  # cores it was granted but lent to others because it did not use them
    used_cpu: float | None = None  # measured use (cores, recent windows' peak); None: not yet
    borrower: bool = False  # started on lent cores: the first to give them back
    memory_only: bool = False  # OpenWhisk's admission: memory permits only, CPU weighed by shares
    queued_ms: float = 0.0  # when it reached the ledger
    granted_ms: float = 0.0  # when it started
    urgency: float = 0.0  # its latest start (least slack first), set when it queues

    def __post_init__(self) -> None:
        self.target = self.cpu_plan
        self.cpu_floor = min(self.cpu_floor, self.cpu_plan)
        self.cap = max(self.cap, self.cpu_plan)

    @property
    def harvested(self) -> bool:
        return self.cpu + EPS < self.user_cpu or self.memory_mb < self.user_memory_mb


@dataclass(frozen=True, slots=True)
class Resize:
    """A change to apply: ``key`` now runs with ``cpu`` cores and ``memory_mb`` MB."""

    key: str
    cpu: float
    memory_mb: int
    reason: ChangeReason
    start: bool = False  # True: the grant that lets a waiting claim start
    note: str | None = None  # the scheduler's why, for the record (e.g. whom a backfill passed)


class CapacityLedger:
    def __init__(
        self,
        cpu_capacity: float,
        memory_capacity_mb: int,
        cpu_step: float = 0.25,
        scheduler: SchedulerConfig = FIFO_ONLY,
        *,
        clock: Callable[[], float] = now_ms,
    ) -> None:
        if cpu_capacity <= 0 or memory_capacity_mb <= 0 or cpu_step <= 0:
            raise InvalidLimits("an invoker needs positive capacity and a positive CPU step")
        self.cpu_capacity = cpu_capacity
        self.memory_capacity_mb = memory_capacity_mb
        self.cpu_step = cpu_step
        self.scheduler = scheduler
        self.order = scheduler.order  # read on every comparison
        self.clock = clock  # epoch ms; injected so that tests drive time
        self.cpu_free = cpu_capacity
        self.memory_free_mb = memory_capacity_mb
        self.waiting: deque[Claim] = deque()
        self.running: dict[str, Claim] = {}
        self._seq = 0
        # While anything waits: for how long (ms), and cores granted x ms (backfill's measure).
        self.waited_ms = 0.0
        self.reserved_core_ms = 0.0
        self._accounted_ms: float | None = None

    # ------------------------------------------------------------------ queries
    def fits_ever(self, cpu: float, memory_mb: int) -> bool:
        return cpu <= self.cpu_capacity + EPS and memory_mb <= self.memory_capacity_mb

    def cpu_lent_out(self) -> float:
        """Cores running claims have lent out (measured idle), summed."""
        return round(sum(c.lent_out for c in self.running.values()), 9)

    def claims(self) -> Iterator[Claim]:
        yield from self.running.values()

    def account(self) -> None:
        """Add the time since the last operation to the waiting totals (state was constant)."""
        now = self.clock()
        last, self._accounted_ms = self._accounted_ms, now
        if last is None or not self.waiting or now <= last:
            return
        self.waited_ms += now - last
        self.reserved_core_ms += (now - last) * (self.cpu_capacity - self.cpu_free)

    # ------------------------------------------------------------------ operations
    def submit(self, claim: Claim) -> list[Resize]:
        """Queue ``claim``; the grants this causes (maybe its own, with ``start``)."""
        self.account()
        if not self.fits_ever(claim.cpu_plan, claim.memory_mb):
            raise InvalidLimits(
                f"allocation {claim.cpu_plan} cores / {claim.memory_mb} MB exceeds the invoker's "
                f"capacity {self.cpu_capacity} cores / {self.memory_capacity_mb} MB"
            )
        if claim.key in self.running or any(c.key == claim.key for c in self.waiting):
            raise InvalidLimits(f"activation {claim.key} already holds a claim")
        self._seq += 1
        claim.seq = self._seq
        claim.cap = min(claim.cap, self.cpu_capacity)
        claim.queued_ms = self.clock()
        claim.urgency = latest_start(
            claim.deadline_ms, claim.remaining_ms, claim.queued_ms, self.scheduler.wait_bound_ms
        )
        self.waiting.append(claim)
        if self.order != "fifo":  # the most urgent first; FIFO among equals
            self.waiting = deque(sorted(self.waiting, key=self._order))
        return self._schedule()

    def withdraw(self, key: str) -> list[Resize]:
        """A waiter gives up (timed out): the queue moves on."""
        self.account()
        for claim in list(self.waiting):
            if claim.key == key:
                self.waiting.remove(claim)
        return self._schedule()

    def end(self, key: str) -> list[Resize]:
        """``key`` finished: its memory and cores go back; cores first to its siblings."""
        self.account()
        claim = self.running.pop(key, None)
        if claim is None:
            return []
        claim.ended = True
        self.memory_free_mb += claim.memory_mb
        freed = claim.cpu
        self.cpu_free += freed
        out: list[Resize] = []
        if claim.live and claim.group is not None:
            # Borrowed idle cores were never the stage's: only its granted cores go to siblings.
            out += self._release_to_siblings(claim.group, freed - claim.lent)
        return out + self._schedule()

    def safeguard(self, key: str) -> list[Resize]:
        """Give a harvested claim its user allocation back, ahead of every waiter.
        Whatever is not free now it takes as soon as it frees."""
        self.account()
        claim = self.running.get(key)
        if claim is None or not claim.harvested:
            return []
        claim.target = max(claim.target, claim.user_cpu)
        claim.cap = max(claim.cap, claim.user_cpu)
        out: list[Resize] = []
        extra_mem = max(0, claim.user_memory_mb - claim.memory_mb)
        if extra_mem <= self.memory_free_mb:
            self.memory_free_mb -= extra_mem
            claim.memory_mb += extra_mem
        grow = (
            0.0 if self._passed_by_waiter(claim) else self._take(min(claim.target - claim.cpu, self.cpu_free))
        )
        claim.cpu = round(claim.cpu + grow, 9)
        out.append(Resize(key, claim.cpu, claim.memory_mb, "safeguard"))
        claim.guarded = True  # from now on it grows back to its target as cores free up
        return out + self._schedule()

    def observe_usage(self, key: str, used_cpu: float) -> list[Resize]:
        """``key`` was measured using ``used_cpu`` cores (its recent windows' peak). A lender
        near what it kept takes its lent cores back, ahead of everyone; otherwise its idle
        cores may now be lent to a waiter."""
        self.account()
        claim = self.running.get(key)
        if claim is None or not math.isfinite(used_cpu):
            return []
        claim.used_cpu = max(0.0, used_cpu)
        if claim.lent_out > EPS and claim.used_cpu >= TAKE_BACK_NEAR * claim.cpu:
            return self._take_back(claim, f"used {claim.used_cpu:.2f} of the {claim.cpu:g} cores it kept")
        if self.scheduler.lending and self.waiting:
            return self._schedule()
        return []

    def revert(self, key: str, cpu: float, memory_mb: int) -> list[Resize]:
        """A resize did not apply: ``key`` keeps ``cpu`` / ``memory_mb``; the difference returns."""
        self.account()
        claim = self.running.get(key)
        if claim is None:
            return []
        # A lender whose shrink failed kept the cores it lent: the borrowers give them back.
        kept = round(cpu - claim.cpu, 9) if claim.lent_out > EPS else 0.0
        self.cpu_free += claim.cpu - cpu
        self.memory_free_mb += claim.memory_mb - memory_mb
        claim.cpu, claim.memory_mb, claim.lent = cpu, memory_mb, 0.0
        claim.lent_out, claim.used_cpu = 0.0, None
        out: list[Resize] = []
        if kept > EPS:
            cut, out = self._cut_borrowers(kept, claim, f"{key} could not lend its cores")
            self.cpu_free = round(self.cpu_free + cut, 9)
        claim.target = min(claim.target, max(cpu, claim.cpu_plan))
        # No more live changes for a container that refused one.
        claim.live = claim.borrows = claim.guarded = claim.yields = False
        return out + self._schedule()

    # ------------------------------------------------------------------ internals
    def _take(self, cores: float) -> float:
        """Take up to ``cores`` (on the step) from the free cores."""
        amount = floor_to_step(max(0.0, min(cores, self.cpu_free)), self.cpu_step)
        self.cpu_free = round(self.cpu_free - amount, 9)
        return amount

    def _release_to_siblings(self, group: tuple[str, int], freed: float) -> list[Resize]:
        siblings = [c for c in self.running.values() if c.group == group and c.live]
        budget = floor_to_step(min(freed, self.cpu_free), self.cpu_step)
        grown: dict[str, Claim] = {}
        while budget >= self.cpu_step - EPS:
            open_ = [c for c in siblings if c.cpu + self.cpu_step <= self._release_limit(c) + EPS]
            if not open_:
                break
            # The one predicted to finish last: most work per core it has now.
            last = max(open_, key=lambda c: (c.work / c.cpu if c.cpu > 0 else math.inf, -c.seq))
            last.cpu = round(last.cpu + self.cpu_step, 9)
            last.target = max(last.target, last.cpu)
            self.cpu_free = round(self.cpu_free - self.cpu_step, 9)
            budget = round(budget - self.cpu_step, 9)
            grown[last.key] = last
        return [Resize(c.key, c.cpu, c.memory_mb, "timely-release") for c in grown.values()]

    def _order(self, claim: Claim) -> tuple[float, int]:
        return order_key(self.order, claim.seq, claim.priority, claim.urgency)

    def _passed_by_waiter(self, claim: Claim) -> bool:
        """A more urgent claim waits (never under FIFO, where growth comes first)."""
        return (
            self.order != "fifo" and bool(self.waiting) and self._order(self.waiting[0]) < self._order(claim)
        )

    def _owed(self, claim: Claim) -> float:
        """What a claim keeps even while others wait: its plan, or its user allocation
        once the safeguard fired; under least slack, no more than its user allocation
        while a more urgent claim waits (acceleration is lent, not owned)."""
        owed = max(claim.cpu_plan, claim.user_cpu) if claim.guarded else claim.cpu_plan
        if self.order == "slack" and self._passed_by_waiter(claim):
            owed = min(owed, max(claim.user_cpu, claim.cpu_floor))
        return owed

    def _ceiling(self, claim: Claim) -> float:
        """The most ``claim`` may grow to now: its target, or no more than it is owed
        while anyone waits and it yields; a lender stays where it is until it takes back."""
        if claim.lent_out > EPS and self.waiting:
            return claim.cpu
        if claim.yields and self.waiting:
            return min(claim.target, self._owed(claim))
        return claim.target

    def _release_limit(self, claim: Claim) -> float:
        if claim.lent_out > EPS:  # it did not use what it had: a sibling's cores go elsewhere
            return claim.cpu
        if claim.yields and self.waiting:
            return min(claim.cap, max(self._owed(claim), claim.cpu))
        return claim.cap

    def _schedule(self) -> list[Resize]:
        """Reclaim, grow and admit until nothing changes: admitting the last waiter can
        let yielding claims grow back, and a new waiter can cut them."""
        out: list[Resize] = []
        while True:
            done = len(out)
            if self.waiting:
                out += self._reclaim()
            self._grow_and_admit(out)
            if len(out) == done:
                break
        if not self.waiting:
            out += self._restore_lenders()
            out += self._lend()
        return out

    def _grow_and_admit(self, out: list[Resize]) -> None:
        growers = sorted(
            (
                c
                for c in self.running.values()
                if (c.live or c.guarded) and c.cpu + self.cpu_step <= self._ceiling(c) + EPS
            ),
            key=self._order,
        )
        # FIFO: running claims below their target arrived before every waiter, so they
        # come first. Otherwise growers and waiters interleave, the most urgent first.
        ordered = self.order != "fifo"
        while self.cpu_free > EPS or self.waiting:
            head = self.waiting[0] if self.waiting else None
            if growers and (head is None or not ordered or self._order(growers[0]) <= self._order(head)):
                claim = growers.pop(0)
                grow = self._take(self._ceiling(claim) - claim.cpu)
                if grow > 0:
                    claim.cpu = round(claim.cpu + grow, 9)
                    claim.lent_out = round(max(0.0, claim.lent_out - grow), 9)  # grown back: not owed
                    out.append(Resize(claim.key, claim.cpu, claim.memory_mb, "grow"))
                if claim.cpu + self.cpu_step <= self._ceiling(claim) + EPS and ordered:
                    break  # still short: nobody less urgent goes ahead of it
                continue
            if head is None:
                break
            if self._admit(head, out):
                continue
            if self.scheduler.lending and self._borrow_for(head, out):
                continue
            if self.scheduler.backfill:
                self._backfill(head, out)
            break

    def _start_cpu(self, claim: Claim) -> tuple[float, ChangeReason] | None:
        """What ``claim`` would start with now (whole plan, or start-now); None: it must wait."""
        if claim.memory_mb > self.memory_free_mb:
            return None
        if claim.memory_only:  # it holds no cores: its container is weighed, not capped
            return 0.0, "planned"
        if self.cpu_free + EPS >= claim.cpu_plan:
            return claim.cpu_plan, "planned"
        if claim.live and self.cpu_free + EPS >= claim.cpu_floor:
            cpu = max(claim.cpu_floor, floor_to_step(self.cpu_free, self.cpu_step))
            return min(cpu, claim.cpu_plan), "start-now"
        return None

    def _admit(self, head: Claim, out: list[Resize]) -> bool:
        """Start the head waiter if it fits; False if it must wait."""
        start = self._start_cpu(head)
        if start is None:
            return False
        self._grant(head, *start, out)
        return True

    def _grant(
        self, claim: Claim, cpu: float, reason: ChangeReason, out: list[Resize], note: str | None = None
    ) -> None:
        self.waiting.remove(claim)
        self.cpu_free = round(self.cpu_free - cpu, 9)
        self.memory_free_mb -= claim.memory_mb
        claim.cpu, claim.granted, claim.granted_ms = cpu, True, self.clock()
        self.running[claim.key] = claim
        out.append(Resize(claim.key, cpu, claim.memory_mb, reason, start=True, note=note))

    def _backfill(self, head: Claim, out: list[Resize]) -> None:
        """EASY backfilling behind a head that does not fit (see :mod:`invoker_agent.scheduling`)."""
        now = self.clock()
        if now - head.queued_ms > self.scheduler.wait_bound_ms:
            return  # the head waited long enough: it gets everything that frees
        need_cpu = head.cpu_floor if head.live else head.cpu_plan
        running = [
            Running(c.cpu, c.memory_mb, c.granted_ms + run_estimate_ms(c.run_ms, c.cpu_plan, c.cpu))
            for c in self.running.values()
        ]
        held = reservation(now, self.cpu_free, self.memory_free_mb, running, need_cpu, head.memory_mb, EPS)
        for claim in list(self.waiting)[1:]:
            start = self._start_cpu(claim)
            if start is None:
                continue
            cpu, _ = start
            run = run_estimate_ms(claim.run_ms, claim.cpu_plan, cpu)
            if not may_backfill(now, run, cpu, claim.memory_mb, held):
                continue
            if not (math.isfinite(run) and now + run <= held.start_ms):  # it uses the spare part
                held = replace(
                    held,
                    spare_cpu=held.spare_cpu - cpu,
                    spare_memory_mb=held.spare_memory_mb - claim.memory_mb,
                )
            ahead = f"backfilled ahead of {head.key}"
            if math.isfinite(held.start_ms):
                ahead += f", whose reserved start is in {max(0.0, held.start_ms - now):.0f} ms"
            self._grant(claim, cpu, "backfill", out, ahead)

    def _reclaim(self) -> list[Resize]:
        """Someone waits: every borrowed core, and what a yielding claim holds above what
        it is owed, comes back at once."""
        out = []
        for claim in self.running.values():
            keep = claim.cpu - claim.lent
            if claim.yields:
                keep = min(keep, self._owed(claim))
            claim.lent = 0.0
            if keep < claim.cpu - EPS:
                self.cpu_free = round(self.cpu_free + claim.cpu - keep, 9)
                claim.cpu = round(keep, 9)
                out.append(Resize(claim.key, claim.cpu, claim.memory_mb, "reclaim"))
        return out

    def _lend(self) -> list[Resize]:
        """Nobody waits: lend idle cores, a step at a time, to whoever is predicted to finish last."""
        lent: dict[str, Claim] = {}
        while self.cpu_free >= self.cpu_step - EPS:
            open_ = [c for c in self.running.values() if c.borrows and c.cpu + self.cpu_step <= c.cap + EPS]
            if not open_:
                break
            last = max(open_, key=lambda c: (c.work / c.cpu if c.cpu > 0 else math.inf, -c.seq))
            last.cpu = round(last.cpu + self.cpu_step, 9)
            last.lent = round(last.lent + self.cpu_step, 9)
            self.cpu_free = round(self.cpu_free - self.cpu_step, 9)
            lent[last.key] = last
        return [Resize(c.key, c.cpu, c.memory_mb, "idle-capacity") for c in lent.values()]

    # ------------------------------------------------------------------ lending across requests
    def _lendable(self, claim: Claim) -> float:
        """Cores ``claim`` holds but is measured not to use, less a margin; on the step."""
        if claim.used_cpu is None or claim.ended:
            return 0.0
        keep = max(self.cpu_step, claim.used_cpu + self.scheduler.lend_margin)
        return floor_to_step(max(0.0, claim.cpu - keep), self.cpu_step)

    def _borrow_for(self, head: Claim, out: list[Resize]) -> bool:
        """Start ``head`` on idle cores lent by running claims (the idlest first), if free
        plus lendable cores cover what it needs to start; memory is never lent."""
        if head.memory_mb > self.memory_free_mb:
            return False
        need = (head.cpu_floor if head.live else head.cpu_plan) - self.cpu_free
        lenders = sorted(
            ((self._lendable(c), c) for c in self.running.values()), key=lambda x: (-x[0], x[1].seq)
        )
        if need <= EPS or sum(x for x, _ in lenders) + EPS < need:
            return False
        for lendable, lender in lenders:
            if need <= EPS:
                break
            give = min(lendable, math.ceil(need / self.cpu_step - 1e-6) * self.cpu_step)
            if give <= EPS:
                continue
            lender.cpu = round(lender.cpu - give, 9)
            lender.lent_out = round(lender.lent_out + give, 9)
            self.cpu_free = round(self.cpu_free + give, 9)
            need -= give
            used = lender.used_cpu or 0.0
            note = f"lent {give:g} idle cores to {head.key} (used {used:.2f})"
            out.append(Resize(lender.key, lender.cpu, lender.memory_mb, "lent", note=note))
        head.borrower = True
        return self._admit(head, out)

    def _take_back(self, lender: Claim, why: str) -> list[Resize]:
        """The lender needs its cores: from the free ones first, then from borrowers, the
        least urgent first, each down to one step (it runs slower, it does not stop)."""
        want = lender.lent_out
        got = self._take(want)
        cut, out = self._cut_borrowers(want - got, lender, f"cores taken back by {lender.key}")
        got = round(got + cut, 9)
        if got > EPS:
            lender.cpu = round(lender.cpu + got, 9)
            lender.lent_out = round(max(0.0, lender.lent_out - got), 9)
            out.append(Resize(lender.key, lender.cpu, lender.memory_mb, "take-back", note=why))
        return out + self._schedule()

    def _cut_borrowers(self, want: float, lender: Claim, note: str) -> tuple[float, list[Resize]]:
        """Up to ``want`` cores from borrowers, the least urgent first, each down to one step
        (it runs slower, it does not stop): how many were cut, and the resizes."""
        out: list[Resize] = []
        got = 0.0
        borrowers = [c for c in self.running.values() if c.borrower and c is not lender]
        borrowers.sort(key=self._order, reverse=True)
        for b in borrowers:
            if got + EPS >= want:
                break
            cut = floor_to_step(min(want - got, b.cpu - self.cpu_step), self.cpu_step)
            if cut <= EPS:
                continue
            b.cpu = round(b.cpu - cut, 9)
            b.target = min(b.target, max(b.cpu, b.cpu_floor))
            got = round(got + cut, 9)
            out.append(Resize(b.key, b.cpu, b.memory_mb, "reclaim", note=note))
        return got, out

    def _restore_lenders(self) -> list[Resize]:
        """Nobody waits: lent cores go back to their lenders as they free."""
        out: list[Resize] = []
        for c in sorted(self.running.values(), key=lambda c: c.seq):
            if c.lent_out > EPS and self.cpu_free >= self.cpu_step - EPS:
                got = self._take(c.lent_out)
                if got > EPS:
                    c.cpu = round(c.cpu + got, 9)
                    c.lent_out = round(max(0.0, c.lent_out - got), 9)
                    out.append(Resize(c.key, c.cpu, c.memory_mb, "take-back", note="nobody waits"))
        return out
