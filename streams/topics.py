"""The topic table: every Kafka topic of the event path, who writes it and who reads it.

A topic's name is its ``base`` under ``settings.topic_prefix`` (``settings.topic(base)``),
as the settings' ``*_topic`` shortcuts spell it (a test keeps the two in step). Producers
and consumers are component names of :mod:`streams.components` (a test checks that each
component's ``consumes`` and this table agree). Topic creation (``gleaner up``, the
supervisor, a broker's loss) reads this table: :func:`topics_by_partitions`.
"""

from __future__ import annotations

from dataclasses import dataclass

from gleaner.settings import Settings

# Every consumer dead-letters what it cannot handle (streams/kafka/deadletter.py); the gateway
# reads its completions and heartbeats without (placement parks bad heartbeats once for both).
_DEAD_LETTERING = ("records", "placement", "composition", "predictor", "invoker")


@dataclass(frozen=True, slots=True)
class Topic:
    base: str  # the name without the prefix; a per-invoker topic's is followed by ".<invoker id>"
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    per_invoker: bool = False  # one topic per invoker id: invoker.invoker0, invoker.invoker1...
    partitions: int | None = None  # None: settings.topic_partitions (co-partitioned topics need it)
    note: str = ""  # who else reads it, outside the components

    def names(self, settings: Settings, invoker_ids: tuple[str, ...] = ()) -> list[str]:
        if self.per_invoker:
            return [settings.topic(f"{self.base}.{i}") for i in invoker_ids]
        return [settings.topic(self.base)]

    def partitions_for(self, settings: Settings) -> int:
        return self.partitions if self.partitions is not None else settings.topic_partitions


# In creation order (as `gleaner up` has always created them).
TOPICS: tuple[Topic, ...] = (
    Topic("invocations", producers=("gateway", "composition"), consumers=("placement",)),
    Topic("prewarm", producers=("composition",), consumers=("placement",)),
    Topic("dag.requests", producers=("gateway",), consumers=("predictor",)),
    Topic("dag.plans", producers=("predictor", "composition"), consumers=("composition",)),
    Topic(
        "dag.results",
        producers=("composition",),
        consumers=(),
        note="read by `gleaner replay` and the chaos bench",
    ),
    Topic(
        "activations.completed",
        producers=("invoker", "composition", "placement"),
        consumers=("records", "placement", "composition", "gateway"),
    ),
    Topic("invokers.health", producers=("invoker",), consumers=("placement", "gateway")),
    Topic("deadletter", producers=_DEAD_LETTERING, consumers=(), note="kept for the operator to read"),
    Topic("invoker", producers=("placement",), consumers=("invoker",), per_invoker=True),
)


def topic(base: str) -> Topic:
    """The table's row for ``base``; KeyError naming the known ones otherwise."""
    for row in TOPICS:
        if row.base == base:
            return row
    raise KeyError(f"no topic {base!r} in the topic table (known: {', '.join(t.base for t in TOPICS)})")


def invoker_ids_of(settings: Settings, invoker_ids: tuple[str, ...] = ()) -> tuple[str, ...]:
    """This stack's invokers (its own, ``settings.invokers`` of them, and any named), sorted."""
    ids = {settings.invoker_id, *invoker_ids, *(f"invoker{k}" for k in range(settings.invokers))}
    return tuple(sorted(ids))


def topics_by_partitions(settings: Settings, invoker_ids: tuple[str, ...] = ()) -> dict[int, list[str]]:
    """Every topic the event path needs, grouped by partition count, for creation at start-up."""
    ids = invoker_ids_of(settings, invoker_ids)
    out: dict[int, list[str]] = {}
    for row in TOPICS:
        out.setdefault(row.partitions_for(settings), []).extend(row.names(settings, ids))
    return out


def all_topics(settings: Settings, invoker_ids: tuple[str, ...] = ()) -> list[str]:
    """Every topic the event path needs, by name."""
    ids = invoker_ids_of(settings, invoker_ids)
    return [name for row in TOPICS for name in row.names(settings, ids)]
