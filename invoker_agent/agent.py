"""The invoker agent: one per node, consuming its own topic ``invoker.<id>``.

Flow per record: decode (malformed -> dead letter) -> claim the activation id
(duplicate -> skip) -> run on a worker thread -> publish the completion
(which carries the record; the record sink writes it to CouchDB).
Offsets are committed in order (see ``streams.kafka.offsets``) and only after
the producer has flushed the completions they caused.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from gleaner.couchdb import CouchDB
from gleaner.errors import GleanerError, MalformedEvent
from gleaner.redis_store import RedisStore
from gleaner.settings import Settings
from invoker_agent.action_store import ActionStore
from invoker_agent.container_pool import ContainerPool
from invoker_agent.dedupe import ActivationClaims, Claim
from invoker_agent.docker_engine import DockerEngine
from invoker_agent.executor import ActionMissing, ActivationExecutor
from invoker_agent.permits import ResourcePermits
from streams.events import (
    ActivationCompleted,
    ActivationRequest,
    InvokerHealth,
    decode,
    derived_activation_id,
    now_ms,
)
from streams.kafka.checkpoint import checkpoint
from streams.kafka.client import EventConsumer, EventProducer, Record
from streams.kafka.deadletter import DeadLetters
from streams.kafka.offsets import OffsetTracker
from streams.payloads import DataStore

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 256  # stop fetching beyond this many unfinished records (back-pressure)
COMMIT_EVERY_S = 0.2


class InvokerAgent:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.id = settings.invoker_id
        self.incarnation = uuid.uuid4().hex[:12]
        self.producer = EventProducer(settings)
        self.deadletters = DeadLetters(settings, self.producer)
        self.engine = DockerEngine(settings)
        self.pool = ContainerPool(self.engine, settings)
        self.permits = ResourcePermits(
            settings.invoker_cpu_capacity,
            settings.invoker_memory_capacity_mb,
            settings.cpu_step,
            by_age=settings.harvest_load_aware,
        )
        self.db = CouchDB(settings)
        self.redis = RedisStore(settings)
        self.executor = ActivationExecutor(
            settings,
            ActionStore(self.db, settings.action_cache_ttl_s),
            self.pool,
            self.permits,
            DataStore(self.redis, settings.inline_payload_bytes, settings.data_ttl_s),
        )
        self.claims = ActivationClaims(self.redis, self.id, self.incarnation)
        self.offsets = OffsetTracker()
        self.workers = ThreadPoolExecutor(max_workers=64, thread_name_prefix="activation")
        self._finished: list[str] = []
        self._finished_lock = threading.Lock()
        self._stop = threading.Event()

    # -- lifecycle -------------------------------------------------------------
    def run(self) -> None:
        removed = self.engine.remove_managed(self.id)
        if removed:
            log.info("removed %d containers left by a previous run", removed)
        consumer = EventConsumer(
            self.settings, f"gleaner-invoker-{self.id}", [self.settings.invoker_topic(self.id)]
        )
        beat = threading.Thread(target=self._heartbeats, name="heartbeat", daemon=True)
        beat.start()
        reaper = threading.Thread(target=self._reap, name="reaper", daemon=True)
        reaper.start()
        log.info(
            "invoker %s (incarnation %s) consuming %s with %.2f cores / %d MB",
            self.id,
            self.incarnation,
            consumer.topics,
            self.permits.cpu_capacity,
            self.permits.memory_capacity_mb,
        )
        self._publish_health()
        last_commit = time.monotonic()
        try:
            while not self._stop.is_set():
                if self.offsets.in_flight() < MAX_IN_FLIGHT:
                    record = consumer.poll(0.05)
                    if record is not None:
                        self._accept(record)
                else:
                    time.sleep(0.01)
                if time.monotonic() - last_commit >= COMMIT_EVERY_S:
                    self._commit(consumer)
                    last_commit = time.monotonic()
        finally:
            self.workers.shutdown(wait=True)
            self._commit(consumer)
            consumer.close()
            self._publish_health("draining")
            self.producer.close()
            self.pool.shutdown()

    def stop(self) -> None:
        self._stop.set()

    # -- records ---------------------------------------------------------------
    def _accept(self, record: Record) -> None:
        tp = (record.topic, record.partition)
        self.offsets.started(tp, record.offset)
        try:
            req = ActivationRequest.from_dict(
                decode(record.value),
                fallback_id=derived_activation_id(record.topic, record.partition, record.offset),
            )
        except MalformedEvent as exc:
            self.deadletters.send(record, str(exc))
            self.offsets.done(tp, record.offset)
            return
        self.workers.submit(self._work, req, record)

    def _work(self, req: ActivationRequest, record: Record) -> None:
        tp = (record.topic, record.partition)
        try:
            if self.claims.claim(req.activation_id) is Claim.DUPLICATE:
                log.info("duplicate activation %s skipped", req.activation_id)
                return
            try:
                doc = self.executor.execute(req)
            except ActionMissing as exc:
                self.deadletters.send(record, str(exc))
                return
            event = ActivationCompleted(
                activation_id=req.activation_id,
                namespace=req.namespace,
                action=req.action,
                invoker=self.id,
                record=doc,
                caused_by=req.caused_by,
            )
            # Keyed by the DAG request: its completions meet its request on one partition.
            key = req.caused_by or req.activation_id
            self.producer.produce(self.settings.completed_topic, event.to_bytes(), key=key)
            with self._finished_lock:
                self._finished.append(req.activation_id)
        except GleanerError as exc:
            # Kafka/CouchDB failures: leave the offset uncommitted so the record is redelivered.
            log.error("activation %s failed in the platform: %s", req.activation_id, exc)
            return
        except Exception:
            log.exception("activation %s crashed the worker", req.activation_id)
        finally:
            self.offsets.done(tp, record.offset)

    def _commit(self, consumer: EventConsumer) -> None:
        with self._finished_lock:
            finished, self._finished = self._finished, []
        if checkpoint(consumer, self.producer, self.offsets):  # completions flushed first
            self.claims.finished(finished)

    # -- background ------------------------------------------------------------
    def _publish_health(self, status: str = "up") -> None:
        cpu_free, mem_free, _waiting = self.permits.snapshot()
        health = InvokerHealth(
            invoker=self.id,
            incarnation=self.incarnation,
            ts_ms=now_ms(),
            cpu_capacity=self.permits.cpu_capacity,
            memory_capacity_mb=self.permits.memory_capacity_mb,
            cpu_free=cpu_free,
            memory_free_mb=mem_free,
            queue_length=self.offsets.in_flight(),
            running=self.executor.running,
            status=status,
        )
        self.producer.produce(self.settings.health_topic, health.to_bytes(), key=self.id)

    def _heartbeats(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_interval_s):
            try:
                self._publish_health()
            except GleanerError as exc:
                log.warning("heartbeat failed: %s", exc)

    def _reap(self) -> None:
        while not self._stop.wait(5.0):
            try:
                self.pool.reap_idle()
            except GleanerError as exc:
                log.warning("reaping idle containers failed: %s", exc)
