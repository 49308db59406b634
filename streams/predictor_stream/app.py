"""The predictor/validator stream as a Faust app: ``dag.requests`` -> ``dag.plans``.

One agent reads each DAG request, measures its input size, asks the planner
for a harvesting decision (allocations go to Redis before the plan is
published), and publishes the plan keyed by the request id, so the plan and
the request's completions meet on one partition of the composition stream.
Malformed requests go to the dead-letter topic. Faust flushes its producer
before committing offsets, so a crash replays requests, never loses them; a
replayed request yields the same plan for the same request id.

Faust's aiokafka consumer is created with ``fetch_max_wait_ms=1500`` fixed
in its code. Tansu answers a fetch only when that wait ends, so every request
would sit ~750 ms in this stream (measured: p50 734 ms through one agent); the
patch below sets the wait from ``kafka_fetch_wait_max_ms`` (p50 7.8 ms).
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from gleaner.couchdb import CouchDB
from gleaner.errors import MalformedEvent
from gleaner.settings import Settings
from streams.events import DagRequest, DeadLetter, decode, derived_activation_id, now_ms
from streams.predictor_stream.planner import RequestPlanner

log = logging.getLogger(__name__)
APP_ID = "gleaner-predictor"


def _short_fetch_wait(wait_ms: int) -> None:
    original = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(original, "_gleaner_wait", None) == wait_ms:
        return

    def create(self: AIOKafkaConsumerThread, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = wait_ms
        return consumer

    create._gleaner_wait = wait_ms  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._create_worker_consumer = create  # type: ignore[method-assign]


def make_app(settings: Settings) -> faust.App:
    _short_fetch_wait(settings.kafka_fetch_wait_max_ms)
    # The consumer group is the app id: one per topic set, so a second stream on
    # other topics (e.g. a benchmark's) never joins the production group.
    app_id = APP_ID + (f"-{settings.topic_prefix.strip('.')}" if settings.topic_prefix else "")
    app = faust.App(
        app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        store="memory://",
        datadir=str(settings.state_dir / "faust"),
        topic_partitions=settings.topic_partitions,
        topic_allow_declare=False,  # topics are created by `gleaner up` with the right partition counts
        broker_session_timeout=settings.kafka_session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_ms / 1000,
        broker_commit_interval=0.2,
        consumer_auto_offset_reset="earliest",
        producer_linger_ms=0,
    )
    requests = app.topic(settings.dag_requests_topic, value_serializer="raw", key_serializer="raw")
    plans = app.topic(settings.dag_plans_topic, value_serializer="raw", key_serializer="raw")
    deadletters = app.topic(settings.deadletter_topic, value_serializer="raw", key_serializer="raw")
    planner = RequestPlanner(settings, CouchDB(settings))

    @app.agent(requests)
    async def predict(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            try:
                req = DagRequest.from_dict(
                    decode(event.value),
                    fallback_id=derived_activation_id(msg.topic, msg.partition, msg.offset),
                )
            except MalformedEvent as exc:
                letter = DeadLetter(
                    reason=str(exc),
                    source_topic=msg.topic,
                    partition=msg.partition,
                    offset=msg.offset,
                    payload=(event.value or b"").decode("utf-8", "replace"),
                    ts_ms=now_ms(),
                )
                log.warning("dead letter from %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, exc)
                await deadletters.send(key=event.key, value=letter.to_bytes())
                continue
            plan = planner.plan(req)
            await plans.send(key=req.request_id.encode(), value=plan.to_bytes())

    return app


def run(settings: Settings, log_level: str = "info") -> None:
    app = make_app(settings)
    worker = faust.Worker(app, loglevel=log_level.upper(), quiet=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per CouchDB read is noise
    worker.execute_from_commandline()
