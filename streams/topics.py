"""Kafka topic names. Names are configurable through ``topic_prefix``."""

from __future__ import annotations

from gleaner.settings import Settings


def all_topics(settings: Settings, invoker_ids: tuple[str, ...] = ()) -> list[str]:
    """Every topic the event path needs, for creation at start-up."""
    ids = {settings.invoker_id, *invoker_ids, *(f"invoker{k}" for k in range(settings.invokers))}
    return [
        settings.invocations_topic,
        settings.prewarm_topic,
        settings.dag_requests_topic,
        settings.dag_plans_topic,
        settings.dag_results_topic,
        settings.completed_topic,
        settings.health_topic,
        settings.deadletter_topic,
        *(settings.invoker_topic(i) for i in sorted(ids)),
    ]
