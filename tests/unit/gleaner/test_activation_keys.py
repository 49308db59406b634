"""Per-activation keys (gleaner.activation_keys): minted for one namespace, valid until
revoked or past the deadline, stored without the secret, told apart by their uuid."""

from __future__ import annotations

import json
import uuid as uuidlib

import pytest

from gleaner import activation_keys as ak
from gleaner.credentials import new_credential
from gleaner.errors import RedisError
from gleaner.subjects import parse_credential
from tests.unit.fakes import MemoryRedis

FAR = 4_102_444_800_000  # 2100-01-01: a deadline that has not passed


def test_minted_uuids_are_version_8_and_namespace_keys_are_not() -> None:
    for _ in range(200):
        value = ak.new_uuid()
        parsed = uuidlib.UUID(value)
        assert parsed.version == 8 and parsed.variant == uuidlib.RFC_4122 and str(parsed) == value
        assert ak.is_minted(value)
    assert not any(ak.is_minted(new_credential().partition(":")[0]) for _ in range(200))
    assert not ak.is_minted("not-a-uuid") and not ak.is_minted("")


def test_a_minted_key_is_a_credential_of_its_namespace_and_nothing_else() -> None:
    redis = MemoryRedis()
    keys = ak.ActivationKeys(redis)
    key = keys.mint("alice", "a" * 32, FAR)
    parsed = parse_credential(key.credential)
    assert parsed == (key.uuid, key.secret)  # OpenWhisk's uuid:key shape
    assert keys.namespace_for(key.credential) == "alice"
    assert keys.namespace_for(f"{key.uuid}:{key.secret}x") is None  # wrong secret
    assert keys.namespace_for(f"{ak.new_uuid()}:{key.secret}") is None  # unknown uuid
    other = keys.mint("bob", "b" * 32, FAR)
    assert keys.namespace_for(other.credential) == "bob" and other.secret != key.secret


def test_the_store_holds_a_digest_never_the_secret_and_expires_after_the_deadline() -> None:
    redis = MemoryRedis()
    key = ak.ActivationKeys(redis).mint("alice", "a" * 32, 1_000_000)
    raw = redis.values[ak.redis_key(key.uuid)]
    assert key.secret.encode() not in raw
    record = json.loads(raw)
    assert record == {
        "namespace": "alice",
        "activation_id": "a" * 32,
        "sha256": ak.digest(key.secret),
        "expires_ms": 1_000_000 + ak.GRACE_MS,
    }
    assert ak.namespace_of(raw, key.secret, now_ms=1_000_000 + ak.GRACE_MS) == "alice"
    assert ak.namespace_of(raw, key.secret, now_ms=1_000_001 + ak.GRACE_MS) is None
    # Redis forgets it by itself a little after that (seconds, rounded up, at least one).
    assert key.ttl_s(now_ms=1_000_000) == 5 and key.ttl_s(now_ms=10**12) == 1


def test_revoked_keys_stop_working() -> None:
    keys = ak.ActivationKeys(MemoryRedis())
    key = keys.mint("alice", "a" * 32, FAR)
    keys.revoke(key)
    assert keys.namespace_for(key.credential) is None


@pytest.mark.parametrize(
    "raw", [None, b"", b"[]", b"{}", b"not json", b'{"namespace":1,"sha256":"x","expires_ms":9}']
)
def test_records_it_did_not_write_grant_nothing(raw: bytes | None) -> None:
    assert ak.namespace_of(raw, "secret", now_ms=0) is None


def test_keys_that_are_not_minted_never_reach_redis() -> None:
    redis = MemoryRedis()
    redis.down = 1  # any call would fail
    keys = ak.ActivationKeys(redis)
    assert keys.namespace_for(new_credential()) is None
    assert keys.namespace_for("garbage") is None
    assert redis.down == 1


def test_redis_errors_are_raised_as_such() -> None:
    redis = MemoryRedis()
    redis.down = 1
    with pytest.raises(RedisError):
        ak.ActivationKeys(redis).mint("alice", "a" * 32, FAR)
