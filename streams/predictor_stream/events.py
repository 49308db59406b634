"""DAG request events in, one event out for each, in order: its plan, or a
dead letter with the reason. Pure apart from the planner and the credential
check, so the Faust agent stays a thin loop and this part is unit-tested
without Kafka. A batch is checked event by event and planned together (the
models run once per DAG for the batch); one event's fault never touches
another's outcome.

The predictor is the first consumer of ``dag.requests``: a request is the
gateway's (platform-signed) or a tenant's own, carrying its ``uuid:key`` in
a ``gleaner-auth`` header whose namespace must be the request's. Anything
else is dead-lettered with the reason; the plan that goes on is signed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson

from gleaner.errors import MalformedEvent, ServiceError
from streams.events import DagPlan, DagRequest, decode, derived_activation_id
from streams.kafka.client import oversize
from streams.kafka.deadletter import dead_letter_event
from streams.kafka.signing import (
    SIGNATURE_HEADER,
    Headers,
    Signer,
    has_header,
    namespace_not_proven,
    tenant_credential,
)

log = logging.getLogger(__name__)
PLANS = "plans"
DEADLETTERS = "deadletters"


class Planner(Protocol):
    def plan_batch(self, reqs: Sequence[DagRequest]) -> list[DagPlan | Exception]:
        """Each request's plan, in order, or the exception (a bug) that stopped it."""
        ...


@dataclass(frozen=True, slots=True)
class Where:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None  # the record's: part of ids derived from its position


@dataclass(frozen=True, slots=True)
class Incoming:
    """One record of ``dag.requests`` as the consumer read it."""

    key: bytes | None
    raw: bytes | None
    where: Where
    headers: Headers = ()


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str  # PLANS or DEADLETTERS
    key: bytes | None
    value: bytes


def dead_letter(key: bytes | None, raw: bytes | None, where: Where, reason: str) -> Outgoing:
    letter = dead_letter_event(where.topic, where.partition, where.offset, raw, reason)
    return Outgoing(DEADLETTERS, key, letter.to_bytes())


@dataclass(frozen=True, slots=True)
class Gate:
    """Who may write a request: the platform (``signer``) or a tenant whose
    credential ``authenticate`` maps to the request's namespace."""

    signer: Signer
    authenticate: Callable[[str], str | None]

    def refuses(self, where: Where, key: bytes | None, raw: bytes | None, headers: Headers) -> str | None:
        """Why the event may not enter before it is decoded, or None (a tenant's is checked later)."""
        if has_header(headers, SIGNATURE_HEADER):
            return self.signer.rejects(where.topic, key, raw, headers)
        return None

    def tenant_refuses(
        self, req: DagRequest, key: bytes | None, raw: bytes | None, where: Where, headers: Headers
    ) -> str | None:
        if self.signer.signed(where.topic, key, raw, headers):
            return None
        credential = tenant_credential(headers)
        try:
            owner = self.authenticate(credential) if credential is not None else None
        except ServiceError as exc:  # Faust cannot hold one event back: park it with why
            why = f"the key store could not be read ({exc}); send it again"
            return f"namespace {req.namespace} not proven: {why}"
        return namespace_not_proven(req.namespace, credential, owner)


def plan_event(
    planner: Planner,
    key: bytes | None,
    raw: bytes | None,
    where: Where,
    limit: int,
    gate: Gate | None = None,
    headers: Headers = (),
) -> Outgoing:
    """The plan of one request event, or why it has none."""
    return plan_events(planner, [Incoming(key, raw, where, headers)], limit, gate)[0]


def plan_events(
    planner: Planner, events: Sequence[Incoming], limit: int, gate: Gate | None = None
) -> list[Outgoing]:
    """The plan of each request event, or why it has none, in order."""
    admitted = [_admit(e, limit, gate) for e in events]
    reqs = [a for a in admitted if isinstance(a, DagRequest)]
    try:
        plans = planner.plan_batch(reqs) if reqs else []
    except Exception:  # a bug in batching: plan them one by one, so it parks only whom it hits
        log.exception("planning a batch of %d requests failed; planning them one by one", len(reqs))
        plans = [_plan_alone(planner, req) for req in reqs]
    planned = iter(plans)
    return [
        a if isinstance(a, Outgoing) else _outgoing(e, a, next(planned), limit)
        for e, a in zip(events, admitted, strict=True)
    ]


def _admit(e: Incoming, limit: int, gate: Gate | None) -> DagRequest | Outgoing:
    """The request an event carries, or its dead letter: size, signature, shape, namespace."""
    too_large = oversize(e.raw, limit)
    if too_large is not None:
        return dead_letter(e.key, e.raw, e.where, too_large)
    refused = gate.refuses(e.where, e.key, e.raw, e.headers) if gate is not None else None
    if refused is not None:
        return dead_letter(e.key, e.raw, e.where, refused)
    # A signed event whose signature held is the platform's: no tenant check (and no second HMAC).
    platform = gate is not None and has_header(e.headers, SIGNATURE_HEADER)
    try:
        w = e.where
        data = decode(e.raw)
        fallback = None
        if not data.get("request_id"):  # only a request without an id needs its position's (an HMAC)
            position = (w.topic, w.partition, w.offset, w.timestamp_ms)
            fallback = gate.signer.position_id(*position) if gate else derived_activation_id(*position)
        req = DagRequest.from_dict(data, fallback_id=fallback)
        if gate is not None and not platform:
            refused = gate.tenant_refuses(req, e.key, e.raw, w, e.headers)
    except MalformedEvent as exc:
        return dead_letter(e.key, e.raw, e.where, str(exc))
    except Exception as exc:  # a bug must not stop the stream: park the event with why
        return _failed(e, exc)
    return dead_letter(e.key, e.raw, e.where, refused) if refused is not None else req


def _plan_alone(planner: Planner, req: DagRequest) -> DagPlan | Exception:
    try:
        return planner.plan_batch([req])[0]
    except Exception as exc:
        return exc


def _outgoing(e: Incoming, req: DagRequest, plan: DagPlan | Exception, limit: int) -> Outgoing:
    if isinstance(plan, Exception):
        return _failed(e, plan)
    try:
        # orjson writes the dataclass as DagPlan.to_bytes would, without asdict's deep copy.
        value = orjson.dumps(plan)
    except orjson.JSONEncodeError as exc:  # nested past 254 levels, or an integer past 64 bits
        return dead_letter(e.key, e.raw, e.where, f"the event cannot be written as JSON: {exc}")
    if len(value) > limit:
        reason = f"its plan of {len(value)} bytes is above the limit of {limit} bytes"
        return dead_letter(e.key, e.raw, e.where, reason)
    return Outgoing(PLANS, req.request_id.encode(), value)


def _failed(e: Incoming, exc: Exception) -> Outgoing:
    if isinstance(exc, MalformedEvent):
        return dead_letter(e.key, e.raw, e.where, str(exc))
    w = e.where
    log.error("planning %s[%d]@%d failed", w.topic, w.partition, w.offset, exc_info=exc)
    return dead_letter(e.key, e.raw, e.where, f"planning failed: {type(exc).__name__}: {exc}")
