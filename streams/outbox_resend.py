"""When the outbox's entries are produced again (:mod:`streams.outbox`).

Whoever sees the broker lose its log notes it, once: the supervisor when it restarts the
memory broker, ``gleaner up`` when it starts one, the gateway's completion reader when a
partition's end goes back (:func:`streams.kafka.client.restarted_partitions`). From then
on an entry is *exposed*: accepted before the loss, or so soon after it that the broker
or its topics may not have been back. Its producer may have dropped it, or the broker
may have lost it. An exposed entry is sent again at once, then, while it stays unsettled
(no record yet), again after 10 s, 20 s, 40 s ... (at most every 10 min), until its
record exists or it is 24 h old.

An entry accepted well after the last loss is never sent again: a request that is simply
still running stays quiet. An exposed one that is still running is sent a few times:
the platform drops the duplicates (the invoker skips a running activation and answers a
finished one again, the composition stream resumes a request it has seen), so a
duplicate changes nothing. What was sent when is kept in Redis, so the supervisor's
resend and the gateway's do not repeat each other.

:func:`plan_resends` decides, purely; :class:`Resender` does the Redis and Kafka I/O.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gleaner.errors import EventTooLarge, GleanerError, KafkaError
from streams.events import now_ms
from streams.kafka.runner import Sink
from streams.outbox import KEEP_MS, Kept, Outbox, Sent

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ResendPolicy:
    # accepted up to this long after a loss: perhaps dropped while the broker came back
    exposed_ms: int = 30_000
    first_wait_ms: int = 10_000  # unsettled this long after a send: sent again
    max_wait_ms: int = 600_000  # the wait doubles with each send, up to this
    keep_ms: int = KEEP_MS  # never settled in this long: dropped
    same_loss_ms: int = 5_000  # losses noted this close together are one (seen by two watchers)
    sweep_ms: int = 3_600_000  # look for entries to drop at least this often, loss or not


@dataclass(frozen=True, slots=True)
class Plan:
    resend: tuple[str, ...]  # oldest first
    drop: tuple[str, ...]  # older than keep_ms
    forget: tuple[str, ...]  # send times of entries no longer pending
    next_ms: int  # nothing is due before this, unless a new loss is noted


def wait_after(times: int, policy: ResendPolicy) -> int:
    """How long an entry sent ``times`` times (0: only by the gateway) waits for its record."""
    doublings = min(max(0, times - 1), 32)  # bounded: 2**times of a huge count is slow
    return min(policy.max_wait_ms, policy.first_wait_ms << doublings)


def plan_resends(
    accepted: Mapping[str, int],
    sent: Mapping[str, Sent],
    lost_ms: int | None,
    now: int,
    policy: ResendPolicy = ResendPolicy(),
) -> Plan:
    """What to produce again now, of the pending entries (``accepted``: activation id ->
    accepted at), given when each was last sent again and when the broker was last lost."""
    resend: list[str] = []
    drop: list[str] = []
    next_ms = now + policy.sweep_ms
    for aid, accepted_ms in sorted(accepted.items(), key=lambda kv: (kv[1], kv[0])):
        if now - accepted_ms > policy.keep_ms:
            drop.append(aid)
            continue
        next_ms = min(next_ms, accepted_ms + policy.keep_ms + 1)
        if lost_ms is None or accepted_ms > lost_ms + policy.exposed_ms:
            continue  # not exposed: produced after the broker was back, and never lost since
        last = sent.get(aid)
        if last is None:  # produced only by the gateway, when it was accepted
            last_ms, times, before_loss = accepted_ms, 0, accepted_ms <= lost_ms
        else:
            last_ms, times, before_loss = last.at_ms, last.times, last.at_ms < lost_ms
        due_ms = last_ms + wait_after(times, policy)
        if before_loss or now >= due_ms:
            resend.append(aid)
            due_ms = now + wait_after(times + 1, policy)
        next_ms = min(next_ms, due_ms)
    if lost_ms is not None and now < lost_ms + policy.exposed_ms:
        # An entry accepted from now until the window closes is exposed too: look again.
        next_ms = min(next_ms, now + policy.first_wait_ms)
    gone = set(drop)
    forget = tuple(aid for aid in sent if aid not in accepted or aid in gone)
    return Plan(tuple(resend), tuple(drop), forget, max(next_ms, now + 1))


def is_new_loss(previous_ms: int | None, now: int, policy: ResendPolicy = ResendPolicy()) -> bool:
    """A loss seen now is another one than the last noted (not the same, seen twice)."""
    return previous_ms is None or now - previous_ms >= policy.same_loss_ms


class Resender:
    """Produces the outbox's due entries again (:func:`plan_resends`).

    :meth:`broker_lost` is for whoever sees the loss, :meth:`resend_due` is one pass, and
    :meth:`run` repeats it on a thread (the gateway's): a pass reads the whole outbox only
    when a loss was noted since the last one, or something falls due; otherwise it costs
    one Redis GET."""

    def __init__(
        self,
        outbox: Outbox,
        producer: Sink,
        policy: ResendPolicy = ResendPolicy(),
        clock: Callable[[], int] = now_ms,
        *,
        flush: bool = False,
    ) -> None:
        self.outbox = outbox
        self.producer = producer
        self.policy = policy
        self._clock = clock
        self._flush = flush  # a producer of its own: wait for its deliveries in the pass
        self._wake = threading.Event()
        self._seen_lost: int | None = None
        self._next_ms = 0  # the first pass reads everything

    def broker_lost(self) -> bool:
        """Note a broker loss seen now (unless the same one was just noted) and wake
        :meth:`run`; False when it was not noted (the same loss, or Redis away)."""
        now = self._clock()
        try:
            if not is_new_loss(self.outbox.lost_at(), now, self.policy):
                return False
            self.outbox.note_lost(now, self.policy.keep_ms)
        except GleanerError as exc:
            log.warning("a broker loss could not be noted in the outbox: %s", exc)
            return False
        log.warning("the broker lost its log: accepted events with no record yet are produced again")
        self.wake()
        return True

    def wake(self) -> None:
        """End :meth:`run`'s wait now (a loss was noted, or its stop was set)."""
        self._wake.set()

    def resend_due(self) -> int:
        """One pass: drop what expired, produce again what is due; how many were produced.
        Raises the store's error; the broker refusing ends the pass (its entries stay due)."""
        now = self._clock()
        lost = self.outbox.lost_at()
        if lost == self._seen_lost and now < self._next_ms:
            return 0
        pending = self.outbox.pending()
        before = self.outbox.sent()
        accepted = {aid: kept.accepted_ms for aid, kept in pending.items()}
        plan = plan_resends(accepted, before, lost, now, self.policy)
        if plan.drop:
            keep_s = self.policy.keep_ms // 1000
            log.warning("outbox: %d entries never settled in %d s, dropped", len(plan.drop), keep_s)
            self.outbox.settle(plan.drop)
        if plan.forget:
            self.outbox.forget_sent(plan.forget)
        sent, stopped = self._produce([(aid, pending[aid]) for aid in plan.resend], before, now)
        # Only a pass that got this far may rest: an error before it leaves the next one full.
        self._seen_lost, self._next_ms = lost, now if stopped else plan.next_ms
        if sent:
            log.warning("outbox: %d accepted events produced again after the broker was lost", len(sent))
        return len(sent)

    def _produce(
        self, due: list[tuple[str, Kept]], before: Mapping[str, Sent], now: int
    ) -> tuple[dict[str, Sent], bool]:
        """Produce ``due``; what was produced, and whether the broker stopped the pass."""
        sent: dict[str, Sent] = {}
        too_large: list[str] = []
        stopped = False
        try:
            for aid, kept in due:
                try:
                    self.producer.produce(kept.topic, kept.value, key=aid)
                except EventTooLarge as exc:  # refused for good: sending it again cannot help
                    log.warning("outbox entry %s dropped: %s", aid, exc)
                    too_large.append(aid)
                    continue
                last = before.get(aid)
                sent[aid] = Sent(now, (last.times if last is not None else 0) + 1)
            if sent and self._flush:
                self.producer.flush()
        except KafkaError as exc:
            log.warning("outbox: sending again stopped after %d events: %s", len(sent), exc)
            stopped = True  # the rest is still due
        finally:
            if too_large:
                self.outbox.settle(too_large)
            if sent:
                self.outbox.mark_sent(sent)
        return sent, stopped

    def run(self, stop: threading.Event, every_s: float = 2.0) -> None:
        """:meth:`resend_due` every ``every_s``, or at once when woken, until ``stop``."""
        failing = False
        while not stop.is_set():
            try:
                self.resend_due()
            except GleanerError as exc:
                if not failing:
                    log.warning("outbox not read for sending again (retried): %s", exc)
                failing = True
            except Exception:  # a bug here must not end the thread: nothing would be sent again
                log.exception("outbox resend pass failed")
            else:
                failing = False
            self._wake.wait(every_s)
            self._wake.clear()
