"""The predictor/validator stream as a Faust app: ``dag.requests`` -> ``dag.plans``.

One agent reads DAG requests, measures each one's input size, asks the planner
for a harvesting decision, and publishes each plan keyed by its request id, so
the plan and the request's completions meet on one partition of the
composition stream. The allocations travel on the plan (the composition stream
puts each function's on its invocation event); nothing is written to Redis.
Malformed or oversized requests, requests that cannot prove their namespace
(neither platform-signed nor carrying a valid key of it, see
:mod:`streams.predictor_stream.events`), and requests whose plan cannot be
produced, go to the dead-letter topic with the reason. What this stream
produces carries the platform signature, as every component's does. A tenant's
request whose key cannot be checked because CouchDB cannot be read is held,
with the newer events of its partition, and tried again with backoff for up to
``platform_retry_s`` (:mod:`streams.predictor_stream.hold`).

Requests are planned in batches: the agent reads events into an
:class:`~streams.predictor_stream.inbox.Inbox` and a worker takes whatever
has arrived while it was busy, plans it in one thread hop (the models run
once per DAG for the batch) and hands the plans to the producer. A lone
request is planned at once. Events are
acked by hand after their batch's plans and dead letters are handed to the
producer, and Faust flushes its producer before committing offsets, so a crash
replays requests, never loses them; a replayed request yields the same plan
for the same request id.

Faust's aiokafka consumer is created with ``fetch_max_wait_ms=1500`` fixed
in its code, and Tansu holds its fetches for the whole wait, so every request
would sit ~750 ms in this stream (measured: p50 734 ms through one agent).
:mod:`streams.predictor_stream.fetch_wait` sets the wait by the traffic: 5 ms
while requests flow, longer when idle (one timer checks twice a second).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
from typing import Any

import faust
from aiokafka.errors import KafkaError

from gleaner import subjects
from gleaner.couchdb import CouchDB
from gleaner.errors import GleanerError
from gleaner.settings import Settings
from streams.kafka.client import security_config
from streams.kafka.signing import OutHeaders, Signer, normalize_headers
from streams.predictor_stream.events import (
    PLANS,
    Gate,
    Held,
    Incoming,
    Outgoing,
    Where,
    dead_letter,
    plan_or_hold,
)
from streams.predictor_stream.fetch_wait import AdaptiveFetchWait, install
from streams.predictor_stream.hold import Hold, plan_in_order
from streams.predictor_stream.inbox import Inbox
from streams.predictor_stream.planner import RequestPlanner

log = logging.getLogger(__name__)
APP_ID = "gleaner-predictor"
PLANNER_STORE_TIMEOUT_S = 2.0
# Requests planned in one thread hop at most: a full batch plans in ~10-20 ms on
# this 2-core box, so a request that arrives behind one waits no longer than that.
MAX_BATCH = 32
# Events held for the key store at most: beyond, nothing new is taken until the hold empties.
HOLD_CAPACITY = 4 * MAX_BATCH
FETCH_WAIT_CHECK_S = 0.5


def broker_credentials(settings: Settings) -> faust.SASLCredentials | None:
    """The same SASL login the confluent-kafka clients use (None for PLAINTEXT)."""
    config = security_config(settings.kafka)
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
    fetch_wait = AdaptiveFetchWait(
        settings.kafka_stream_fetch_wait_ms,
        settings.kafka_stream_fetch_wait_idle_ms,
        settings.kafka_idle_after_ms / 1000,
    )
    install(fetch_wait)
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
    # A short CouchDB timeout: a stalled store costs a plan its harvest, not the stream its pace.
    planner = RequestPlanner(settings, CouchDB(settings.stores, timeout_s=PLANNER_STORE_TIMEOUT_S))
    limit = settings.kafka_message_max_bytes
    signer = Signer.for_settings(settings.kafka)
    subjects_db = CouchDB(settings.stores, timeout_s=PLANNER_STORE_TIMEOUT_S)
    gate = Gate(signer, lambda credential: subjects.authenticate(subjects_db, credential))

    def plan_and_sign(batch: list[Incoming], hold: Hold[Any]) -> list[tuple[Outgoing, OutHeaders] | Held]:
        signed: list[tuple[Outgoing, OutHeaders] | Held] = []
        blocked = hold.partitions()
        for out in plan_or_hold(planner, batch, limit, gate, hold.may_wait, hold.bound_s, blocked):
            if isinstance(out, Held):
                signed.append(out)
                continue
            topic = settings.dag_plans_topic if out.topic == PLANS else settings.deadletter_topic
            signed.append((out, signer.headers(topic, out.key, out.value)))
        return signed

    async def publish(event: Incoming, out: Outgoing, headers: OutHeaders) -> None:
        """Hands ``out`` to the producer (delivery is awaited by the commit's flush).

        Straight to Faust's producer: ``Topic.send`` wraps each record in a future
        message, codecs and sensor callbacks (~25 us a plan) that a raw, pre-signed
        record does not need; the record lands in the same aiokafka producer, which
        Faust flushes before it commits offsets."""
        if out.topic == PLANS:
            try:
                await send(settings.dag_plans_topic, out.key, out.value, headers)
                return
            except (KafkaError, GleanerError, ValueError) as exc:  # e.g. aiokafka's size check
                reason = f"the plan could not be produced: {exc}"
                out = dead_letter(event.key, event.raw, event.where, reason)
                headers = signer.headers(settings.deadletter_topic, out.key, out.value)
        await send(settings.deadletter_topic, out.key, out.value, headers)

    async def send(topic: str, key: bytes | None, value: bytes, headers: OutHeaders) -> None:
        producer = await app.maybe_start_producer()  # as Topic.send does; a no-op once started
        await producer.send(topic, key, value, None, None, headers)

    async def read(stream: Any, inbox: Inbox[Any]) -> None:
        async for event in stream.events():
            fetch_wait.request_seen()
            await inbox.put(event)

    async def plan_batches(stream: Any, inbox: Inbox[Any]) -> None:
        async def plan(batch: list[Incoming], hold: Hold[Any]) -> list[tuple[Outgoing, OutHeaders] | Held]:
            # Off the event loop: the planner reads CouchDB synchronously, and a
            # blocked loop misses Kafka heartbeats and leaves the group.
            return await asyncio.to_thread(plan_and_sign, batch, hold)

        async def hand_over(ready: list[tuple[Any, Incoming, tuple[Outgoing, OutHeaders]]]) -> None:
            for _, one, (out, signed) in ready:
                await publish(one, out, signed)
            for event, _, _ in ready:  # committable once handed over: the commit flushes the producer first
                await stream.ack(event)

        # A held event is never acked, so no offset of its partition is committed past it.
        hold: Hold[Any] = Hold(settings.platform_retry_s, HOLD_CAPACITY)
        await plan_in_order(inbox.take, incoming, plan, hand_over, hold)

    @app.timer(FETCH_WAIT_CHECK_S)  # type: ignore[untyped-decorator]
    async def follow_traffic() -> None:
        fetch_wait.tick()

    @app.agent(requests)
    async def predict(stream: Any) -> None:
        manual = stream.noack()  # acked by plan_batches, after the batch's plans are handed over
        inbox: Inbox[Any] = Inbox(MAX_BATCH)
        tasks = {
            asyncio.ensure_future(read(manual, inbox)),
            asyncio.ensure_future(plan_batches(manual, inbox)),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a crash of either is the agent's
        finally:
            for task in tasks:
                task.cancel()

    return app


def incoming(event: Any) -> Incoming:
    """A Faust event as the planning step reads it."""
    msg = event.message
    stamp = round(msg.timestamp * 1000) if msg.timestamp else None  # Faust keeps seconds
    where = Where(msg.topic, msg.partition, msg.offset, stamp)
    return Incoming(event.key, event.value, where, normalize_headers(msg.headers))


# The planner thread and Faust's loop (and aiokafka's thread) share one GIL. At the
# default 5 ms switch interval a request being planned waits up to 5 ms each time the
# loop takes the GIL; offline, with a busy loop beside the planner, 1 ms took the
# per-request p99 from 8-29 ms to about 6 ms and planning from ~300-650 to ~1,000/s.
GIL_SWITCH_INTERVAL_S = 0.001


def run(settings: Settings, log_level: str = "info") -> None:
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    app = make_app(settings)
    worker = faust.Worker(app, loglevel=log_level.upper(), quiet=True)
    # Faust's start-up spinner sets the root logger to DEBUG for good (it spins once per
    # log record), so every debug call of aiokafka's fetch and produce paths built a
    # record nobody wrote: about a tenth of the worker's CPU under load (py-spy).
    worker.spinner = None
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per CouchDB read is noise
    worker.execute_from_commandline()
