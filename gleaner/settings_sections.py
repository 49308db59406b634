"""The settings each component reads: one small frozen section per component.

The flat :class:`gleaner.settings.Settings` stays the one loader (its ``GLEANER_*``
names unchanged) and the composition root's object; a component gets the sections it
reads from it (``settings.kafka``, ``settings.stores``, ``settings.record_sink``, ...),
not all of its fields. A section's fields keep the flat names and types, so code that
reads ``settings.kafka_bootstrap`` reads the same name off its section. A section
declares no defaults: its values are always the flat settings' (a test keeps the names
and types in step).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self


class TopicNames:
    """The Kafka topic names, after ``topic_prefix`` (for the flat settings and the Kafka section)."""

    __slots__ = ()
    topic_prefix: str

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def invocations_topic(self) -> str:
        return self.topic("invocations")

    @property
    def completed_topic(self) -> str:
        return self.topic("activations.completed")

    @property
    def prewarm_topic(self) -> str:
        return self.topic("prewarm")

    @property
    def health_topic(self) -> str:
        return self.topic("invokers.health")

    @property
    def dag_requests_topic(self) -> str:
        return self.topic("dag.requests")

    @property
    def dag_results_topic(self) -> str:
        return self.topic("dag.results")

    @property
    def dag_plans_topic(self) -> str:
        return self.topic("dag.plans")

    @property
    def deadletter_topic(self) -> str:
        return self.topic("deadletter")

    def invoker_topic(self, invoker_id: str) -> str:
        return self.topic(f"invoker.{invoker_id}")


class DbNames:
    """The CouchDB database names, after ``db_prefix``."""

    __slots__ = ()
    db_prefix: str

    def db(self, name: str) -> str:
        return f"{self.db_prefix}{name}"


class Section:
    """A part of the flat settings: built by :meth:`of` from any object with its fields."""

    __slots__ = ()

    @classmethod
    def of(cls, settings: object) -> Self:
        """This section of ``settings`` (the flat :class:`~gleaner.settings.Settings`)."""
        values: dict[str, Any] = {f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**values)


# --- the kernel ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KafkaSettings(TopicNames, Section):
    """The Kafka wire layer (streams/kafka/): the client, its tuning and security, the
    topic names, and the platform secret that signs events."""

    kafka_bootstrap: str
    topic_prefix: str
    topic_partitions: int
    kafka_session_timeout_ms: int
    kafka_heartbeat_interval_ms: int
    kafka_static_membership: bool
    kafka_stats_interval_ms: int
    kafka_security_protocol: str
    kafka_sasl_mechanism: str
    kafka_sasl_username: str
    kafka_sasl_password: str
    kafka_ssl_ca_location: str
    kafka_fetch_wait_max_ms: int
    kafka_fetch_wait_idle_ms: int
    kafka_fetch_wait_health_ms: int
    kafka_idle_after_ms: int
    kafka_doze_probe_every_ms: int
    kafka_doorbell: bool
    kafka_doorbell_probe_every_ms: int
    kafka_stream_fetch_wait_ms: int
    kafka_stream_fetch_wait_idle_ms: int
    kafka_message_max_bytes: int
    platform_secret: str
    state_dir: Path  # where the generated platform secret is kept


@dataclass(frozen=True, slots=True)
class StoreSettings(DbNames, Section):
    """The stores: Redis and CouchDB, their logins, and where generated ones are kept."""

    redis_url: str
    redis_password: str
    couchdb_url: str
    couchdb_user: str
    couchdb_password: str
    db_prefix: str
    state_dir: Path


# --- the services ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompositionSettings(TopicNames, Section):
    """The composition stream (streams/composition/): with the names of the topics it writes."""

    topic_prefix: str
    action_cache_ttl_s: float
    dag_slo_factor: float
    dag_timeout_s: float
    data_ttl_s: int
    inline_payload_bytes: int
    max_map_width: int
    prewarm: bool
    prewarm_lookahead: int


@dataclass(frozen=True, slots=True)
class GatewaySettings(TopicNames, Section):
    """The gateway (streams/gateway/): its address, request bounds, and the allocation
    bounds its OpenAPI document states."""

    topic_prefix: str
    topic_partitions: int
    gateway_bind: str
    gateway_port: int
    api_host: str
    max_payload_bytes: int
    max_dag_payload_bytes: int
    max_dag_functions: int
    blocking_wait_s: float
    action_cache_ttl_s: float
    inline_payload_bytes: int
    data_ttl_s: int
    outbox: bool
    invoker_unhealthy_after_s: float
    cpu_min: float
    cpu_max: float
    memory_min_mb: int
    encoding_base_mb: int
    timeout_min_ms: int
    timeout_max_ms: int


@dataclass(frozen=True, slots=True)
class ReplaySettings(TopicNames, Section):
    """The trace replayer (streams/replay/): the topics it writes and reads, and how it
    hands large inputs over."""

    topic_prefix: str
    inline_payload_bytes: int
    data_ttl_s: int


@dataclass(frozen=True, slots=True)
class LimitsSettings(Section):
    """An action's allowed limits and their defaults (gleaner/actions.py)."""

    cpu_min: float
    cpu_max: float
    memory_min_mb: int
    memory_max_mb: int
    encoding_base_mb: int
    default_cpu: float
    default_memory_mb: int
    default_timeout_ms: int
    timeout_min_ms: int
    timeout_max_ms: int
    default_log_limit_mb: int


SECTIONS: tuple[type[Section], ...] = (
    KafkaSettings,
    StoreSettings,
    LimitsSettings,
    CompositionSettings,
    GatewaySettings,
    ReplaySettings,
)
