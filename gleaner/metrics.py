"""Prometheus metrics: one naming scheme (``gleaner_*``) for every component.

Each component process serves its own registry over HTTP at
``metrics_bind:port``; the port is ``metrics_port_base`` plus a fixed offset
per component (invokers at ``+10+index``), and a base of 0 turns it off. The
metrics are module-level, so hot paths only bump a counter or observe a
histogram: no I/O, no locks beyond prometheus_client's own.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from gleaner.settings import Settings

log = logging.getLogger(__name__)

# Fixed offsets from the base port; an invoker's is INVOKER_OFFSET + its index.
COMPONENT_OFFSETS = {
    "gateway": 0,
    "placement": 1,
    "composition": 2,
    "predictor": 3,
    "records": 4,
    "supervisor": 5,
}
INVOKER_OFFSET = 10

# An activation record's statusCode (OpenWhisk's 0-3) as a label.
STATUS_LABELS = ("success", "application_error", "developer_error", "internal_error")

# Latency buckets in seconds, from a warm hop (~2 ms) to a long action (5 min).
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)

ACTIVATION_COUNT = Counter(
    "gleaner_activations", "Finished activations, by status and origin.", ("status", "origin")
)
ACTIVATION_DURATION = Histogram(
    "gleaner_activation_duration_seconds",
    "An activation's record duration (start to end, as in its record).",
    buckets=LATENCY_BUCKETS,
)
HOP_SECONDS = Histogram(
    "gleaner_hop_seconds",
    "Latency of one part of an activation's way (wait: queued before start; init: cold start).",
    ("hop",),
    buckets=LATENCY_BUCKETS,
)
HARVEST_DECISIONS = Counter(
    "gleaner_harvest_decisions",
    "DAG plans made, by policy (mode) and whether they harvest.",
    ("mode", "harvest"),
)
RESIZES = Counter(
    "gleaner_resizes", "Live allocation changes of running activations, by reason.", ("reason",)
)
PERMITS_FREE_CORES = Gauge("gleaner_permits_free_cores", "Cores an invoker has free.", ("invoker",))
PERMITS_WAITING = Gauge(
    "gleaner_permits_waiting", "Activations waiting for an invoker's permits.", ("invoker",)
)
SCHEDULER_WAITING_SECONDS = Counter(
    "gleaner_scheduler_waiting_seconds",
    "Time during which at least one activation waited for an invoker's permits.",
    ("invoker",),
)
SCHEDULER_RESERVED_CORE_SECONDS = Counter(
    "gleaner_scheduler_reserved_core_seconds",
    "Cores granted while anything waited, integrated over time: divided by "
    "gleaner_scheduler_waiting_seconds, the mean cores reserved whenever something waits.",
    ("invoker",),
)
COLD_STARTS = Counter("gleaner_cold_starts", "Activations that started a new container.", ("invoker",))
PREWARMS = Counter(
    "gleaner_prewarms",
    "Pre-warm decisions for a DAG's later functions, by outcome (started, warm, duplicate, ...).",
    ("outcome",),
)
HTTP_REQUESTS = Counter(
    "gleaner_http_requests",
    "Gateway requests, by route template, method and status.",
    ("route", "method", "status"),
)
KAFKA_HOP_SECONDS = Histogram(
    "gleaner_kafka_hop_seconds",
    "From a record's timestamp (its producer's clock) to its first handling, by topic.",
    ("topic",),
    buckets=LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "gleaner_consumer_lag",
    "Records behind the partition's end, per consumer group (librdkafka's statistics).",
    ("group", "topic", "partition"),
)
DEADLETTERS = Counter(
    "gleaner_deadletters", "Records parked on a dead-letter topic, by source topic.", ("topic",)
)
PLACEMENT_UNACKNOWLEDGED = Gauge(
    "gleaner_placement_unacknowledged",
    "Activations placement dispatched whose completion it has not seen yet (what it would "
    "send elsewhere if their invoker went silent); about the activations in flight.",
)
PLACEMENT_INVOKERS_HEALTHY = Gauge(
    "gleaner_placement_invokers_healthy",
    "Invokers placement counts healthy (a heartbeat 'up' within the last 10 s): what it can place on.",
)
PLACEMENT_UNACKED_STORE_ERRORS = Counter(
    "gleaner_placement_unacked_store_errors",
    "Failed reads or writes of placement's unacknowledged list in Redis (dispatch goes on).",
)


def status_label(status_code: object) -> str:
    """A record's statusCode as its label; anything else counts as an internal error."""
    if isinstance(status_code, int) and 0 <= status_code < len(STATUS_LABELS):
        return STATUS_LABELS[status_code]
    return "internal_error"


def consumer_lags(stats: dict[str, Any]) -> Iterator[tuple[str, str, int]]:
    """(topic, partition, lag) of each assigned partition in one librdkafka
    statistics document; partitions whose lag is not known yet (-1) are left out."""
    for topic, t in (stats.get("topics") or {}).items():
        for partition, p in (t.get("partitions") or {}).items():
            lag = p.get("consumer_lag", -1)
            if partition != "-1" and isinstance(lag, int) and lag >= 0:
                yield topic, partition, lag


def metrics_port(settings: Settings, component: str) -> int | None:
    """The port ``component`` serves metrics on (``invoker3`` → base+13); None when off."""
    base = settings.metrics_port_base
    if base <= 0:
        return None
    if component in COMPONENT_OFFSETS:
        return base + COMPONENT_OFFSETS[component]
    match = re.fullmatch(r"invoker(\d*)", component)
    if match is None:
        raise ValueError(f"no metrics port for component {component!r}")
    return base + INVOKER_OFFSET + int(match.group(1) or 0)


def metrics_address(settings: Settings, component: str) -> str | None:
    """The URL a scraper reads ``component``'s metrics from; None when off."""
    port = metrics_port(settings, component)
    return None if port is None else f"http://{settings.metrics_bind}:{port}/metrics"


def serve_metrics(settings: Settings, component: str) -> int | None:
    """Start ``component``'s exposition server in a daemon thread; the port, or None
    when off. A port in use is logged, not fatal: metrics never stop a component."""
    port = metrics_port(settings, component)
    if port is None:
        return None
    try:
        start_http_server(port, addr=settings.metrics_bind)
    except OSError as exc:
        log.warning("metrics server on %s:%d not started: %s", settings.metrics_bind, port, exc)
        return None
    return port
