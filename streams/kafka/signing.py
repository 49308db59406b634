"""Who may write an event: the signed envelope every first consumer checks.

The embedded broker (Tansu) has no SASL and no ACLs, so anything that can
reach it can produce to any topic. Gleaner therefore does not trust the
broker to say who wrote an event; the event says it itself, in a header:

- ``gleaner-sig``: HMAC-SHA256 under the platform secret of (topic, key,
  value), put on every event Gleaner's own components produce (one place:
  :class:`~streams.kafka.client.EventProducer`). Only a holder of the secret
  (the platform's processes, which read it from the 0600 state directory)
  can make one, and it holds only for the topic and key it was made for.
- ``gleaner-auth``: a tenant's own ``uuid:key`` (the REST credential), for
  events a tenant produces with any Kafka client to the two entry topics
  (``invocations``, ``dag.requests``). Their first consumer authenticates
  it and checks the event's namespace is the key's.

Everything else is dead-lettered with the reason by the first consumer.
Pure apart from loading the secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from gleaner.settings_sections import KafkaSettings

SIGNATURE_HEADER = "gleaner-sig"
AUTH_HEADER = "gleaner-auth"
_DOMAIN = b"gleaner-event-v1"

Headers = tuple[tuple[str, bytes], ...]  # as consumed
OutHeaders = list[tuple[str, str | bytes | None]]  # as confluent-kafka and aiokafka produce them


def _field(data: bytes | None) -> bytes:
    # Length-prefixed, so (topic, key, value) splits one way only; None differs from b"".
    if data is None:
        return b"-1:"
    return str(len(data)).encode() + b":" + data


def _as_bytes(key: str | bytes | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key


def normalize_headers(raw: Any) -> Headers:
    """confluent-kafka's list, aiokafka's tuple or Faust's dict of headers -> one shape.
    Values that are not bytes (or str) are dropped: they cannot be ours."""
    if not raw:
        return ()
    items: Iterable[Any] = raw.items() if isinstance(raw, Mapping) else raw
    out: list[tuple[str, bytes]] = []
    for item in items:
        if not isinstance(item, Sequence) or len(item) != 2:
            continue
        name, value = item
        if isinstance(value, str):
            value = value.encode()
        if isinstance(name, str) and isinstance(value, bytes):
            out.append((name, value))
    return tuple(out)


def header(headers: Headers, name: str) -> bytes | None:
    """The one value of ``name``; None when absent. Two values count as forged (None too)."""
    values = [v for k, v in headers if k == name]
    return values[0] if len(values) == 1 else None


def has_header(headers: Headers, name: str) -> bool:
    return any(k == name for k, _ in headers)


class Signer:
    """Signs and verifies Gleaner's own events under the platform secret."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the platform secret is too short")
        self._secret = secret

    @classmethod
    def for_settings(cls, settings: KafkaSettings) -> Signer:
        from gleaner.secrets_file import platform_secret

        return cls(platform_secret(settings))

    def signature(self, topic: str, key: str | bytes | None, value: bytes | None) -> bytes:
        msg = _DOMAIN + _field(topic.encode()) + _field(_as_bytes(key)) + _field(value)
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest().encode()

    def headers(self, topic: str, key: str | bytes | None, value: bytes | None) -> OutHeaders:
        return [(SIGNATURE_HEADER, self.signature(topic, key, value))]

    def rejects(
        self, topic: str, key: str | bytes | None, value: bytes | None, headers: Headers
    ) -> str | None:
        """Why this event is not Gleaner's own, or None when its signature holds."""
        if not has_header(headers, SIGNATURE_HEADER):
            return f"unsigned event on {topic}: only Gleaner's own components write to it"
        given = header(headers, SIGNATURE_HEADER)
        if given is None or not hmac.compare_digest(given, self.signature(topic, key, value)):
            return f"forged event on {topic}: its platform signature does not match"
        return None

    def entry_rejects(
        self, topic: str, key: str | bytes | None, value: bytes | None, headers: Headers
    ) -> str | None:
        """On an entry topic, which tenants may write to: why this event may not go on, or
        None. An unsigned event is a tenant's (its first consumer then proves the tenant's
        credential, :func:`tenant_not_proven`); a signature that is present must hold."""
        if not has_header(headers, SIGNATURE_HEADER):
            return None
        return self.rejects(topic, key, value, headers)

    def signed(self, topic: str, key: str | bytes | None, value: bytes | None, headers: Headers) -> bool:
        return self.rejects(topic, key, value, headers) is None

    def position_id(self, topic: str, partition: int, offset: int, timestamp_ms: int | None = None) -> str:
        """The activation id of an event produced without one: stable for the record's
        Kafka position and timestamp (a redelivery keeps both; a broker restarted from
        memory reuses offsets, not timestamps), yet not derivable by another tenant, who
        could otherwise pre-empt the id (and the DAG function ids derived from it)."""
        stamp = "" if timestamp_ms is None else str(timestamp_ms)
        return self.derive("activation-id", topic, str(partition), str(offset), stamp)[:32]

    def derive(self, purpose: str, *parts: str) -> str:
        """A stable id no one can guess without the secret (e.g. a payload reference
        for one activation's result: redelivery makes the same one)."""
        msg = _DOMAIN + _field(purpose.encode()) + b"".join(_field(p.encode()) for p in parts)
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()


def tenant_headers(credential: str) -> OutHeaders:
    """Kafka headers that prove a tenant's event's namespace: ``[("gleaner-auth", b"uuid:key")]``,
    for a tenant's own Kafka client (README: Invoking through Kafka)."""
    if ":" not in credential:
        raise ValueError("a credential is 'uuid:key', as in ~/.wskprops AUTH")
    return [(AUTH_HEADER, credential.encode("ascii"))]


def tenant_credential(headers: Headers) -> str | None:
    """The ``uuid:key`` a tenant's event carries, or None."""
    raw = header(headers, AUTH_HEADER)
    if raw is None:
        return None
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return None


def namespace_not_proven(claimed: str, credential: str | None, owner: str | None) -> str | None:
    """Why a tenant's event may not act for ``claimed``, or None when it may.
    ``owner`` is the namespace ``credential`` authenticated as (None: not a valid key)."""
    if credential is None:
        return f"namespace {claimed} not proven: no credential (a '{AUTH_HEADER}' header with its uuid:key)"
    if owner is None:
        return f"namespace {claimed} not proven: the credential is not a valid key"
    if owner != claimed:
        return f"namespace {claimed} not proven: the credential does not belong to namespace {claimed}"
    return None


def tenant_not_proven(
    claimed: str, headers: Headers, authenticate: Callable[[str], str | None] | None
) -> str | None:
    """Why a tenant's event may not act for ``claimed``, or None when the credential it
    carries proves it. ``authenticate`` maps a credential to its namespace (None: not a
    valid key); what it raises (the key store away) is the caller's to handle."""
    credential = tenant_credential(headers)
    owner = authenticate(credential) if credential is not None and authenticate is not None else None
    return namespace_not_proven(claimed, credential, owner)
