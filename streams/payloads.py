"""Values that travel by reference, each owned by one namespace.

Inputs and outputs above ``inline_payload_bytes`` never ride in Kafka: they go
to the data store (Redis, with a TTL) and the event carries a reference
``{"$gleaner_ref": "<id>", "size": <bytes>}``. The invoker resolves
references in a function's input (at the top level and inside a fan-in's
``value`` list) and offloads a large result, so functions only ever see
plain dicts.

A reference belongs to the namespace that created it: the Redis key is
``gleaner:data:<namespace>:<id>``, and every resolve names the namespace it
resolves for, so another namespace's reference is simply not there for it
(:class:`ForeignReference`) and nothing of the owner is read. Ids are
unguessable: 128 random bits for a one-off value (a gateway or replay
input), or an HMAC under the platform secret of the activation id for a
result, so a redelivered activation stores its result under the same id.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import orjson

from gleaner.errors import InvalidInput
from gleaner.redis_store import RedisStore
from streams.kafka.signing import Signer

REF = "$gleaner_ref"
_PREFIX = "gleaner:data:"
_ID = re.compile(r"^[0-9a-f]{32,64}$")


class ForeignReference(InvalidInput):
    """A reference the namespace cannot resolve: another's, expired, or made up."""


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get(REF), str)


def refs_in(value: Any) -> list[dict[str, Any]]:
    """The references ``resolve`` would follow: the value itself, or a fan-in's list items."""
    if is_ref(value):
        return [value]
    if isinstance(value, dict) and isinstance(value.get("value"), list):
        return [v for v in value["value"] if is_ref(v)]
    return []


def size_of(value: Any) -> int:
    """Serialized size in bytes; a reference counts as the size of what it names."""
    if is_ref(value):
        size = value.get("size", 0)
        return int(size) if isinstance(size, int | float) and size >= 0 else 0
    if isinstance(value, dict) and isinstance(value.get("value"), list):
        inner = value["value"]
        if any(is_ref(v) for v in inner):
            rest = {k: v for k, v in value.items() if k != "value"}
            return len(orjson.dumps(rest)) + sum(size_of(v) for v in inner)
    return len(orjson.dumps(value))


def data_key(namespace: str, ref_id: str) -> str:
    return f"{_PREFIX}{namespace}:{ref_id}"


def not_found(namespace: str, ref_id: str, ttl_s: int) -> str:
    # One message for "another namespace's", "expired" and "never existed": which of
    # them is true about another tenant's data is not this caller's to learn.
    return (
        f"the reference {ref_id[:80]} is not a value of namespace {namespace}: "
        f"it belongs to another namespace, expired (TTL {ttl_s}s) or never existed"
    )


class DataStore:
    def __init__(
        self, store: RedisStore, threshold_bytes: int, ttl_s: int, signer: Signer | None = None
    ) -> None:
        self._store = store
        self.threshold = threshold_bytes
        self._ttl = ttl_s
        self._signer = signer  # derives stable ids; needed only with ``stable_key``

    def new_id(self, namespace: str, stable_key: str | None = None) -> str:
        if stable_key is None:
            return secrets.token_hex(16)
        if self._signer is None:
            raise ValueError("a stable reference id needs the platform secret (DataStore(signer=...))")
        return self._signer.derive("payload-ref", namespace, stable_key)

    def fits_inline(self, value: Any) -> bool:
        """Whether :meth:`offload` would keep ``value`` as it is (no store write)."""
        return len(orjson.dumps(value)) <= self.threshold

    def offload(self, value: dict[str, Any], namespace: str, stable_key: str | None = None) -> dict[str, Any]:
        """``value`` itself when small, else a reference to it that only ``namespace`` resolves.
        ``stable_key`` (an activation id) makes a redelivery store under the same id."""
        raw = orjson.dumps(value)
        if len(raw) <= self.threshold:
            return value
        ref_id = self.new_id(namespace, stable_key)
        self._store.set(data_key(namespace, ref_id), raw, self._ttl)
        return {REF: ref_id, "size": len(raw)}

    def fetch(self, ref: dict[str, Any], namespace: str) -> Any:
        ref_id = ref[REF]
        if not _ID.match(ref_id):
            raise ForeignReference(not_found(namespace, ref_id, self._ttl))
        raw = self._store.get(data_key(namespace, ref_id))
        if raw is None:
            raise ForeignReference(not_found(namespace, ref_id, self._ttl))
        return orjson.loads(raw)

    def owned(self, value: Any, namespace: str) -> None:
        """Raise :class:`ForeignReference` unless every reference in ``value`` is
        ``namespace``'s (checked without reading the values)."""
        for ref in refs_in(value):
            ref_id = ref[REF]
            if not _ID.match(ref_id) or self._store.get(data_key(namespace, ref_id)) is None:
                raise ForeignReference(not_found(namespace, ref_id, self._ttl))

    def resolve(self, value: Any, namespace: str) -> Any:
        """Replace ``namespace``'s references at the top level and inside a ``value`` list."""
        if is_ref(value):
            return self.resolve(self.fetch(value, namespace), namespace)
        if isinstance(value, dict):
            inner = value.get("value")
            if isinstance(inner, list) and any(is_ref(v) for v in inner):
                return {**value, "value": [self.fetch(v, namespace) if is_ref(v) else v for v in inner]}
        return value
