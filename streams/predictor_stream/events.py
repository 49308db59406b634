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

A tenant's credential is checked against the key store (CouchDB). When that
store cannot be read, the request is not refused but held (:class:`Held`) for
the caller to try again, and so is every later event of its partition, so a
partition's order is kept (:func:`plan_or_hold`); only a request that has
waited its bound is dead-lettered, with why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from gleaner.errors import MalformedEvent, is_transient
from streams.events import DagPlan, DagRequest, decode, derived_activation_id
from streams.kafka.client import oversize
from streams.kafka.deadletter import dead_letter_event
from streams.kafka.runner import dead_letter_reason
from streams.kafka.signing import SIGNATURE_HEADER, Headers, Signer, has_header, tenant_not_proven

log = logging.getLogger(__name__)
PLANS = "plans"
DEADLETTERS = "deadletters"
Partition = tuple[str, int]  # (topic, partition): the unit of order


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


@dataclass(frozen=True, slots=True)
class Held:
    """An event that waits, and why: the key store could not be read to check its
    credential, or (``behind``) an earlier event of its partition waits."""

    reason: str
    behind: bool = False


class KeyStoreUnavailable(Exception):
    """The key store could not be read to check a tenant's credential: neither yes nor no."""

    def __init__(self, namespace: str, cause: Exception) -> None:
        super().__init__(f"the key store could not be read ({cause})")
        self.namespace = namespace


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
        return self.signer.entry_rejects(where.topic, key, raw, headers)

    def tenant_refuses(
        self, req: DagRequest, key: bytes | None, raw: bytes | None, where: Where, headers: Headers
    ) -> str | None:
        """Why a tenant may not write ``req``, or None when it may.

        Raises KeyStoreUnavailable when the credential cannot be checked (the store is away)."""
        if self.signer.signed(where.topic, key, raw, headers):
            return None
        try:
            return tenant_not_proven(req.namespace, headers, self.authenticate)
        except Exception as exc:
            if is_transient(exc):  # neither yes nor no: the request waits for the store
                raise KeyStoreUnavailable(req.namespace, exc) from exc
            raise


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
    """The plan of each request event, or why it has none, in order. Nothing waits:
    a request whose credential cannot be checked is dead-lettered with why."""
    outs = plan_or_hold(planner, events, limit, gate, may_wait=_never)
    return [out for out in outs if not isinstance(out, Held)]  # none is: nothing may wait


def _never(_where: Where) -> bool:
    return False


def plan_or_hold(
    planner: Planner,
    events: Sequence[Incoming],
    limit: int,
    gate: Gate | None,
    may_wait: Callable[[Where], bool],
    waited_s: float = 0.0,
    blocked: Collection[Partition] = (),
) -> list[Outgoing | Held]:
    """The plan of each request event, why it has none, or that it waits, in order.

    A request whose credential cannot be checked (the key store cannot be read) is
    Held while ``may_wait`` allows it, else dead-lettered with why (``waited_s``: how
    long such a request waits). Every event after a held one in its partition, and
    every event of a ``blocked`` partition (one with events held already), is held
    unread, so the caller can try them again in their partition's order."""
    stopped = set(blocked)
    admitted: list[DagRequest | Outgoing | Held] = []
    for e in events:
        part = (e.where.topic, e.where.partition)
        if part in stopped:
            admitted.append(Held(f"an earlier request of {part[0]}[{part[1]}] waits", behind=True))
            continue
        one = _admit(e, limit, gate, may_wait, waited_s)
        if isinstance(one, Held):
            stopped.add(part)
        admitted.append(one)
    reqs = [a for a in admitted if isinstance(a, DagRequest)]
    try:
        plans = planner.plan_batch(reqs) if reqs else []
    except Exception:  # a bug in batching: plan them one by one, so it parks only whom it hits
        log.exception("planning a batch of %d requests failed; planning them one by one", len(reqs))
        plans = [_plan_alone(planner, req) for req in reqs]
    planned = iter(plans)
    return [
        _outgoing(e, a, next(planned), limit) if isinstance(a, DagRequest) else a
        for e, a in zip(events, admitted, strict=True)
    ]


def _admit(
    e: Incoming, limit: int, gate: Gate | None, may_wait: Callable[[Where], bool], waited_s: float
) -> DagRequest | Outgoing | Held:
    """The request an event carries, its dead letter (size, signature, shape, namespace),
    or that it waits for the key store."""
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
    except KeyStoreUnavailable as exc:
        if may_wait(e.where):
            return Held(str(exc))
        waited = f" and the request waited {waited_s:g} s for it" if waited_s > 0 else ""
        why = f"namespace {exc.namespace} not proven: {exc}{waited}; send it again"
        return dead_letter(e.key, e.raw, e.where, why)
    except Exception as exc:  # a bad event, or a bug: it must not stop the stream, park it with why
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
        value = plan.to_bytes()  # the allocations in their wire form (streams.events' codec)
    except MalformedEvent as exc:  # nested past 254 levels, or an integer past 64 bits
        return dead_letter(e.key, e.raw, e.where, str(exc))
    if len(value) > limit:
        reason = f"its plan of {len(value)} bytes is above the limit of {limit} bytes"
        return dead_letter(e.key, e.raw, e.where, reason)
    return Outgoing(PLANS, req.request_id.encode(), value)


def _failed(e: Incoming, exc: Exception) -> Outgoing:
    """The dead letter of an event whose decoding or planning raised ``exc`` (the runner's reasons)."""
    if not isinstance(exc, MalformedEvent):
        w = e.where
        log.error("planning %s[%d]@%d failed", w.topic, w.partition, w.offset, exc_info=exc)
    return dead_letter(e.key, e.raw, e.where, dead_letter_reason(exc, "planning"))
