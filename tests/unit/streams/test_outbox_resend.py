"""Sending the outbox again after a broker loss: the decision (properties of
plan_resends) and the Resender over an in-memory Redis and Kafka."""

from __future__ import annotations

import itertools
import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from gleaner.settings import Settings
from streams.kafka.testing import MemorySink
from streams.outbox import Outbox, Sent
from streams.outbox_resend import Plan, Resender, ResendPolicy, is_new_loss, plan_resends, wait_after
from tests.unit.fakes import MemoryRedis

SETTINGS = Settings()
TOPIC = SETTINGS.invocations_topic
A, B, C = "a" * 32, "b" * 32, "c" * 32
POLICY = ResendPolicy()
HOUR = 3_600_000

# --- the decision --------------------------------------------------------------------------------

ids = st.text(alphabet="abcdef0123456789", min_size=1, max_size=4)


@st.composite
def states(draw: st.DrawFn) -> tuple[dict[str, int], dict[str, Sent], int | None, int]:
    accepted = draw(st.dictionaries(ids, st.integers(0, 30 * HOUR), max_size=12))
    sent = {}
    for aid in draw(st.lists(st.sampled_from(sorted(accepted)), unique=True)) if accepted else []:
        sent[aid] = Sent(accepted[aid] + draw(st.integers(0, HOUR)), draw(st.integers(1, 40)))
    sent.update({aid: Sent(0, 1) for aid in draw(st.lists(ids, max_size=3)) if aid not in accepted})
    lost = draw(st.none() | st.integers(0, 31 * HOUR))
    latest = max([*accepted.values(), *(s.at_ms for s in sent.values()), lost or 0, 0])
    return accepted, sent, lost, latest + draw(st.integers(0, 2 * HOUR))


def exposed(accepted_ms: int, lost: int | None) -> bool:
    return lost is not None and accepted_ms <= lost + POLICY.exposed_ms


def expired(accepted_ms: int, now: int) -> bool:
    return now - accepted_ms > POLICY.keep_ms


@given(states())
def test_a_plan_is_consistent(state):
    accepted, sent, lost, now = state
    plan = plan_resends(accepted, sent, lost, now)
    assert not set(plan.resend) & set(plan.drop)
    assert set(plan.resend) | set(plan.drop) <= set(accepted)
    assert set(plan.drop) == {aid for aid, at in accepted.items() if expired(at, now)}
    assert set(plan.forget) == {aid for aid in sent if aid not in accepted or aid in plan.drop}
    assert [accepted[aid] for aid in plan.resend] == sorted(accepted[aid] for aid in plan.resend)
    assert plan.next_ms > now


@given(states())
def test_only_an_entry_exposed_to_a_loss_is_ever_sent_again(state):
    accepted, sent, lost, now = state
    plan = plan_resends(accepted, sent, lost, now)
    assert all(exposed(accepted[aid], lost) for aid in plan.resend)


@given(states())
def test_an_entry_last_sent_before_the_loss_is_sent_again_at_once(state):
    accepted, sent, lost, now = state
    plan = plan_resends(accepted, sent, lost, now)
    for aid, at in accepted.items():
        # accepted at the loss's very time: before it; sent again at that time: after it
        before = lost is not None and (sent[aid].at_ms < lost if aid in sent else at <= lost)
        if before and not expired(at, now):
            assert aid in plan.resend


def applied(plan: Plan, accepted: dict[str, int], sent: dict[str, Sent], now: int) -> dict[str, Sent]:
    out = {aid: s for aid, s in sent.items() if aid not in plan.forget}
    for aid in plan.resend:
        out[aid] = Sent(now, (sent[aid].times if aid in sent else 0) + 1)
    for aid in plan.drop:
        accepted.pop(aid)
    return out


@given(states(), st.floats(0, 1, exclude_max=True))
def test_nothing_falls_due_before_the_next_time_the_plan_names(state, where):
    accepted, sent, lost, now = state
    plan = plan_resends(accepted, sent, lost, now)
    sent = applied(plan, accepted, sent, now)
    later = now + int((plan.next_ms - now) * where)
    again = plan_resends(accepted, sent, lost, later)
    assert again.resend == () and again.drop == ()


@settings(max_examples=50)
@given(
    st.integers(0, 60_000),  # accepted this long before the loss
    st.lists(st.integers(1, 120_000), min_size=1, max_size=60),  # the gaps between passes
)
def test_a_pending_entry_is_sent_again_with_growing_waits_not_in_a_storm(before_loss, gaps):
    lost = 10 * HOUR
    accepted, sent = {A: lost - before_loss}, {}
    now, sends = lost, []
    for gap in gaps:
        plan = plan_resends(accepted, sent, lost, now)
        sent = applied(plan, accepted, sent, now)
        if plan.resend:
            sends.append(now)
        now += gap
    assert sends and sends[0] == lost  # once at once, at the first pass after the loss
    waits = [b - a for a, b in itertools.pairwise(sends)]
    assert all(w >= POLICY.first_wait_ms for w in waits)
    for n, w in enumerate(waits, start=1):
        assert w >= wait_after(n, POLICY)


def test_the_wait_doubles_up_to_its_bound():
    assert [wait_after(n, POLICY) // 1000 for n in range(6)] == [10, 10, 20, 40, 80, 160]
    assert wait_after(10_000, POLICY) == POLICY.max_wait_ms


def test_a_loss_seen_twice_within_a_few_seconds_is_one():
    assert is_new_loss(None, 1_000)
    assert not is_new_loss(1_000, 1_000 + POLICY.same_loss_ms - 1)
    assert is_new_loss(1_000, 1_000 + POLICY.same_loss_ms)


# --- the Resender --------------------------------------------------------------------------------


class Millis:
    def __init__(self) -> None:
        self.now = 100 * HOUR

    def __call__(self) -> int:
        return self.now


class CountingRedis(MemoryRedis):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def hgetall(self, key: str) -> dict[str, bytes]:
        self.reads += 1
        return super().hgetall(key)


def wired() -> tuple[CountingRedis, Millis, MemorySink, Outbox, Resender]:
    redis, clock, sink = CountingRedis(), Millis(), MemorySink()
    outbox = Outbox(redis, clock=clock)
    return redis, clock, sink, outbox, Resender(outbox, sink, clock=clock)


def test_with_no_loss_nothing_is_sent_again_however_long_a_request_runs():
    _redis, clock, sink, outbox, resender = wired()
    outbox.keep(A, TOPIC, b"{}")
    for _ in range(30):
        assert resender.resend_due() == 0
        clock.now += 600_000
    assert not sink.produced and set(outbox.pending()) == {A}


def test_after_a_loss_each_pending_entry_is_sent_once_then_with_backoff_until_settled():
    _redis, clock, sink, outbox, resender = wired()
    outbox.keep(B, SETTINGS.dag_requests_topic, b'{"request_id": "b"}')
    clock.now += 5
    outbox.keep(A, TOPIC, b'{"activation_id": "a"}')
    clock.now += 5
    assert resender.broker_lost()
    assert resender.resend_due() == 2
    assert [(p.topic, p.key) for p in sink.produced] == [(SETTINGS.dag_requests_topic, B), (TOPIC, A)]
    assert resender.resend_due() == 0  # no storm: sent, waiting for their records
    clock.now += 9_999
    assert resender.resend_due() == 0
    clock.now += 1
    outbox.settle([B])  # B's record exists now
    assert resender.resend_due() == 1 and sink.produced[-1].key == A
    clock.now += 10_000
    assert resender.resend_due() == 0  # the wait doubled
    clock.now += 10_000
    assert resender.resend_due() == 1
    assert outbox.sent() == {A: Sent(clock.now, 3)}  # B's send time forgotten with B


def test_the_supervisor_and_the_gateway_noting_one_loss_send_once():
    redis, clock, sink, outbox, supervisor = wired()
    outbox.keep(A, TOPIC, b"{}")
    assert supervisor.broker_lost() and supervisor.resend_due() == 1
    gateway = Resender(Outbox(redis, clock=clock), sink, clock=clock)
    clock.now += 1_500
    assert not gateway.broker_lost()  # its reader saw the same loss
    assert gateway.resend_due() == 0 and len(sink.produced) == 1
    clock.now += 10_000
    assert gateway.resend_due() == 1  # still unsettled: the gateway goes on


def test_what_was_accepted_just_after_the_loss_is_sent_again_only_if_it_stays_unsettled():
    _redis, clock, sink, outbox, resender = wired()
    resender.broker_lost()
    clock.now += 1_000
    outbox.keep(A, TOPIC, b"{}")  # perhaps dropped: the topics were not back yet
    clock.now += POLICY.exposed_ms
    outbox.keep(B, TOPIC, b"{}")  # the broker was back long before: never sent again
    assert resender.resend_due() == 1 and [p.key for p in sink.produced] == [A]
    clock.now += HOUR
    resender.resend_due()
    assert B not in {p.key for p in sink.produced}


def test_an_entry_accepted_after_a_pass_but_soon_after_the_loss_is_still_looked_after():
    _redis, clock, sink, outbox, resender = wired()
    resender.broker_lost()
    assert resender.resend_due() == 0  # nothing pending yet
    clock.now += 2_000
    outbox.keep(A, TOPIC, b"{}")  # dropped by its producer: the topics were not back
    clock.now += POLICY.first_wait_ms
    assert resender.resend_due() == 1 and [p.key for p in sink.produced] == [A]


def test_entries_never_settled_are_dropped_after_the_keep_time():
    _redis, clock, sink, outbox, _ = wired()
    resender = Resender(outbox, sink, ResendPolicy(keep_ms=5_000), clock=clock)
    outbox.keep(A, TOPIC, b"{}")
    clock.now += 10_000
    outbox.keep(B, TOPIC, b"{}")
    resender.broker_lost()
    assert resender.resend_due() == 1
    assert [p.key for p in sink.produced] == [B] and set(outbox.pending()) == {B}


def test_an_unreadable_entry_is_dropped_not_fatal():
    redis, _clock, _sink, outbox, resender = wired()
    outbox.keep(A, TOPIC, b"{}")
    redis.hashes[outbox.key][B] = b"not json"
    resender.broker_lost()
    assert resender.resend_due() == 1 and set(outbox.pending()) == {A}


def test_a_refused_entry_is_dropped_and_a_broker_still_away_leaves_the_rest_due():
    _redis, clock, sink, outbox, resender = wired()
    sink.max_bytes = 10
    outbox.keep(A, TOPIC, b"x" * 11)  # refused for good
    clock.now += 1
    outbox.keep(B, TOPIC, b"{}")
    clock.now += 1
    outbox.keep(C, TOPIC, b"{}")
    resender.broker_lost()
    sink.fail_produces = 1  # B: the broker is not back, so C is not tried either
    assert resender.resend_due() == 0
    assert set(outbox.pending()) == {B, C} and outbox.sent() == {}
    clock.now += 1
    assert resender.resend_due() == 2 and [p.key for p in sink.produced] == [B, C]


def test_a_pass_with_nothing_due_reads_only_when_the_broker_was_last_lost():
    redis, clock, sink, outbox, resender = wired()
    outbox.keep(A, TOPIC, b"{}")
    resender.resend_due()
    reads = redis.reads
    for _ in range(5):
        clock.now += 2_000
        resender.resend_due()
    assert redis.reads == reads  # no HGETALL of the outbox
    resender.broker_lost()
    resender.resend_due()
    assert redis.reads > reads and [p.key for p in sink.produced] == [A]


def test_redis_away_when_the_loss_is_seen_is_logged_not_raised():
    redis, clock, _sink, outbox, resender = wired()
    redis.down = 1
    assert not resender.broker_lost()
    assert resender.broker_lost() and outbox.lost_at() == clock.now


def test_run_sends_at_once_when_a_loss_is_seen():
    _redis, _clock, sink, outbox, resender = wired()
    outbox.keep(A, TOPIC, b"{}")
    stop = threading.Event()
    thread = threading.Thread(target=resender.run, args=(stop, 3600.0), daemon=True)
    thread.start()
    resender.broker_lost()  # wakes it out of its hour-long wait
    deadline = time.monotonic() + 10
    while not sink.produced and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    resender.wake()
    thread.join(5)
    assert [p.key for p in sink.produced] == [A] and not thread.is_alive()
