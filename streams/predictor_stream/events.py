"""One DAG request event in, one event out: its plan, or a dead letter with
the reason. Pure apart from the planner, so the Faust agent stays a thin loop
and this part is unit-tested without Kafka."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from gleaner.errors import MalformedEvent
from streams.events import DagPlan, DagRequest, DeadLetter, decode, derived_activation_id, now_ms

log = logging.getLogger(__name__)
PLANS = "plans"
DEADLETTERS = "deadletters"
DEAD_LETTER_PAYLOAD_CHARS = 65536  # enough to recognise the event, never too large to produce


class Planner(Protocol):
    def plan(self, req: DagRequest) -> DagPlan: ...


@dataclass(frozen=True, slots=True)
class Where:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str  # PLANS or DEADLETTERS
    key: bytes | None
    value: bytes


def dead_letter(key: bytes | None, raw: bytes | None, where: Where, reason: str) -> Outgoing:
    log.warning("dead letter from %s[%d]@%d: %s", where.topic, where.partition, where.offset, reason)
    letter = DeadLetter(
        reason=reason,
        source_topic=where.topic,
        partition=where.partition,
        offset=where.offset,
        payload=(raw or b"").decode("utf-8", "replace")[:DEAD_LETTER_PAYLOAD_CHARS],
        ts_ms=now_ms(),
    )
    return Outgoing(DEADLETTERS, key, letter.to_bytes())


def plan_event(planner: Planner, key: bytes | None, raw: bytes | None, where: Where, limit: int) -> Outgoing:
    """The plan of one request event, or why it has none."""
    size = len(raw or b"")
    if size > limit:
        return dead_letter(key, raw, where, f"an event of {size} bytes is above the limit of {limit} bytes")
    try:
        req = DagRequest.from_dict(
            decode(raw), fallback_id=derived_activation_id(where.topic, where.partition, where.offset)
        )
        value = planner.plan(req).to_bytes()
    except MalformedEvent as exc:
        return dead_letter(key, raw, where, str(exc))
    except Exception as exc:  # a bug must not stop the stream: park the event with why
        log.exception("planning %s[%d]@%d failed", where.topic, where.partition, where.offset)
        return dead_letter(key, raw, where, f"planning failed: {type(exc).__name__}: {exc}")
    if len(value) > limit:
        reason = f"its plan of {len(value)} bytes is above the limit of {limit} bytes"
        return dead_letter(key, raw, where, reason)
    return Outgoing(PLANS, req.request_id.encode(), value)
