"""Record sink: writes activation records from ``activations.completed`` to CouchDB.

Records are written off the request's critical path and in batches
(``_bulk_docs`` does ~5,500 docs/s on pouchdb-server against ~220/s one by
one). The document id is ``<namespace>/<activationId>``, so a redelivered
completion meets a conflict and changes nothing. A record's offset is done
only once its batch is written: a crash replays the batch, never loses it.
While CouchDB is down the batch waits and is tried again with a backoff; the
process stays up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from gleaner.couchdb import ACTIVATIONS, CouchDB
from gleaner.errors import GleanerError, MalformedEvent, ServiceError
from gleaner.metrics import ACTIVATION_COUNT, ACTIVATION_DURATION, HOP_SECONDS, status_label
from gleaner.records import annotation
from gleaner.redis_store import RedisStore
from gleaner.settings import Settings
from streams.events import ActivationCompleted, decode
from streams.kafka.client import EventConsumer, EventProducer, Record, member_id
from streams.kafka.deadletter import DeadLetters
from streams.kafka.doorbell import process_bell
from streams.kafka.runner import ConsumeRunner, Handler, RunnerConfig, Ticket
from streams.outbox import Outbox

log = logging.getLogger(__name__)
GROUP = "gleaner-records"
MAX_BATCH = 500
BACKOFF_MAX_S = 5.0


class BulkWriter(Protocol):
    def bulk_docs(self, db: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]: ...


def batch_outcome(results: list[dict[str, Any]]) -> tuple[int, int, list[str]]:
    """(written, already there, other errors) from a ``_bulk_docs`` answer."""
    written = sum(1 for r in results if "rev" in r and "error" not in r)
    dupes = sum(1 for r in results if r.get("error") == "conflict")
    errors = [
        f"{r.get('id')}: {r.get('error')} {r.get('reason', '')}"
        for r in results
        if r.get("error") not in (None, "conflict")
    ]
    return written, dupes, errors


def record_doc(rec: Record) -> dict[str, Any]:
    """The CouchDB document a completion event carries (raises MalformedEvent)."""
    doc = ActivationCompleted.from_dict(decode(rec.value)).record
    if not isinstance(doc.get("activationId"), str) or not isinstance(doc.get("namespace"), str):
        raise MalformedEvent("record lacks activationId/namespace")
    doc["_id"] = f"{doc['namespace']}/{doc['activationId']}"
    doc.pop("_rev", None)
    return doc


def observe_record(doc: dict[str, Any]) -> None:
    """Count one activation from its record: the sink sees every activation once
    (a redelivery may count twice; a counter tolerates that)."""
    origin = "dag" if annotation(doc, "causedBy") else "direct"
    ACTIVATION_COUNT.labels(status_label(doc.get("statusCode")), origin).inc()
    duration = doc.get("duration")
    if isinstance(duration, int | float):
        ACTIVATION_DURATION.observe(duration / 1000)
    for hop, key in (("wait", "waitTime"), ("init", "initTime")):
        value = annotation(doc, key)
        if isinstance(value, int | float):
            HOP_SECONDS.labels(hop).observe(value / 1000)


class RecordSink(Handler):
    def __init__(
        self,
        db: BulkWriter,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        settle: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.db = db
        self.settle = settle  # the outbox: these activations' records exist
        self.window_s = window_s
        self._clock = clock
        self._batch: list[tuple[dict[str, Any], Ticket]] = []
        self._opened = 0.0  # when the batch got its first record
        self._retry_at = 0.0
        self._failures = 0

    def handle(self, record: Record, ticket: Ticket) -> None:
        doc = record_doc(record)
        observe_record(doc)
        if not self._batch:
            self._opened = self._clock()
        self._batch.append((doc, ticket.defer()))
        if len(self._batch) >= MAX_BATCH:
            self.tick()

    def tick(self) -> None:
        now = self._clock()
        if not self._batch or now < self._retry_at:
            return
        if len(self._batch) < MAX_BATCH and now - self._opened < self.window_s:
            return
        self._flush_batch()

    def close(self) -> None:
        if self._batch:
            self._retry_at = 0.0
            self._flush_batch()

    def _flush_batch(self) -> None:
        docs = [doc for doc, _ in self._batch]
        try:
            written, dupes, errors = batch_outcome(self.db.bulk_docs(ACTIVATIONS, docs))
        except ServiceError as exc:
            self._failures += 1
            delay = min(BACKOFF_MAX_S, 0.2 * 2 ** (self._failures - 1))
            self._retry_at = self._clock() + delay
            log.error("record batch of %d not written: %s; retry in %.1fs", len(docs), exc, delay)
            return
        self._failures = 0
        failed = {e.partition(":")[0] for e in errors}
        for doc, ticket in self._batch:
            if doc["_id"] in failed:
                # CouchDB refused this document itself (not a conflict): park it with why.
                ticket.dead_letter(next(e for e in errors if e.startswith(doc["_id"] + ":")))
            else:
                ticket.done()
        self._settle([doc["activationId"] for doc, _ in self._batch if doc["_id"] not in failed])
        self._batch = []
        if dupes:
            log.info("%d records were already written (redelivery)", dupes)
        log.debug("wrote %d records", written)

    def _settle(self, activation_ids: list[str]) -> None:
        if self.settle is None or not activation_ids:
            return
        try:
            self.settle(activation_ids)
        except GleanerError as exc:  # they stay pending: after a broker loss, sent again (idempotent)
            log.warning("outbox not settled for %d records: %s", len(activation_ids), exc)


def build(settings: Settings) -> ConsumeRunner:
    bell = process_bell(settings.kafka, settings.stores)
    producer = EventProducer(settings.kafka, bell)
    consumer = EventConsumer(
        settings.kafka,
        GROUP,
        [settings.completed_topic],
        hot=False,
        instance_id=member_id("records"),
        bell=bell,
    )
    outbox = Outbox(RedisStore(settings.stores))
    sink = RecordSink(CouchDB(settings.stores), settings.record_batch_ms / 1000, settle=outbox.settle)
    # A whole batch may wait on CouchDB.
    config = RunnerConfig.for_settings(settings.kafka, max_in_flight=2 * MAX_BATCH)
    return ConsumeRunner(
        "record-sink", consumer, producer, DeadLetters(settings.kafka, producer), sink, config
    )
