"""Placement stream: ``invocations`` -> ``invoker.<id>``.

It keeps the invokers' health and queue lengths (from ``invokers.health``
heartbeats plus what it dispatched since each heartbeat) and the composition
cache (inside :class:`GreedyJSQ`). When no invoker is healthy, requests wait
for the first heartbeat; past ``no_invoker_wait_s`` they fail with a record
(statusCode 3) instead of hanging. A waiting request's offset is done only
once it is dispatched or failed. What an invoker was sent and has not
answered is sent again to a healthy one once it goes silent (see
:mod:`streams.placement.acks`); that list is kept in Redis, so a restarted
placement still knows it (:mod:`streams.placement.journal`).

Placement is the first consumer of ``invocations``, the one entry topic for
single activations: an event there is Gleaner's own (platform-signed, from
the gateway or the composition stream) or a tenant's, carrying its
``uuid:key`` in a ``gleaner-auth`` header. A tenant's event runs only when
the key is valid and its namespace is the event's, and without the fields
only the platform sets; anything else is dead-lettered with the reason.
Heartbeats and completions count only when platform-signed: each is read by a
handler (:class:`Heartbeats`, :class:`Acknowledgements`) behind a group-less
follower runner, from the end, kept alive by :mod:`streams.kafka.follow`.

Placement also reads ``prewarm``: the composition stream's pre-warm hints
(platform-signed only), forwarded to the invokers that will run the
functions they name (:mod:`streams.placement.prewarm`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gleaner import subjects
from gleaner.couchdb import ACTIVATIONS, CouchDB
from gleaner.errors import GleanerError, MalformedEvent
from gleaner.metrics import PLACEMENT_INVOKERS_HEALTHY, PREWARMS
from gleaner.records import INTERNAL_ERROR
from gleaner.redis_store import RedisStore
from gleaner.settings import Settings
from gleaner.settings_sections import KafkaSettings
from streams.events import (
    ActivationCompleted,
    ActivationRequest,
    InvokerHealth,
    PrewarmHint,
    decode,
    derived_activation_id,
)
from streams.failures import completion_key, failed_completion
from streams.kafka.client import EventConsumer, EventProducer, Record, member_id, signature_rejects
from streams.kafka.deadletter import DeadLetters
from streams.kafka.doorbell import Bell, process_bell
from streams.kafka.follow import follow
from streams.kafka.runner import ConsumeRunner, DeadLetterSink, Handler, RunnerConfig, Sink, Ticket
from streams.kafka.signing import Signer, tenant_not_proven
from streams.placement.acks import Unacknowledged
from streams.placement.journal import UnackedJournal, keep_written, unacked_key
from streams.placement.policies import PLACEMENT_POLICY_FACTORIES, InvokerView, Policy
from streams.placement.prewarm import route_hint

log = logging.getLogger(__name__)
GROUP = "gleaner-placement"
NO_INVOKER_MSG = "No invokers available: none has sent a healthy heartbeat."
EXPIRE_EVERY_S = 10.0
SETTLE_AT_ONCE = 2000  # at most this many unacknowledged activations looked up in one pass
SETTLE_AFTER_S = 30.0  # an activation unacknowledged this long is looked up in the records
FOLLOW_POLL_S = 0.2  # the heartbeat and completion followers' poll timeout


@dataclass(slots=True)
class _Invoker:
    health: InvokerHealth
    seen: float  # monotonic time of the last heartbeat
    dispatched: int = 0  # sent since that heartbeat


class InvokerTable:
    """Health and load of every invoker, fed by heartbeats (thread-safe)."""

    def __init__(self, unhealthy_after_s: float) -> None:
        self._after = unhealthy_after_s
        self._lock = threading.Lock()
        self._invokers: dict[str, _Invoker] = {}
        self.changed = threading.Event()

    def update(self, health: InvokerHealth) -> None:
        with self._lock:
            self._invokers[health.invoker] = _Invoker(health, time.monotonic())
        self.changed.set()

    def dispatched(self, invoker: str) -> None:
        with self._lock:
            if invoker in self._invokers:
                self._invokers[invoker].dispatched += 1

    def views(self) -> list[InvokerView]:
        now = time.monotonic()
        with self._lock:
            return [
                InvokerView(
                    id=i,
                    healthy=inv.health.status == "up" and now - inv.seen < self._after,
                    queue_length=inv.health.queue_length + inv.dispatched,
                )
                for i, inv in self._invokers.items()
            ]

    def states(self) -> dict[str, str]:
        return {v.id: "up" if v.healthy else "down" for v in self.views()}

    def heartbeats(self) -> list[dict[str, object]]:
        """Each invoker's last heartbeat (capacity, free, running, queue), for operators."""
        healthy = {v.id: v.healthy for v in self.views()}
        with self._lock:
            beats = [inv.health.to_dict() for inv in self._invokers.values()]
        return [{**b, "healthy": healthy.get(str(b["invoker"]), False)} for b in beats]


def follower_config(kafka: KafkaSettings) -> RunnerConfig:
    """The runner config of placement's followers: platform-signed records within the size
    limit. A poll ends at once on a record; its timeout only spaces the idle turns, and the
    followers have no timers to tick."""
    return RunnerConfig.for_settings(kafka, poll_timeout_s=FOLLOW_POLL_S)


def follow_health(
    settings: Settings,
    table: InvokerTable,
    stop: threading.Event,
    group: str,
    deadletters: DeadLetterSink | None = None,
) -> None:
    """Feed ``table`` from the health topic; every reader sees every heartbeat.
    One reader (placement's) dead-letters what it refuses, so each is parked once.
    Runs until ``stop``: a failing consumer is replaced (:func:`streams.kafka.follow.follow`)."""

    def open_reader() -> EventConsumer:
        return EventConsumer(
            settings.kafka,
            group,
            [settings.health_topic],
            assign_latest=True,
            wait_ms=settings.kafka_fetch_wait_health_ms,  # a beat a second: never dozes
        )

    config = follower_config(settings.kafka)
    follow("health", open_reader, Heartbeats(table), stop, config=config, deadletters=deadletters)


class Heartbeats(Handler):
    """Feeds an invoker table from the health topic. Its follower's runner lets only
    platform-signed heartbeats through: only invokers beat, and a forged heartbeat would
    steer work to no one. A malformed one raises MalformedEvent: refused likewise."""

    def __init__(self, table: InvokerTable) -> None:
        self.table = table

    def handle(self, record: Record, ticket: Ticket) -> None:
        self.table.update(InvokerHealth.from_dict(decode(record.value)))


def follow_completions(
    settings: Settings, unacked: Unacknowledged, stop: threading.Event, bell: Bell | None = None
) -> None:
    """Acknowledge dispatched activations as their (platform-signed) completions appear.
    Runs until ``stop``: a failing consumer is replaced (:func:`streams.kafka.follow.follow`)."""

    def open_reader() -> EventConsumer:
        return EventConsumer(
            settings.kafka,
            "gleaner-placement-acks",
            [settings.completed_topic],
            assign_latest=True,
            hot=False,
            bell=bell,
        )

    follow("acks", open_reader, Acknowledgements(unacked), stop, config=follower_config(settings.kafka))


class Acknowledgements(Handler):
    """Acknowledges each dispatched activation whose completion appears. Its follower's
    runner passes over (logs) a forged or malformed completion: the record sink, the
    topic's own consumer, dead-letters it."""

    def __init__(self, unacked: Unacknowledged) -> None:
        self.unacked = unacked

    def handle(self, record: Record, ticket: Ticket) -> None:
        self.unacked.acked(ActivationCompleted.from_dict(decode(record.value)).activation_id)


class PlacementAgent(Handler):
    def __init__(
        self,
        settings: Settings,
        producer: Sink,
        table: InvokerTable,
        policy: str = "greedy-jsq",
        no_invoker_wait_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        unacked: Unacknowledged | None = None,
        signer: Signer | None = None,
        authenticate: Callable[[str], str | None] | None = None,
        records_found: Callable[[list[tuple[str, str]]], set[str]] | None = None,
    ) -> None:
        self.settings = settings
        # With a signer, unsigned events are a tenant's and must prove their namespace
        # (``authenticate``: credential -> its namespace, or None).
        self.signer = signer
        self.authenticate = authenticate
        # (namespace, activation id) pairs -> the activation ids whose record exists (one request)
        self.records_found = records_found
        self._settler: threading.Thread | None = None
        self.producer = producer
        self.table = table
        self.policy: Policy = PLACEMENT_POLICY_FACTORIES[policy]()
        self.no_invoker_wait_s = no_invoker_wait_s
        self._clock = clock
        self._waiting: deque[tuple[float, ActivationRequest, Ticket]] = deque()
        self._last_retry = 0.0
        self._last_expiry = clock()
        # Not ``unacked or ...``: an empty list is falsy, and the agent would note its
        # dispatches in a list of its own that the completion reader never acknowledges.
        self.unacked = unacked if unacked is not None else Unacknowledged()
        self.redispatched = 0
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None

    def handle(self, record: Record, ticket: Ticket) -> None:
        data = decode(record.value)
        if record.topic == self.settings.prewarm_topic:
            self._prewarm(record, PrewarmHint.from_dict(data))
            return
        where = (record.topic, record.partition, record.offset, record.timestamp_ms)
        fallback = self.signer.position_id(*where) if self.signer else derived_activation_id(*where)
        req = ActivationRequest.from_dict(data, fallback_id=fallback)
        if self.signer is not None and signature_rejects(self.signer, record) is not None:
            req = self._tenant_request(record, req)
        if self._waiting or not self._dispatch(req):
            self._waiting.append((self._clock(), req, ticket.defer()))  # keep arrival order

    def start(self) -> None:
        # What a previous placement left, before the first dispatch (retried by the writer).
        self.unacked.recover()
        self._look_up_records(0.0)
        self._writer = threading.Thread(
            target=keep_written, args=(self.unacked.flush, self._stop), name="unacked-writer", daemon=True
        )
        self._writer.start()

    def _look_up_records(self, older_than_s: float) -> None:
        """Off the dispatch thread, at most one at a time."""
        if self.records_found is None or (self._settler is not None and self._settler.is_alive()):
            return
        self._settler = threading.Thread(
            target=self._settle_recorded, args=(older_than_s,), name="unacked-settle", daemon=True
        )
        self._settler.start()

    def _settle_recorded(self, older_than_s: float) -> None:
        """What completed while no reader listened (placement was down, or its completion
        reader was being replaced) has its record: acknowledged now, not re-sent when its
        invoker next goes quiet. All of them are looked up in one request."""
        assert self.records_found is not None
        owed = self.unacked.owed(older_than_s)[:SETTLE_AT_ONCE]
        if not owed:
            return
        try:
            found = self.records_found([(req.namespace, req.activation_id) for req in owed])
        except GleanerError as exc:  # CouchDB away: they stay owed, as before
            log.warning("records of unacknowledged activations not read: %s", exc)
            return
        settled = [req.activation_id for req in owed if req.activation_id in found]
        for activation_id in settled:
            self.unacked.acked(activation_id)
        if settled:
            log.info("%d unacknowledged activations had completed (their records exist)", len(settled))

    def tick(self) -> None:
        now = self._clock()
        if now - self._last_retry >= 0.1 or self.table.changed.is_set():
            self.table.changed.clear()
            self._last_retry = now
            # `gleaner up` waits for this: placement, not only the gateway, sees an invoker.
            PLACEMENT_INVOKERS_HEALTHY.set(sum(1 for v in self.table.views() if v.healthy))
            self._take_back_from_silent()
            if self._waiting:
                self._retry_waiting(now)
        if now - self._last_expiry >= EXPIRE_EVERY_S:
            self._last_expiry = now
            self._look_up_records(SETTLE_AFTER_S)
            dropped = self.unacked.expire()
            if dropped:
                log.warning("forgot %d dispatched activations never acknowledged (stale)", dropped)

    def close(self) -> None:
        self._stop.set()
        if self._writer is not None:
            self._writer.join(2)
        self.unacked.flush()  # the last notes too

    def revoked(self, tps: list[tuple[str, int]]) -> None:
        gone = set(tps)
        self._waiting = deque(
            w for w in self._waiting if (w[2].record.topic, w[2].record.partition) not in gone
        )

    def _tenant_request(self, record: Record, req: ActivationRequest) -> ActivationRequest:
        """A tenant's event: its credential must prove the event's namespace (raises
        MalformedEvent with why, so it is dead-lettered); the platform's fields are dropped."""
        # CouchDB trouble in ``authenticate`` raises: the runner retries the record.
        reason = tenant_not_proven(req.namespace, record.headers, self.authenticate)
        if reason is not None:
            raise MalformedEvent(reason)
        # A tenant names its action and input; what runs it, where and as part of what is ours.
        return dataclasses.replace(req, allocation=None, redispatched_from=None, caused_by=None)

    def _prewarm(self, record: Record, hint: PrewarmHint) -> None:
        """Forward the hint to the invokers that will run its functions. Only the platform
        asks for containers (a tenant's hint is dead-lettered); no invoker: dropped."""
        if self.signer is not None and signature_rejects(self.signer, record) is not None:
            raise MalformedEvent("a pre-warm hint is the platform's own: it must be platform-signed")
        routed = route_hint(hint, self.policy, self.table.views())
        if not routed:
            PREWARMS.labels("no_invoker").inc()
        for invoker, part in routed.items():
            self.producer.produce(self.settings.invoker_topic(invoker), part.to_bytes(), key=hint.hint_id)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _dispatch(self, req: ActivationRequest) -> bool:
        if self.unacked.completed(req.activation_id):
            # A replay of a finished activation: the invoker would skip it and never answer.
            log.debug("activation %s already completed; not sent again", req.activation_id)
            return True
        invoker = self.policy.choose(self.table.views(), req.composition, req.action)
        if invoker is None:
            return False
        # Forward the request unchanged (with its id made explicit) to the chosen invoker.
        self.producer.produce(self.settings.invoker_topic(invoker), req.to_bytes(), key=req.activation_id)
        self.table.dispatched(invoker)
        self.unacked.sent(invoker, req)
        return True

    def _take_back_from_silent(self) -> None:
        """Send again what silent invokers owe; the receiving invoker takes their claims over.
        Taken back, they stay on the list (and in Redis) until sent, and a completion that
        comes meanwhile still removes them: nothing finished is sent again."""
        silent = {v.id for v in self.table.views() if not v.healthy}
        for invoker in silent & self.unacked.invokers():
            owed = self.unacked.take_back(invoker)
            log.warning(
                "invoker %s is silent; sending its %d unfinished activations elsewhere", invoker, owed
            )
        for req in self.unacked.pending():
            if not self._dispatch(req):
                break
            self.redispatched += 1

    def _retry_waiting(self, now: float) -> None:
        while self._waiting:
            since, req, ticket = self._waiting[0]
            if self._dispatch(req):
                self._waiting.popleft()
                ticket.done()
            elif now - since > self.no_invoker_wait_s:
                self._waiting.popleft()
                self._fail(req, NO_INVOKER_MSG)
                ticket.done()
            else:
                return

    def _fail(self, req: ActivationRequest, reason: str) -> None:
        log.error("activation %s failed: %s", req.activation_id, reason)
        event = failed_completion(req, INTERNAL_ERROR, reason)
        self.producer.produce(self.settings.completed_topic, event.to_bytes(), key=completion_key(req))


def records_found(db: CouchDB, owed: list[tuple[str, str]]) -> set[str]:
    """Of ``owed`` (namespace, activation id) pairs, the activation ids whose record is in
    CouchDB: one ``_all_docs`` request for them all (revisions only, no bodies)."""
    by_doc_id = {f"{ns}/{aid}": aid for ns, aid in owed}
    return {by_doc_id[i] for i in db.existing(ACTIVATIONS, list(by_doc_id)) if i in by_doc_id}


def build(settings: Settings, policy: str = "greedy-jsq", no_invoker_wait_s: float = 30.0) -> ConsumeRunner:
    bell = process_bell(settings.kafka, settings.stores)
    producer = EventProducer(settings.kafka, bell)
    table = InvokerTable(settings.invoker_unhealthy_after_s)
    unacked = Unacknowledged(journal=UnackedJournal(RedisStore(settings.stores), unacked_key(settings)))
    db = CouchDB(settings.stores)
    config = RunnerConfig.for_settings(settings.kafka, tenant_entry=True)
    agent = PlacementAgent(
        settings,
        producer,
        table,
        policy,
        no_invoker_wait_s,
        unacked=unacked,
        signer=config.signer,
        authenticate=lambda credential: subjects.authenticate(db, credential),
        records_found=lambda owed: records_found(db, owed),
    )
    consumer = EventConsumer(
        settings.kafka,
        GROUP,
        [settings.invocations_topic, settings.prewarm_topic],
        instance_id=member_id("placement"),
        bell=bell,
        wake_on=[settings.dag_requests_topic],  # its stages come through here
    )
    runner = ConsumeRunner(
        "placement",
        consumer,
        producer,
        DeadLetters(settings.kafka, producer),
        agent,
        config,
    )
    health = threading.Thread(
        target=follow_health,
        args=(
            settings,
            table,
            runner.stopping_event,
            "gleaner-placement-health",
            DeadLetters(settings.kafka, producer),
        ),
        name="health",
        daemon=True,
    )
    health.start()
    acks = threading.Thread(
        target=follow_completions,
        args=(settings, unacked, runner.stopping_event, bell),
        name="acks",
        daemon=True,
    )
    acks.start()
    return runner
