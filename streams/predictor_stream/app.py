"""The predictor/validator stream as a Faust app: ``dag.requests`` -> ``dag.plans``.

One agent reads each DAG request, measures its input size, asks the planner
for a harvesting decision (allocations go to Redis before the plan is
published), and publishes the plan keyed by the request id, so the plan and
the request's completions meet on one partition of the composition stream.
Malformed or oversized requests, requests that cannot prove their namespace
(neither platform-signed nor carrying a valid key of it, see
:mod:`streams.predictor_stream.events`), and requests whose plan cannot be
written or produced, go to the dead-letter topic with the reason. What this
stream produces carries the platform signature, as every component's does. Faust flushes its producer
before committing offsets, so a crash replays requests, never loses them; a
replayed request yields the same plan for the same request id.

Faust's aiokafka consumer is created with ``fetch_max_wait_ms=1500`` fixed
in its code. Tansu answers a fetch only when that wait ends, so every request
would sit ~750 ms in this stream (measured: p50 734 ms through one agent); the
patch below sets the wait from ``kafka_fetch_wait_max_ms`` (p50 7.8 ms).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

import faust
from aiokafka.errors import KafkaError
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from gleaner import subjects
from gleaner.couchdb import CouchDB
from gleaner.errors import GleanerError
from gleaner.settings import Settings
from streams.kafka.client import security_config
from streams.kafka.signing import SIGNATURE_HEADER, Signer, normalize_headers
from streams.predictor_stream.events import PLANS, Gate, Where, dead_letter, plan_event
from streams.predictor_stream.planner import RequestPlanner

log = logging.getLogger(__name__)
APP_ID = "gleaner-predictor"
PLANNER_STORE_TIMEOUT_S = 2.0


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


def broker_credentials(settings: Settings) -> faust.SASLCredentials | None:
    """The same SASL login the confluent-kafka clients use (None for PLAINTEXT)."""
    config = security_config(settings)
    if not config:
        return None
    tls = None
    if config["security.protocol"] == "SASL_SSL":
        tls = ssl.create_default_context(cafile=settings.kafka_ssl_ca_location or None)
    return faust.SASLCredentials(
        username=config["sasl.username"],
        password=config["sasl.password"],
        mechanism=config["sasl.mechanism"],
        ssl_context=tls,
    )


def make_app(settings: Settings) -> faust.App:
    _short_fetch_wait(settings.kafka_fetch_wait_max_ms)
    # The consumer group is the app id: one per topic set, so a second stream on
    # other topics (e.g. a benchmark's) never joins the production group.
    app_id = APP_ID + (f"-{settings.topic_prefix.strip('.')}" if settings.topic_prefix else "")
    app = faust.App(
        app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=broker_credentials(settings),
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
        # aiokafka's defaults are 1 MB; every client agrees on one event limit.
        producer_max_request_size=settings.kafka_message_max_bytes,
        consumer_max_fetch_size=settings.kafka_message_max_bytes,
    )
    requests = app.topic(settings.dag_requests_topic, value_serializer="raw", key_serializer="raw")
    plans = app.topic(settings.dag_plans_topic, value_serializer="raw", key_serializer="raw")
    deadletters = app.topic(settings.deadletter_topic, value_serializer="raw", key_serializer="raw")
    # A short CouchDB timeout: a stalled store costs a plan its harvest, not the stream its pace.
    planner = RequestPlanner(settings, CouchDB(settings, timeout_s=PLANNER_STORE_TIMEOUT_S))
    limit = settings.kafka_message_max_bytes
    signer = Signer.for_settings(settings)
    subjects_db = CouchDB(settings, timeout_s=PLANNER_STORE_TIMEOUT_S)
    gate = Gate(signer, lambda credential: subjects.authenticate(subjects_db, credential))

    @app.agent(requests)
    async def predict(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            stamp = round(msg.timestamp * 1000) if msg.timestamp else None  # Faust keeps seconds
            where = Where(msg.topic, msg.partition, msg.offset, stamp)
            headers = normalize_headers(msg.headers)
            # Off the event loop: the planner reads CouchDB synchronously, and a
            # blocked loop misses Kafka heartbeats and leaves the group.
            out = await asyncio.to_thread(
                plan_event, planner, event.key, event.value, where, limit, gate, headers
            )
            if out.topic == PLANS:
                try:
                    signed = {
                        SIGNATURE_HEADER: signer.signature(settings.dag_plans_topic, out.key, out.value)
                    }
                    await plans.send(key=out.key, value=out.value, headers=signed)
                    continue
                except (KafkaError, GleanerError, ValueError) as exc:  # e.g. aiokafka's size check
                    out = dead_letter(event.key, event.value, where, f"the plan could not be produced: {exc}")
            signed = {SIGNATURE_HEADER: signer.signature(settings.deadletter_topic, out.key, out.value)}
            await deadletters.send(key=out.key, value=out.value, headers=signed)

    return app


def run(settings: Settings, log_level: str = "info") -> None:
    app = make_app(settings)
    worker = faust.Worker(app, loglevel=log_level.upper(), quiet=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per CouchDB read is noise
    worker.execute_from_commandline()
