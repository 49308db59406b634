"""One DAG request event in, one event out: its plan, or a dead letter with
the reason. Pure apart from the planner and the credential check, so the
Faust agent stays a thin loop and this part is unit-tested without Kafka.

The predictor is the first consumer of ``dag.requests``: a request is the
gateway's (platform-signed) or a tenant's own, carrying its ``uuid:key`` in
a ``gleaner-auth`` header whose namespace must be the request's. Anything
else is dead-lettered with the reason; the plan that goes on is signed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

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
    def plan(self, req: DagRequest) -> DagPlan: ...


@dataclass(frozen=True, slots=True)
class Where:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None  # the record's: part of ids derived from its position


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
    too_large = oversize(raw, limit)
    if too_large is not None:
        return dead_letter(key, raw, where, too_large)
    refused = gate.refuses(where, key, raw, headers) if gate is not None else None
    if refused is not None:
        return dead_letter(key, raw, where, refused)
    try:
        position = (where.topic, where.partition, where.offset, where.timestamp_ms)
        fallback = gate.signer.position_id(*position) if gate else derived_activation_id(*position)
        req = DagRequest.from_dict(decode(raw), fallback_id=fallback)
        refused = gate.tenant_refuses(req, key, raw, where, headers) if gate is not None else None
        if refused is not None:
            return dead_letter(key, raw, where, refused)
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
