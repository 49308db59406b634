"""Placement stream: ``invocations`` -> ``invoker.<id>``.

It keeps the invokers' health and queue lengths (from ``invokers.health``
heartbeats plus what it dispatched since each heartbeat) and the composition
cache (inside :class:`GreedyJSQ`). When no invoker is healthy, requests wait
for the first heartbeat; past ``no_invoker_wait_s`` they fail with a record
(statusCode 3) instead of hanging.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from gleaner.errors import MalformedEvent
from gleaner.records import INTERNAL_ERROR, RecordDraft, build_record
from gleaner.settings import Settings
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
from streams.placement.policies import POLICIES, InvokerView, Policy

log = logging.getLogger(__name__)
GROUP = "gleaner-placement"
NO_INVOKER_MSG = "No invokers available: none has sent a healthy heartbeat."


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


def follow_health(settings: Settings, table: InvokerTable, stop: threading.Event, group: str) -> None:
    """Feed ``table`` from the health topic; every reader sees every heartbeat."""
    consumer = EventConsumer(settings, group, [settings.health_topic], assign_latest=True, hot=False)
    try:
        while not stop.is_set():
            rec = consumer.poll(0.2)
            if rec is None:
                continue
            try:
                table.update(InvokerHealth.from_dict(decode(rec.value)))
            except MalformedEvent as exc:
                log.warning("ignoring malformed heartbeat: %s", exc)
    finally:
        consumer.close()


class PlacementAgent:
    def __init__(
        self, settings: Settings, policy: str = "greedy-jsq", no_invoker_wait_s: float = 30.0
    ) -> None:
        self.settings = settings
        self.policy: Policy = POLICIES[policy]()
        self.no_invoker_wait_s = no_invoker_wait_s
        self.table = InvokerTable(settings.invoker_unhealthy_after_s)
        self.producer = EventProducer(settings)
        self.deadletters = DeadLetters(settings, self.producer)
        self.offsets = OffsetTracker()
        self._waiting: deque[tuple[float, ActivationRequest, Record]] = deque()
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        health = threading.Thread(
            target=follow_health,
            args=(self.settings, self.table, self._stop, "gleaner-placement-health"),
            daemon=True,
        )
        health.start()
        consumer = EventConsumer(self.settings, GROUP, [self.settings.invocations_topic])
        last_commit = time.monotonic()
        try:
            while not self._stop.is_set():
                rec = consumer.poll(0.05)
                if rec is not None:
                    self._accept(rec)
                if self._waiting and (self.table.changed.is_set() or rec is None):
                    self.table.changed.clear()
                    self._retry_waiting()
                if time.monotonic() - last_commit >= 0.2:
                    self._commit(consumer)
                    last_commit = time.monotonic()
        finally:
            self._commit(consumer)
            consumer.close()
            self.producer.close()

    def _accept(self, rec: Record) -> None:
        tp = (rec.topic, rec.partition)
        self.offsets.started(tp, rec.offset)
        try:
            req = ActivationRequest.from_dict(
                decode(rec.value), fallback_id=derived_activation_id(rec.topic, rec.partition, rec.offset)
            )
        except MalformedEvent as exc:
            self.deadletters.send(rec, str(exc))
            self.offsets.done(tp, rec.offset)
            return
        if self._waiting or not self._dispatch(req, rec):
            self._waiting.append((time.monotonic(), req, rec))  # keep arrival order behind waiters

    def _dispatch(self, req: ActivationRequest, rec: Record) -> bool:
        invoker = self.policy.choose(self.table.views(), req.composition, req.action)
        if invoker is None:
            return False
        # Forward the request unchanged (with its id made explicit) to the chosen invoker.
        self.producer.produce(self.settings.invoker_topic(invoker), req.to_bytes(), key=req.activation_id)
        self.table.dispatched(invoker)
        self.offsets.done((rec.topic, rec.partition), rec.offset)
        return True

    def _retry_waiting(self) -> None:
        now = time.monotonic()
        while self._waiting:
            since, req, rec = self._waiting[0]
            if self._dispatch(req, rec):
                self._waiting.popleft()
            elif now - since > self.no_invoker_wait_s:
                self._waiting.popleft()
                self._fail(req, rec, NO_INVOKER_MSG)
            else:
                return

    def _fail(self, req: ActivationRequest, rec: Record, reason: str) -> None:
        log.error("activation %s failed: %s", req.activation_id, reason)
        ts = now_ms()
        record = build_record(
            RecordDraft(
                activation_id=req.activation_id,
                namespace=req.namespace,
                name=req.action,
                version="0.0.0",
                kind="unknown",
                start_ms=ts,
                end_ms=ts,
                status_code=INTERNAL_ERROR,
                result={"error": reason},
                caused_by=req.caused_by,
                gleaner={"invoker": None, "composition": req.composition},
            )
        )
        event = ActivationCompleted(
            activation_id=req.activation_id,
            namespace=req.namespace,
            action=req.action,
            invoker="",
            record=record,
        )
        self.producer.produce(self.settings.completed_topic, event.to_bytes(), key=req.activation_id)
        self.offsets.done((rec.topic, rec.partition), rec.offset)

    def _commit(self, consumer: EventConsumer) -> None:
        checkpoint(consumer, self.producer, self.offsets)
