"""Placement's unacknowledged list in Redis: write-behind, kept through Redis outages,
read back by a restarted placement."""

from __future__ import annotations

import threading

import orjson
from prometheus_client import REGISTRY

from gleaner.settings import Settings
from streams.events import ActivationRequest
from streams.placement.acks import Unacknowledged
from streams.placement.journal import MemoryHashes, UnackedJournal, keep_written, unacked_key

KEY = unacked_key(Settings())


def req(n: int) -> ActivationRequest:
    return ActivationRequest(f"{n:032x}", "guest", "f", params={"n": n}, submitted_ms=1_000 + n)


def with_store(store: MemoryHashes) -> Unacknowledged:
    return Unacknowledged(journal=UnackedJournal(store, KEY))


def errors() -> float:
    return REGISTRY.get_sample_value("gleaner_placement_unacked_store_errors_total") or 0.0


def test_the_key_is_the_deployments_own():
    assert KEY == "gleaner:placement:unacked"
    assert unacked_key(Settings(topic_prefix="bench-1a2b3c.")) == "gleaner:placement:unacked:bench-1a2b3c"


def test_dispatches_are_written_in_one_batch_per_flush_and_completions_deleted():
    store = MemoryHashes()
    u = with_store(store)
    for n in range(100):
        u.sent("i0", req(n))
    assert store.calls == 0  # the hot path never waits on Redis
    assert u.flush() and store.calls == 2  # the list read back once, then one HSET
    assert u.flush() and store.calls == 2  # nothing changed: no round trip
    stored = store.hashes[KEY]
    assert len(stored) == 100
    entry = orjson.loads(stored[req(7).activation_id])
    assert entry["invoker"] == "i0" and isinstance(entry["sent_at"], float)
    assert ActivationRequest.from_dict(orjson.loads(entry["request"])) == req(7)
    for n in range(100):
        u.acked(req(n).activation_id)
    u.flush()
    assert store.hashes[KEY] == {}


def test_what_completes_before_a_flush_is_never_written():
    store = MemoryHashes()
    u = with_store(store)
    u.sent("i0", req(1))
    u.acked(req(1).activation_id)
    u.flush()
    assert store.hashes.get(KEY, {}) == {}


def test_redis_away_never_stops_dispatch_and_the_batch_is_written_once_it_is_back():
    store = MemoryHashes()
    u = with_store(store)
    before = errors()
    u.sent("i0", req(1))
    u.sent("i0", req(2))
    store.down = 1
    assert not u.flush() and errors() == before + 1
    u.acked(req(1).activation_id)  # completed while the batch waited: not written back
    u.sent("i1", req(3))
    assert u.flush()
    assert set(store.hashes[KEY]) == {req(2).activation_id, req(3).activation_id}


def test_a_restarted_placement_finds_the_list_taken_back_entries_included():
    store = MemoryHashes()
    first = with_store(store)
    for n in range(3):
        first.sent("i0", req(n))
    first.sent("i1", req(3))
    first.take_back("i1")
    first.flush()

    again = with_store(store)
    again.acked(req(0).activation_id)  # its completion came before Redis was read
    assert again.recover() and len(again) == 3
    assert again.invokers() == {"i0"}
    (pending,) = again.pending()
    assert pending.activation_id == req(3).activation_id and pending.redispatched_from == "i1"
    again.take_back("i0")
    assert [r.activation_id for r in again.pending()] == [req(n).activation_id for n in (3, 1, 2)]
    again.flush()
    assert req(0).activation_id not in store.hashes[KEY]


def test_reading_back_is_retried_while_redis_is_away_and_unreadable_entries_are_dropped():
    store = MemoryHashes()
    store.hashes[KEY] = {"x" * 32: b"not json", req(1).activation_id: b""}
    with_store(store).flush()
    u = with_store(store)
    u.sent("i0", req(2))
    store.down = 1
    assert not u.recover()  # the first read failed: the writer tries again
    assert u.flush() and len(u) == 1 and store.hashes[KEY].keys() == {req(2).activation_id}


def test_the_writer_thread_flushes_until_stopped():
    store = MemoryHashes()
    u = with_store(store)
    stop = threading.Event()
    writer = threading.Thread(target=keep_written, args=(u.flush, stop, 0.01))
    writer.start()
    u.sent("i0", req(1))
    for _ in range(200):
        if store.hashes.get(KEY):
            break
        stop.wait(0.01)
    stop.set()
    writer.join(2)
    assert not writer.is_alive() and req(1).activation_id in store.hashes[KEY]
