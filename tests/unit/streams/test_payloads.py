"""Payload references belong to the namespace that made them, and their ids are unguessable."""

from __future__ import annotations

import pytest

from streams.kafka.signing import Signer
from streams.payloads import REF, DataStore, ForeignReference, refs_in, size_of
from tests.unit.fakes import MemoryRedis

BIG = {"blob": "x" * 200}


def store(signer: Signer | None = None) -> tuple[DataStore, MemoryRedis]:
    redis = MemoryRedis()
    return DataStore(redis, 100, 60, signer), redis  # type: ignore[arg-type]


def test_a_small_value_stays_inline_and_a_large_one_becomes_a_reference():
    data, _ = store()
    assert data.offload({"n": 1}, "a") == {"n": 1}
    ref = data.offload(BIG, "a")
    assert set(ref) == {REF, "size"} and data.resolve(ref, "a") == BIG


def test_fits_inline_says_whether_offload_would_write():
    data, redis = store()
    assert data.fits_inline({"n": 1}) and not data.fits_inline(BIG)
    before = len(redis.values)
    data.offload({"n": 1}, "a")
    assert len(redis.values) == before


def test_another_namespace_cannot_resolve_a_reference_and_nothing_of_it_is_read():
    data, redis = store()
    ref = data.offload(BIG, "alice")
    reads: list[str] = []
    get = redis.get
    redis.get = lambda key: reads.append(key) or get(key)  # type: ignore[method-assign]
    with pytest.raises(ForeignReference, match="is not a value of namespace bob"):
        data.resolve(ref, "bob")
    with pytest.raises(ForeignReference):
        data.resolve({"value": [ref]}, "bob")  # inside a fan-in too
    with pytest.raises(ForeignReference):
        data.owned(ref, "bob")
    assert reads and all(key.startswith("gleaner:data:bob:") for key in reads)  # only bob's keys looked at
    data.owned({"value": [ref, {"n": 1}]}, "alice")  # the owner's own: fine


def test_random_ids_are_128_bits_and_never_repeat():
    data, _ = store()
    ids = {data.offload(BIG, "a")[REF] for _ in range(50)}
    assert len(ids) == 50 and all(len(i) == 32 for i in ids)


def test_a_result_id_is_stable_per_activation_yet_unguessable_without_the_secret():
    data, _ = store(Signer(b"s" * 32))
    first = data.offload(BIG, "a", "act1")[REF]
    assert data.offload(BIG, "a", "act1")[REF] == first  # a redelivery stores under the same id
    assert data.offload(BIG, "a", "act2")[REF] != first
    assert data.offload(BIG, "b", "act1")[REF] != first
    assert "act1" not in first
    other, _ = store(Signer(b"t" * 32))
    assert other.offload(BIG, "a", "act1")[REF] != first
    with pytest.raises(ValueError):
        store()[0].offload(BIG, "a", "act1")  # never a guessable fallback


@pytest.mark.parametrize("guess", ["a" * 32, "../../x", "*", "gleaner:data:a:" + "0" * 32, ""])
def test_a_guessed_or_malformed_id_fails_cleanly(guess):
    data, _ = store()
    data.offload(BIG, "a")
    with pytest.raises(ForeignReference):
        data.resolve({REF: guess}, "a")


def test_refs_and_sizes_are_measured_without_reading():
    ref = {REF: "0" * 32, "size": 500}
    assert refs_in(ref) == [ref] and refs_in({"value": [ref, 1]}) == [ref] and refs_in({"n": 1}) == []
    assert size_of(ref) == 500 and size_of({REF: "x", "size": "lots"}) == 0
