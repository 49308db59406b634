"""The invoker agent: one per node, consuming its own topic ``invoker.<id>``.

Flow per record (behind the one consume runner): decode (malformed -> dead
letter) -> claim the activation id (duplicate -> skip) -> run on a worker
thread -> publish the completion (which carries the record; the record sink
writes it to CouchDB). Every activation ends in exactly one completion: an
action store that is down is retried with a backoff up to
``platform_retry_s``, then the activation fails with statusCode 3 and why.
A record's offset is done only once its completion is produced, and committed
only after the producer has flushed it. The activation's claim is marked done
as soon as the broker has its completion, so a redelivery is skipped, not run
again. A duplicate of an activation finished here gets the completion it was
given published again (the last ``RECENT_COMPLETIONS`` are kept), in case its
sender never saw it; a duplicate of one still running gets nothing (its
completion is on the way).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gleaner.couchdb import CouchDB
from gleaner.errors import GleanerError, ServiceError
from gleaner.metrics import (
    PERMITS_FREE_CORES,
    PERMITS_WAITING,
    SCHEDULER_RESERVED_CORE_SECONDS,
    SCHEDULER_WAITING_SECONDS,
)
from gleaner.records import DEVELOPER_ERROR, INTERNAL_ERROR
from gleaner.redis_store import RedisStore
from gleaner.settings import Settings
from invoker_agent.action_store import ActionStore
from invoker_agent.container_pool import ContainerPool
from invoker_agent.dedupe import ActivationClaims, Claim, RecentCompletions
from invoker_agent.docker_engine import DockerEngine
from invoker_agent.executor import ActionMissing, ActivationExecutor
from invoker_agent.ledger import CapacityLedger
from invoker_agent.permits import ResourcePermits
from invoker_agent.prewarm import Prewarmer
from invoker_agent.scheduling import SchedulerConfig
from streams.events import (
    PREWARM_HINT,
    ActivationCompleted,
    ActivationRequest,
    InvokerHealth,
    PrewarmHint,
    decode,
    derived_activation_id,
    now_ms,
)
from streams.failures import completion_key, failed_completion
from streams.kafka.client import EventConsumer, EventProducer, Record, ensure_topics, member_id
from streams.kafka.deadletter import DeadLetters
from streams.kafka.doorbell import process_bell
from streams.kafka.runner import ConsumeRunner, DeadLetterSink, Handler, RunnerConfig, Sink, Ticket
from streams.kafka.signing import Signer
from streams.payloads import DataStore

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 256  # stop fetching beyond this many unfinished records (back-pressure)
BACKOFF_MAX_S = 5.0
RECENT_COMPLETIONS = 1000  # delivered completions kept to publish again on a duplicate ...
RECENT_COMPLETIONS_BYTES = 32 * 2**20  # ... and at most this many bytes of them


class InvokerAgent(Handler):
    def __init__(
        self,
        settings: Settings,
        producer: Sink,
        deadletters: DeadLetterSink,
        executor: ActivationExecutor,
        claims: ActivationClaims,
        engine: Any,
        incarnation: str,
        prewarmer: Prewarmer | None = None,
    ) -> None:
        self.settings = settings
        self.id = settings.invoker_id
        self.incarnation = incarnation
        self.producer = producer
        self.deadletters = deadletters
        self.executor = executor
        self.permits: ResourcePermits = executor.permits
        self.pool: ContainerPool = executor.pool
        self.engine = engine
        self.claims = claims
        self.prewarmer = prewarmer
        self.workers = ThreadPoolExecutor(max_workers=64, thread_name_prefix="activation")
        self._in_flight = 0
        self._count_lock = threading.Lock()
        self._counted = (0.0, 0.0)  # the scheduler's waiting totals already in the counters (s)
        self._finished: list[str] = []
        self._finished_lock = threading.Lock()
        self.recent = RecentCompletions(RECENT_COMPLETIONS, RECENT_COMPLETIONS_BYTES)
        self._stop = threading.Event()

    # -- runner hooks ------------------------------------------------------------
    def start(self) -> None:
        # Containers of a crashed run go in the background: work starts at once in new ones.
        threading.Thread(target=self._remove_leftovers, name="leftovers", daemon=True).start()
        threading.Thread(target=self._heartbeats, name="heartbeat", daemon=True).start()
        threading.Thread(target=self._reap, name="reaper", daemon=True).start()
        log.info(
            "invoker %s (incarnation %s) with %.2f cores / %d MB",
            self.id,
            self.incarnation,
            self.permits.cpu_capacity,
            self.permits.memory_capacity_mb,
        )
        self._publish_health()

    def handle(self, record: Record, ticket: Ticket) -> None:
        data = decode(record.value)
        if data.get("type") == PREWARM_HINT:
            # Not an activation: no claim, no completion; starts in the background.
            hint = PrewarmHint.from_dict(data)
            if self.prewarmer is not None:
                self.prewarmer.hint(hint)
            return
        req = ActivationRequest.from_dict(
            data,
            fallback_id=derived_activation_id(
                record.topic, record.partition, record.offset, record.timestamp_ms
            ),
        )
        with self._count_lock:
            self._in_flight += 1
        self.workers.submit(self._work, req, ticket.defer())

    def tick(self) -> None:
        with self._finished_lock:
            delivered, self._finished = self._finished, []
        # Their completions are on the broker: a redelivery before the commit is a
        # duplicate to skip, not a crashed run to take over and run again.
        self.claims.finished(delivered)

    def close(self) -> None:
        self._stop.set()
        if self.prewarmer is not None:
            self.prewarmer.close()
        self.workers.shutdown(wait=True)
        try:
            self._publish_health("draining")
        except GleanerError as exc:
            log.warning("last heartbeat failed: %s", exc)
        self.pool.shutdown()

    # -- one activation (worker thread) ------------------------------------------------
    def _work(self, req: ActivationRequest, ticket: Ticket) -> None:
        try:
            kept = self.recent.get(req.activation_id)
            if kept is not None:
                # Finished here, its completion delivered: whoever sent it again may have
                # missed that completion. Publish the same one again (consumers are
                # idempotent on the activation id); never run it again. Asked before the
                # claim, so this holds even when Redis lost or cannot give the done mark.
                log.info(
                    "duplicate of finished activation %s: its completion published again", req.activation_id
                )
                if self._republish(req.activation_id, *kept):
                    ticket.done()
                return
            claim = self.claims.claim(req.activation_id, takeover_from=req.redispatched_from)
            if claim is Claim.FINISHED:
                log.info(
                    "duplicate of finished activation %s skipped (its completion is not kept here)",
                    req.activation_id,
                )
                ticket.done()
                return
            if claim is Claim.DUPLICATE:
                log.info("duplicate of running activation %s skipped", req.activation_id)
                ticket.done()
                return
            event = self._recovered(req) if claim is Claim.TAKEOVER else None
            if event is None:
                event = self._execute(req, ticket.record)
            if self._publish(req, event):
                ticket.done()
            # else: stopping before it got out; uncommitted, so it comes back after a restart
        except Exception:
            log.exception("activation %s crashed the worker", req.activation_id)
        finally:
            with self._count_lock:
                self._in_flight -= 1

    def _recovered(self, req: ActivationRequest) -> ActivationCompleted | None:
        """The completion of a run the crashed holder finished, if its container kept it."""
        holder = self.claims.previous_holder(req.activation_id)
        if holder is None:
            return None
        try:
            doc = self.executor.recover(req, holder)
        except GleanerError as exc:
            log.warning("recovering %s failed: %s; running it again", req.activation_id, exc)
            return None
        if doc is None:
            return None
        return self._completion(req, doc)

    def _completion(self, req: ActivationRequest, doc: dict[str, Any]) -> ActivationCompleted:
        return ActivationCompleted(
            activation_id=req.activation_id,
            namespace=req.namespace,
            action=req.action,
            invoker=self.id,
            record=doc,
            caused_by=req.caused_by,
        )

    def _execute(self, req: ActivationRequest, record: Record) -> ActivationCompleted:
        """Run ``req``; whatever happens, the completion that says how it ended."""
        deadline = time.monotonic() + self.settings.platform_retry_s
        attempt = 0
        while True:
            try:
                return self._completion(req, self.executor.execute(req))
            except ActionMissing as exc:
                self.deadletters.send(record, str(exc))
                return failed_completion(
                    req, DEVELOPER_ERROR, f"The action {req.namespace}/{req.action} does not exist.", self.id
                )
            except ServiceError as exc:
                # Nothing ran yet (the action store or an input was unreachable): wait and try again.
                attempt += 1
                if time.monotonic() >= deadline or self._stop.is_set():
                    reason = f"The platform could not run the action: {exc}"
                    return failed_completion(req, INTERNAL_ERROR, reason, self.id)
                delay = min(BACKOFF_MAX_S, 0.2 * 2 ** (attempt - 1))
                log.warning("activation %s waits %.1fs for the platform: %s", req.activation_id, delay, exc)
                self._stop.wait(delay)
            except Exception as exc:
                log.exception("activation %s failed in the invoker", req.activation_id)
                reason = f"The invoker failed: {type(exc).__name__}: {exc}"
                return failed_completion(req, INTERNAL_ERROR, reason, self.id)

    def _publish(self, req: ActivationRequest, event: ActivationCompleted) -> bool:
        """Produce the completion, retrying while Kafka is away. False only when stopping."""
        attempt = 0
        key = completion_key(req)
        while True:
            try:
                value = event.to_bytes()
                self.producer.produce(
                    self.settings.completed_topic,
                    value,
                    key=key,
                    on_delivered=functools.partial(self._delivered, req.activation_id, key, value),
                )
                return True
            except ServiceError as exc:
                attempt += 1
                if self._stop.is_set():
                    log.error("completion of %s not published before stopping: %s", req.activation_id, exc)
                    return False
                self._stop.wait(min(BACKOFF_MAX_S, 0.2 * 2 ** (attempt - 1)))
            except GleanerError as exc:  # too large, or not encodable: say so in a smaller record
                if event.invoker == self.id and event.record.get("gleaner", {}).get("unpublishable"):
                    raise
                reason = f"The activation record could not be published: {exc}"
                event = failed_completion(req, INTERNAL_ERROR, reason, self.id)
                event.record.setdefault("gleaner", {})["unpublishable"] = True

    def _republish(self, activation_id: str, key: str, value: bytes) -> bool:
        """Produce a completion delivered before once more, retrying while Kafka is away.
        False only when stopping."""
        attempt = 0
        while True:
            try:
                self.producer.produce(
                    self.settings.completed_topic,
                    value,
                    key=key,
                    on_delivered=functools.partial(self._delivered, activation_id, key, value),
                )
                return True
            except ServiceError as exc:
                attempt += 1
                if self._stop.is_set():
                    log.error("completion of %s not published again before stopping: %s", activation_id, exc)
                    return False
                self._stop.wait(min(BACKOFF_MAX_S, 0.2 * 2 ** (attempt - 1)))
            except GleanerError as exc:  # it went out once; the duplicate is skipped all the same
                log.warning("completion of %s not published again: %s", activation_id, exc)
                return True

    def _delivered(self, activation_id: str, key: str, value: bytes) -> None:
        self.recent.delivered(activation_id, key, value)
        with self._finished_lock:
            self._finished.append(activation_id)

    # -- background ------------------------------------------------------------
    def _publish_health(self, status: str = "up") -> None:
        view = self.permits.view()  # one consistent reading: free, waiting and lent together
        cpu_free, mem_free, waiting = view.cpu_free, view.memory_free_mb, view.waiting
        PERMITS_FREE_CORES.labels(self.id).set(cpu_free)
        PERMITS_WAITING.labels(self.id).set(waiting)
        waited_ms, reserved_core_ms = self.permits.waiting_totals()
        SCHEDULER_WAITING_SECONDS.labels(self.id).inc(max(0.0, waited_ms / 1000 - self._counted[0]))
        SCHEDULER_RESERVED_CORE_SECONDS.labels(self.id).inc(
            max(0.0, reserved_core_ms / 1000 - self._counted[1])
        )
        self._counted = (waited_ms / 1000, reserved_core_ms / 1000)
        with self._count_lock:
            queued = self._in_flight
        health = InvokerHealth(
            invoker=self.id,
            incarnation=self.incarnation,
            ts_ms=now_ms(),
            cpu_capacity=self.permits.cpu_capacity,
            memory_capacity_mb=self.permits.memory_capacity_mb,
            cpu_free=cpu_free,
            memory_free_mb=mem_free,
            queue_length=queued,
            running=self.executor.running,
            status=status,
            waiting=waiting,
            cpu_lent=view.cpu_lent,
        )
        self.producer.produce(self.settings.health_topic, health.to_bytes(), key=self.id)

    def _remove_leftovers(self) -> None:
        # Not at once: the takeovers of the first minute may ask them for finished answers.
        if self._stop.wait(self.settings.leftover_grace_s):
            return
        try:
            removed = self.engine.remove_managed(self.id, keep_incarnation=self.incarnation)
        except GleanerError as exc:
            log.warning("could not remove containers left by a previous run: %s", exc)
            return
        if removed:
            log.info("removed %d containers left by a previous run", removed)

    def _heartbeats(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_interval_s):
            try:
                self._publish_health()
            except GleanerError as exc:
                log.warning("heartbeat failed: %s", exc)

    def _reap(self) -> None:
        # Every 5 s, or more often under a short keep-alive (pre-warm benchmarks shorten it).
        period = min(5.0, max(0.5, self.settings.container_keepalive_s / 2))
        while not self._stop.wait(period):
            try:
                self.pool.reap_idle()
            except GleanerError as exc:
                log.warning("reaping idle containers failed: %s", exc)


def build(settings: Settings) -> ConsumeRunner:
    ensure_topics(settings.kafka, [settings.invoker_topic(settings.invoker_id)])  # a new invoker's own topic
    bell = process_bell(settings.kafka, settings.stores)
    producer = EventProducer(settings.kafka, bell)
    deadletters = DeadLetters(settings.kafka, producer)
    engine = DockerEngine(settings)
    permits = ResourcePermits(
        CapacityLedger(
            settings.invoker_cpu_capacity,
            settings.invoker_memory_capacity_mb,
            settings.cpu_step,
            SchedulerConfig.from_settings(settings),
        )
    )
    db = CouchDB(settings.stores)
    redis = RedisStore(settings.stores)
    incarnation = uuid.uuid4().hex[:12]
    actions = ActionStore(db, settings.action_cache_ttl_s)
    pool = ContainerPool(engine, settings, incarnation=incarnation)
    executor = ActivationExecutor(
        settings,
        actions,
        pool,
        permits,
        DataStore(
            redis, settings.inline_payload_bytes, settings.data_ttl_s, Signer.for_settings(settings.kafka)
        ),
    )
    claims = ActivationClaims(redis, settings.invoker_id, incarnation)
    prewarmer = Prewarmer(settings, pool, actions, permits)
    agent = InvokerAgent(settings, producer, deadletters, executor, claims, engine, incarnation, prewarmer)
    consumer = EventConsumer(
        settings.kafka,
        f"gleaner-invoker-{settings.invoker_id}",
        [settings.invoker_topic(settings.invoker_id)],
        instance_id=member_id(f"invoker-{settings.invoker_id}"),
        bell=bell,
        # A request entering the platform: awake before placement routes it here.
        wake_on=[settings.invocations_topic, settings.dag_requests_topic],
    )
    return ConsumeRunner(
        f"invoker-{settings.invoker_id}",
        consumer,
        producer,
        deadletters,
        agent,
        RunnerConfig.for_settings(settings.kafka, max_in_flight=MAX_IN_FLIGHT),
    )
