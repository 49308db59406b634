"""The capacity ledger: start now, grow, timely release, safeguard; and, over
random sequences of operations, no permit is ever leaked or counted twice."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gleaner.errors import InvalidLimits
from invoker_agent.ledger import EPS, CapacityLedger, Claim, floor_to_step
from invoker_agent.scheduling import SchedulerConfig


def claim(key: str, cpu: float, *, user: float | None = None, live: bool = False, **kw: object) -> Claim:
    user_cpu = cpu if user is None else user
    base: dict[str, object] = {
        "key": key,
        "cpu_plan": cpu,
        "memory_mb": 128,
        "cpu_floor": min(cpu, user_cpu) if live else cpu,
        "cap": cpu,
        "user_cpu": user_cpu,
        "user_memory_mb": 128,
        "live": live,
    }
    base.update(kw)
    return Claim(**base)  # type: ignore[arg-type]


def test_a_static_claim_waits_for_its_whole_plan():
    led = CapacityLedger(2.0, 4096)
    led.submit(claim("a", 1.5))
    out = led.submit(claim("b", 1.0))
    assert out == [] and [c.key for c in led.waiting] == ["b"]
    out = led.end("a")
    assert [(r.key, r.cpu, r.reason, r.start) for r in out] == [("b", 1.0, "planned", True)]


def test_start_now_then_grow_back_to_the_plan():
    led = CapacityLedger(2.0, 4096)
    led.submit(claim("a", 1.5))
    # planned 1 core above its user 0.25: 0.5 is free now, so it starts at 0.5 rather than wait
    out = led.submit(claim("b", 1.0, user=0.25, live=True))
    assert [(r.key, r.cpu, r.reason) for r in out] == [("b", 0.5, "start-now")]
    out = led.end("a")
    assert [(r.key, r.cpu, r.reason) for r in out] == [("b", 1.0, "grow")]
    assert led.cpu_free == pytest.approx(1.0)


def test_start_now_never_below_the_user_allocation():
    led = CapacityLedger(2.0, 4096)
    led.submit(claim("a", 1.75))
    assert led.submit(claim("b", 1.0, user=0.5, live=True)) == []  # 0.25 free < its user 0.5
    assert [r.cpu for r in led.end("a")] == [1.0]


def test_growth_comes_before_later_arrivals():
    led = CapacityLedger(2.0, 4096)
    led.submit(claim("a", 1.5))
    led.submit(claim("b", 1.0, user=0.25, live=True))  # starts at 0.5
    led.submit(claim("c", 1.0))  # waits
    out = led.end("a")  # 1.5 frees: b grows by 0.5 first, then c starts
    assert [(r.key, r.cpu, r.reason) for r in out] == [("b", 1.0, "grow"), ("c", 1.0, "planned")]


def test_timely_release_goes_to_the_siblings_up_to_their_cap_and_the_rest_to_the_queue():
    led = CapacityLedger(2.0, 4096)
    group = ("req", 1)
    led.submit(claim("fast", 0.5, live=True, group=group, work=0.5))
    led.submit(claim("slow", 1.0, live=True, group=group, cap=1.25, work=4.0))
    led.submit(claim("other", 1.0))  # another request, waits for a whole core
    out = led.end("fast")
    assert [(r.key, r.cpu, r.reason) for r in out] == [("slow", 1.25, "timely-release")]
    assert [c.key for c in led.waiting] == ["other"]  # 0.25 + 0.5 free: still short of 1 core
    assert led.cpu_free == pytest.approx(0.75)


def test_timely_release_favours_the_sibling_predicted_to_finish_last():
    led = CapacityLedger(4.0, 4096)
    group = ("req", 1)
    led.submit(claim("done", 1.0, live=True, group=group, work=1.0))
    led.submit(claim("mid", 1.0, live=True, group=group, cap=2.0, work=2.0))
    led.submit(claim("last", 1.0, live=True, group=group, cap=2.0, work=6.0))
    out = led.end("done")
    assert {r.key: r.cpu for r in out} == {"last": 2.0}


def test_no_timely_release_across_requests_or_for_static_claims():
    led = CapacityLedger(3.0, 4096)
    led.submit(claim("a", 1.0, live=True, group=("r1", 1)))
    led.submit(claim("b", 1.0, live=True, group=("r2", 1), cap=2.0))
    led.submit(claim("c", 0.25, group=("r1", 1), cap=1.0))
    assert led.end("a") == []
    assert led.running["b"].cpu == 1.0 and led.running["c"].cpu == 0.25


def test_safeguard_gives_the_user_allocation_back_ahead_of_waiters():
    led = CapacityLedger(2.0, 4096)
    led.submit(claim("h", 0.5, user=1.0))
    led.submit(claim("x", 1.0))
    led.submit(claim("w", 1.0))  # waits: 0.5 free
    out = led.safeguard("h")
    assert [(r.key, r.cpu, r.reason) for r in out] == [("h", 1.0, "safeguard")]
    assert led.cpu_free == pytest.approx(0.0) and [c.key for c in led.waiting] == ["w"]


def test_safeguard_waits_for_cores_it_cannot_have_yet():
    led = CapacityLedger(1.0, 4096)
    led.submit(claim("h", 0.5, user=1.0))
    led.submit(claim("x", 0.5))
    assert [r.cpu for r in led.safeguard("h")] == [0.5]  # nothing free now
    out = led.end("x")
    assert [(r.key, r.cpu, r.reason) for r in out] == [("h", 1.0, "grow")]


def test_revert_returns_the_difference():
    led = CapacityLedger(2.0, 4096)
    led.submit(claim("a", 0.5, user=1.0, live=True, group=("r", 1), cap=1.5))
    led.submit(claim("b", 0.5, live=True, group=("r", 1)))
    led.end("b")
    assert led.running["a"].cpu == 1.0
    led.revert("a", 0.5, 128)
    assert led.running["a"].cpu == 0.5 and led.cpu_free == pytest.approx(1.5)


def test_impossible_or_duplicate_claims_are_refused():
    led = CapacityLedger(2.0, 1024)
    with pytest.raises(InvalidLimits):
        led.submit(claim("a", 4.0))
    led.submit(claim("a", 1.0))
    with pytest.raises(InvalidLimits):
        led.submit(claim("a", 1.0))


def test_idle_cores_are_lent_while_nobody_waits_and_reclaimed_when_someone_does():
    led = CapacityLedger(2.0, 4096)
    out = led.submit(claim("a", 0.5, live=True, borrows=True, cap=1.5, work=3.0))
    assert [(r.key, r.cpu, r.reason) for r in out] == [("a", 0.5, "planned"), ("a", 1.5, "idle-capacity")]
    assert led.running["a"].lent == 1.0 and led.running["a"].target == 0.5  # charged its plan only
    out = led.submit(claim("b", 1.0))
    assert [(r.key, r.cpu, r.reason) for r in out][:2] == [("a", 0.5, "reclaim"), ("b", 1.0, "planned")]


def test_borrowed_cores_are_not_released_to_siblings_as_stage_budget():
    led = CapacityLedger(4.0, 4096)
    group = ("r", 1)
    led.submit(claim("a", 1.0, live=True, borrows=True, group=group, cap=1.5, work=1.0))
    led.submit(claim("b", 1.0, live=True, borrows=True, group=group, cap=3.0, work=9.0))
    assert led.running["a"].lent + led.running["b"].lent == pytest.approx(2.0)
    led.end("a")
    b = led.running["b"]
    assert b.target <= 1.0 + 1.0 + 1e-9  # its plan plus at most a's granted core, never a's loan
    assert b.cpu <= 3.0


def test_by_age_an_older_request_is_served_before_a_newer_one_that_queued_first():
    led = CapacityLedger(1.0, 4096, scheduler=SchedulerConfig(order="age"))
    led.submit(claim("busy", 1.0, priority=0.0))
    led.submit(claim("new", 1.0, priority=200.0))
    led.submit(claim("old", 1.0, priority=100.0))
    assert [c.key for c in led.waiting] == ["old", "new"]
    out = led.end("busy")
    assert [(r.key, r.reason) for r in out] == [("old", "planned")]


def test_by_age_a_newer_requests_growth_waits_behind_an_older_waiter():
    led = CapacityLedger(2.0, 4096, scheduler=SchedulerConfig(order="age"))
    led.submit(claim("x", 1.0, priority=0.0))
    led.submit(claim("grower", 1.0, user=0.5, live=True, priority=300.0))  # starts at 1.0 of... 1 free
    led.submit(claim("hog", 0.5, priority=50.0))
    assert led.running["grower"].cpu == 1.0 and [c.key for c in led.waiting] == ["hog"]
    led.running["grower"].target = 1.5  # e.g. more planned than it got
    out = led.end("x")  # 1 core frees: the older waiter first, then the grower
    assert [(r.key, r.reason) for r in out] == [("hog", "planned"), ("grower", "grow")]
    assert led.running["grower"].cpu == 1.5


def test_fifo_growth_comes_first_as_before():
    led = CapacityLedger(2.0, 4096)
    led.submit(claim("x", 1.5))
    led.submit(claim("grower", 1.0, user=0.5, live=True))  # start-now at 0.5
    led.submit(claim("late", 0.5))
    out = led.end("x")
    assert [(r.key, r.reason) for r in out] == [("grower", "grow"), ("late", "planned")]


def test_a_yielding_claim_gives_cores_above_its_plan_back_when_someone_waits():
    led = CapacityLedger(2.0, 4096)
    group = ("r", 1)
    led.submit(claim("light", 0.5, user=1.0, live=True, yields=True, group=group, work=0.5))
    led.submit(claim("heavy", 1.0, user=0.5, live=True, yields=True, group=group, cap=1.5, work=4.0))
    out = led.end("light")  # nobody waits: timely release takes heavy past its plan, to its cap
    assert [(r.key, r.cpu, r.reason) for r in out] == [("heavy", 1.5, "timely-release")]
    out = led.submit(claim("w", 1.0))  # someone waits: heavy keeps its plan, the rest starts w
    assert [(r.key, r.cpu, r.reason) for r in out] == [("heavy", 1.0, "reclaim"), ("w", 1.0, "planned")]
    out = led.end("w")  # the queue is empty: it grows back to what the release gave it
    assert [(r.key, r.cpu, r.reason) for r in out] == [("heavy", 1.5, "grow")]


def test_a_yielding_claim_keeps_its_plan_above_its_user_allocation_under_load():
    led = CapacityLedger(2.0, 4096)
    led.submit(claim("fast", 1.5, user=0.5, live=True, yields=True))
    out = led.submit(claim("w", 1.0))  # the plan is owed (the stage budget paid for it): w waits
    assert out == [] and led.running["fast"].cpu == 1.5


def test_while_anyone_waits_timely_release_stops_at_the_plan():
    led = CapacityLedger(2.0, 4096)
    group = ("r", 1)
    led.submit(claim("light", 0.5, user=1.0, live=True, yields=True, group=group, work=0.5))
    led.submit(claim("heavy", 1.0, user=0.5, live=True, yields=True, group=group, cap=1.5, work=4.0))
    led.submit(claim("other", 1.0))  # waits: 0.5 free
    out = led.end("light")  # light's 0.5 goes to the queue, not to heavy (at its plan)
    assert [(r.key, r.cpu, r.reason) for r in out] == [("other", 1.0, "planned")]
    assert led.running["heavy"].cpu == 1.0


def test_a_safeguarded_yielding_claim_keeps_its_user_allocation_while_others_wait():
    led = CapacityLedger(2.0, 4096)
    led.submit(claim("h", 0.25, user=1.0, live=True, yields=True))
    led.submit(claim("x", 1.75))
    led.submit(claim("w", 1.0))
    assert [r.cpu for r in led.safeguard("h")] == [0.25]  # nothing free yet
    out = led.end("x")  # 1.75 frees: h grows to its user 1.0 first, then w starts
    assert [(r.key, r.cpu, r.reason) for r in out] == [("h", 1.0, "grow"), ("w", 1.0, "planned")]


def test_floor_to_step():
    assert floor_to_step(0.74999999, 0.25) == 0.75
    assert floor_to_step(0.7, 0.25) == 0.5
    assert floor_to_step(0.0, 0.25) == 0.0


# ---------------------------------------------------------------------- properties
STEPS = st.integers(min_value=1, max_value=8).map(lambda u: u * 0.25)
OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("submit"), STEPS, STEPS, STEPS, st.booleans(), st.integers(0, 2), st.integers(1, 8)
        ),
        st.tuples(st.just("end"), st.integers(0, 30)),
        st.tuples(st.just("safeguard"), st.integers(0, 30)),
        st.tuples(st.just("revert"), st.integers(0, 30)),
        st.tuples(st.just("withdraw"), st.integers(0, 30)),
        st.tuples(st.just("usage"), st.integers(0, 30), st.floats(0.0, 1.2)),
    ),
    max_size=60,
)


def _check(led: CapacityLedger, fifo: bool = True) -> None:
    used_cpu = sum(c.cpu for c in led.running.values())
    used_mem = sum(c.memory_mb for c in led.running.values())
    # Over capacity only by what a lender kept when its shrink did not apply and borrowers
    # already at one step could not give back (they run on; nothing starts until it is whole).
    assert led.cpu_free >= -sum(c.cpu for c in led.running.values() if c.borrower) - EPS
    assert led.memory_free_mb >= 0
    assert led.cpu_free + used_cpu == pytest.approx(led.cpu_capacity)
    assert led.memory_free_mb + used_mem == led.memory_capacity_mb
    for c in led.running.values():
        # Lenders and borrowers may run below their floor, never below one step.
        assert c.granted and (c.cpu >= c.cpu_floor - EPS or c.lent_out > 0 or c.borrower)
        assert c.cpu >= led.cpu_step - EPS and c.lent_out >= 0
        assert c.cpu <= max(c.cap, c.target, c.user_cpu) + EPS
    if fifo and led.running and led.waiting:  # FIFO: nobody started ahead of an earlier waiter
        assert max(c.seq for c in led.running.values()) < min(c.seq for c in led.waiting)
    assert all(c.lent >= 0 for c in led.running.values())
    if led.waiting:  # someone waits: nothing is on loan, and yielding claims hold no extra
        assert all(c.lent == 0 for c in led.running.values())
        for c in led.running.values():
            owed = max(c.cpu_plan, c.user_cpu) if c.guarded else c.cpu_plan
            assert not c.yields or c.cpu <= owed + EPS


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


BOUND = 5_000.0


def _check_order(led: CapacityLedger, out: list, order: str) -> None:
    """Starts in order pass no waiter that queued more than twice the bound earlier
    (least slack's starvation bound); a backfill never passes a head that waited past it."""
    for r in out:
        if not r.start:
            continue
        started = led.running.get(r.key)
        if started is None:
            continue
        if r.reason == "backfill":
            assert r.note and "ahead of" in r.note
            head_key = r.note.split("ahead of ")[1].split(",")[0]
            head = next((c for c in led.waiting if c.key == head_key), None)
            assert head is None or led.clock() - head.queued_ms <= led.scheduler.wait_bound_ms
        elif order == "slack":
            assert all(
                w.queued_ms + 2 * led.scheduler.wait_bound_ms >= started.queued_ms for w in led.waiting
            )
    if order == "slack" and led.waiting:  # a yielding claim holds no acceleration past a more urgent waiter
        head = led.waiting[0]
        for c in led.running.values():
            if c.yields and (head.urgency, head.seq) < (c.urgency, c.seq):
                assert c.cpu <= max(c.user_cpu, c.cpu_floor) + EPS


@settings(max_examples=300, deadline=None)
@given(
    OPS, st.booleans(), st.sampled_from(["fifo", "age", "slack"]), st.booleans(), st.booleans(), st.booleans()
)
def test_permits_are_never_leaked_or_counted_twice(ops, idle, order, yields, backfill, lending):
    clock = Clock()
    led = CapacityLedger(2.0, 1024, scheduler=SchedulerConfig(order, backfill, BOUND, lending), clock=clock)
    made = 0
    for op in ops:
        keys = sorted(led.running)
        clock.now += 700.0
        if op[0] == "submit":
            _, plan, user, cap, live, group, mem = op
            c = claim(f"k{made}", plan, user=user, live=live, cap=cap, group=("r", group), work=float(mem))
            c.borrows = idle and live
            c.yields = yields and live
            c.priority = float(mem % 3)  # by age: three requests of different ages
            c.memory_mb = mem * 128
            # Least slack: some with a deadline (near or far), some without; runs known or not.
            c.deadline_ms = None if mem % 4 == 0 else clock.now + 1_000.0 * (mem * group + 1)
            c.remaining_ms = 500.0 * mem
            c.run_ms = None if mem % 3 == 0 else 300.0 * mem
            made += 1
            out = led.submit(c)
        elif op[0] == "end" and keys:
            out = led.end(keys[op[1] % len(keys)])
        elif op[0] == "safeguard" and keys:
            out = led.safeguard(keys[op[1] % len(keys)])
        elif op[0] == "revert" and keys:
            c = led.running[keys[op[1] % len(keys)]]
            out = led.revert(c.key, c.cpu_floor, c.memory_mb)
        elif op[0] == "withdraw" and led.waiting:
            out = led.withdraw(led.waiting[op[1] % len(led.waiting)].key)
        elif op[0] == "usage" and keys:
            c = led.running[keys[op[1] % len(keys)]]
            out = led.observe_usage(c.key, op[2] * c.cpu_plan)
            if c.lent_out > 0:  # measured after lending: it keeps what it uses plus the margin
                assert c.cpu >= min(c.cpu_plan, c.used_cpu + led.scheduler.lend_margin) - led.cpu_step - EPS
        else:
            out = []
        _check_order(led, out, order)
        _check(led, fifo=order == "fifo" and not backfill and not lending)
    while led.running or led.waiting:  # drain: everything ends, capacity is whole again
        for key in list(led.running):
            clock.now += 700.0
            _check_order(led, led.end(key), order)
            _check(led, fifo=order == "fifo" and not backfill and not lending)
        if led.waiting and not led.running:
            pytest.fail("a claim waits on an idle invoker")
    assert led.cpu_free == pytest.approx(2.0) and led.memory_free_mb == 1024


# ---------------------------------------------------------------------- the scheduler across requests
def _sched(order: str = "slack", backfill: bool = True, cpu: float = 2.0) -> tuple[CapacityLedger, Clock]:
    clock = Clock()
    return CapacityLedger(cpu, 4096, scheduler=SchedulerConfig(order, backfill, BOUND), clock=clock), clock


def test_least_slack_serves_the_request_with_less_slack_first_whatever_queued_first():
    led, clock = _sched(backfill=False)
    led.submit(claim("busy", 2.0, run_ms=1_000.0))
    # A large request queued first with a far deadline; a small one after, with little slack.
    led.submit(claim("large", 1.0, deadline_ms=clock.now + 60_000, remaining_ms=40_000))
    led.submit(claim("small", 1.0, deadline_ms=clock.now + 3_000, remaining_ms=2_000))
    assert [c.key for c in led.waiting] == ["small", "large"]
    fifo, _ = _sched("fifo", backfill=False)
    fifo.submit(claim("busy", 2.0))
    fifo.submit(claim("large", 1.0, deadline_ms=clock.now + 60_000, remaining_ms=40_000))
    fifo.submit(claim("small", 1.0, deadline_ms=clock.now + 3_000, remaining_ms=2_000))
    assert [c.key for c in fifo.waiting] == ["large", "small"]


def test_the_waiting_bound_keeps_a_large_request_from_starving():
    led, clock = _sched(backfill=False)
    led.submit(claim("busy", 2.0))
    led.submit(claim("large", 2.0, deadline_ms=clock.now + 600_000, remaining_ms=1_000))
    clock.now += 2 * BOUND + 1  # later arrivals, however urgent, now queue behind it
    led.submit(claim("urgent", 2.0, deadline_ms=clock.now - 50_000, remaining_ms=9_000))
    assert [c.key for c in led.waiting] == ["large", "urgent"]


def test_backfill_starts_small_claims_that_end_before_the_heads_reserved_start():
    """ml-pipeline at high load: three 0.25-core functions waited 18 s behind a 1.0-core
    head with 0.75 core free."""
    led, clock = _sched()
    led.submit(claim("running", 1.25, run_ms=10_000.0))  # 0.75 free until it ends in 10 s
    led.submit(claim("head", 1.0, run_ms=5_000.0))
    out = []
    for k in ("e1", "e2", "e3"):
        out += led.submit(claim(k, 0.25, run_ms=2_000.0))
    assert [(r.key, r.reason) for r in out] == [("e1", "backfill"), ("e2", "backfill"), ("e3", "backfill")]
    assert "ahead of head" in (out[0].note or "") and "10000 ms" in (out[0].note or "")
    assert [c.key for c in led.waiting] == ["head"] and led.cpu_free == pytest.approx(0.0)
    clock.now += 10_000
    for k in ("e1", "e2", "e3"):
        led.end(k)
    assert [(r.key, r.reason) for r in led.end("running")] == [("head", "planned")]


def test_backfill_that_would_delay_the_head_waits():
    led, _ = _sched()
    led.submit(claim("running", 1.25, run_ms=1_000.0))
    led.submit(claim("head", 2.0, run_ms=5_000.0))
    # Runs 4 s, past the head's reserved start in 1 s, on cores the head needs then: it waits.
    assert led.submit(claim("long", 0.5, run_ms=4_000.0)) == []
    # An unknown run cannot be shown to end in time: it waits too.
    assert led.submit(claim("unknown", 0.25)) == []
    # Only the cores spare at the reserved start (2.0 - 1.0 = 1.0 minus nothing) may run long:
    led2, _ = _sched()
    led2.submit(claim("running", 1.0, run_ms=1_000.0))
    led2.submit(claim("head", 1.75, run_ms=5_000.0))
    assert [r.reason for r in led2.submit(claim("spare", 0.25, run_ms=60_000.0))] == ["backfill"]
    assert led2.submit(claim("more", 0.25, run_ms=60_000.0)) == []  # nothing spare is left


def test_no_backfill_past_a_head_that_waited_past_the_bound():
    led, clock = _sched()
    led.submit(claim("running", 1.25))  # its end is unknown: the head's reserved start too
    led.submit(claim("head", 1.0))
    assert [r.reason for r in led.submit(claim("a", 0.25, run_ms=100.0))] == ["backfill"]
    clock.now += BOUND + 1
    assert led.submit(claim("b", 0.25, run_ms=100.0)) == []


def test_acceleration_above_the_user_allocation_goes_back_when_a_more_urgent_claim_waits():
    led, clock = _sched(backfill=False)
    fast = claim("accelerated", 1.5, user=1.0, live=True, yields=True, deadline_ms=clock.now + 60_000)
    led.submit(fast)
    assert fast.cpu == 1.5
    out = led.submit(claim("urgent", 1.0, deadline_ms=clock.now + 1_000, remaining_ms=900))
    assert [(r.key, r.cpu, r.reason) for r in out][:2] == [
        ("accelerated", 1.0, "reclaim"),
        ("urgent", 1.0, "planned"),
    ]
    # Under FIFO the plan is owed whatever waits: the newcomer waits.
    fifo, _ = _sched("fifo", backfill=False)
    fifo.submit(claim("accelerated", 1.5, user=1.0, live=True, yields=True))
    assert fifo.submit(claim("urgent", 1.0, deadline_ms=clock.now + 1_000)) == []


STATIC = st.lists(
    st.tuples(STEPS, st.integers(1, 4), st.integers(100, 20_000), st.booleans()), min_size=1, max_size=8
)


@settings(max_examples=300, deadline=None)
@given(STATIC, STATIC)
def test_backfill_never_delays_the_heads_reserved_start(running, waiting):
    """Static claims (nothing grows) with known runs: whatever a submit backfills, the head's
    reserved start, computed on the claims as they then run, is no later than before."""
    led, clock = _sched("fifo")
    for i, (cpu, mem, run, _) in enumerate(running):
        led.submit(claim(f"r{i}", cpu, memory_mb=mem * 128, run_ms=float(run)))
        clock.now += 10
    for i, (cpu, mem, run, known) in enumerate(waiting):
        before = _reserved(led)
        out = led.submit(claim(f"w{i}", cpu, memory_mb=mem * 128, run_ms=float(run) if known else None))
        after = _reserved(led)
        if any(r.reason == "backfill" for r in out) and before is not None and after is not None:
            assert before[0] == after[0] and after[1] <= before[1] + EPS
        clock.now += 10
        _check(led, fifo=False)


def _reserved(led: CapacityLedger) -> tuple[str, float] | None:
    from invoker_agent.scheduling import Running, reservation, run_estimate_ms

    if not led.waiting:
        return None
    head = led.waiting[0]
    running = [
        Running(c.cpu, c.memory_mb, c.granted_ms + run_estimate_ms(c.run_ms, c.cpu_plan, c.cpu))
        for c in led.running.values()
    ]
    held = reservation(led.clock(), led.cpu_free, led.memory_free_mb, running, head.cpu_plan, head.memory_mb)
    return head.key, held.start_ms


def test_reserved_cores_while_anything_waits_are_accounted():
    led, clock = _sched(backfill=False)
    led.submit(claim("a", 1.5, run_ms=1_000.0))
    clock.now += 1_000  # nothing waits yet: not counted
    led.submit(claim("b", 1.0))
    clock.now += 2_000  # b waits on 0.5 free: 1.5 cores reserved for 2 s
    led.end("a")
    clock.now += 5_000  # nothing waits
    led.account()
    assert led.waited_ms == 2_000 and led.reserved_core_ms == pytest.approx(3_000)


def test_idle_cores_of_a_running_claim_are_lent_to_a_waiter_and_taken_back_when_needed():
    clock = Clock()
    led = CapacityLedger(2.0, 4096, scheduler=SchedulerConfig(order="slack", lending=True), clock=clock)
    led.submit(claim("lender", 1.5))
    assert led.submit(claim("waiter", 1.0)) == []  # 0.5 free: it waits
    # The lender is measured at 0.3 cores: it could lend 0.75 (keeping 0.3 + 0.25 on the step);
    # it lends the 0.5 the waiter still needs.
    out = led.observe_usage("lender", 0.3)
    assert [(r.key, r.cpu, r.reason) for r in out] == [("lender", 1.0, "lent"), ("waiter", 1.0, "planned")]
    assert "lent 0.5 idle cores to waiter" in (out[0].note or "")
    assert led.cpu_lent_out() == 0.5 and led.running["waiter"].borrower
    assert led.observe_usage("lender", 0.85) == []  # below 90 % of the 1.0 it kept
    # Its use climbs to 90 % of what it kept: it takes its cores back from the borrower.
    out = led.observe_usage("lender", 0.9)
    assert [(r.key, r.cpu, r.reason) for r in out] == [
        ("waiter", 0.5, "reclaim"),
        ("lender", 1.5, "take-back"),
    ]
    assert led.cpu_lent_out() == 0 and led.cpu_free == pytest.approx(0.0)
    assert "taken back by lender" in (out[0].note or "")


def test_lending_only_when_it_lets_the_head_start_and_never_memory():
    clock = Clock()
    led = CapacityLedger(2.0, 1024, scheduler=SchedulerConfig(lending=True), clock=clock)
    led.submit(claim("lender", 1.5))
    led.submit(claim("big", 2.0))  # even all the lender's idle cores would not do
    assert led.observe_usage("lender", 0.0) == [] and led.cpu_lent_out() == 0
    led2 = CapacityLedger(2.0, 1024, scheduler=SchedulerConfig(lending=True), clock=clock)
    led2.submit(claim("lender", 1.0, memory_mb=1024))
    led2.submit(claim("waiter", 1.5, memory_mb=128))  # memory is not lent: it waits
    assert led2.observe_usage("lender", 0.0) == []


def test_lent_cores_go_back_when_nobody_waits():
    clock = Clock()
    led = CapacityLedger(2.0, 4096, scheduler=SchedulerConfig(lending=True), clock=clock)
    led.submit(claim("lender", 1.5))
    led.submit(claim("waiter", 1.0))
    led.observe_usage("lender", 0.2)
    assert led.running["lender"].cpu == 1.0
    out = led.end("waiter")
    assert [(r.key, r.cpu, r.reason, r.note) for r in out] == [("lender", 1.5, "take-back", "nobody waits")]


def test_a_memory_only_claim_waits_for_memory_alone():
    led = CapacityLedger(2.0, 1024)
    led.submit(claim("cores", 2.0))
    out = led.submit(claim("ow", 1.0, memory_only=True, memory_mb=512))
    assert [(r.key, r.cpu, r.reason) for r in out] == [("ow", 0.0, "planned")] and led.cpu_free == 0.0
    assert led.submit(claim("ow2", 1.0, memory_only=True, memory_mb=1024)) == []  # memory is short
    assert led.end("ow") == []  # 896 MB free: still short
    assert [(r.key, r.cpu) for r in led.end("cores")] == [("ow2", 0.0)]  # memory alone admits it
    assert led.cpu_free == 2.0 and led.memory_free_mb == 0


def test_a_scheduler_config_refuses_what_it_cannot_run():
    with pytest.raises(InvalidLimits, match="fifo, age, slack"):
        SchedulerConfig(order="lifo")  # type: ignore[arg-type]
    with pytest.raises(InvalidLimits, match="waiting bound"):
        SchedulerConfig(wait_bound_ms=0)
    with pytest.raises(InvalidLimits, match="lend margin"):
        SchedulerConfig(lend_margin=-0.25)
