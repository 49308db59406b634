"""The invoker's cache of action documents (invoker_agent/action_store.py): a pinned
revision for good, an unpinned read for its TTL, an expired copy while CouchDB is away."""

from __future__ import annotations

from typing import Any

import pytest

from gleaner.couchdb import WHISKS
from gleaner.errors import CouchDBError
from invoker_agent import action_store
from invoker_agent.action_store import ActionStore

TTL_S = 5.0


class Couch:
    """Action documents by revision; counts reads; ``down`` makes every read fail."""

    def __init__(self) -> None:
        self.revs: dict[tuple[str, str], dict[str, Any]] = {}
        self.latest: dict[str, dict[str, Any]] = {}
        self.reads: list[tuple[str, str | None]] = []
        self.down = False

    def put(self, doc_id: str, rev: str, code: str) -> None:
        doc = {"_id": doc_id, "_rev": rev, "exec": {"code": code}}
        self.revs[(doc_id, rev)] = doc
        self.latest[doc_id] = doc

    def get_doc(self, db: str, doc_id: str, rev: str | None = None) -> dict[str, Any] | None:
        assert db == WHISKS
        self.reads.append((doc_id, rev))
        if self.down:
            raise CouchDBError("CouchDB is unreachable: connection refused")
        return self.revs.get((doc_id, rev)) if rev is not None else self.latest.get(doc_id)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(action_store, "time", c)
    return c


@pytest.fixture()
def couch() -> Couch:
    db = Couch()
    db.put("guest/f", "1-a", "v1")
    return db


def code(doc: dict[str, Any] | None) -> str:
    assert doc is not None
    return str(doc["exec"]["code"])


def test_a_pinned_revision_is_read_once_and_kept_for_good(couch: Couch, clock: Clock) -> None:
    store = ActionStore(couch, TTL_S)  # type: ignore[arg-type]
    assert code(store.get("guest", "f", "1-a")) == "v1"
    couch.put("guest/f", "2-b", "v2")
    clock.now += 10 * TTL_S
    assert code(store.get("guest", "f", "1-a")) == "v1"  # that revision cannot change
    assert couch.reads == [("guest/f", "1-a")]
    assert code(store.get("guest", "f", "2-b")) == "v2"  # another revision is another entry


def test_an_unpinned_read_is_kept_for_the_ttl_then_read_again(couch: Couch, clock: Clock) -> None:
    store = ActionStore(couch, TTL_S)  # type: ignore[arg-type]
    assert code(store.get("guest", "f", None)) == "v1"
    couch.put("guest/f", "2-b", "v2")
    clock.now += TTL_S - 0.1
    assert code(store.get("guest", "f", None)) == "v1"  # still fresh
    clock.now += 0.2
    assert code(store.get("guest", "f", None)) == "v2"  # expired: the update is seen
    assert couch.reads == [("guest/f", None), ("guest/f", None)]


def test_a_compacted_revision_falls_back_to_the_latest(couch: Couch, clock: Clock) -> None:
    store = ActionStore(couch, TTL_S)  # type: ignore[arg-type]
    assert code(store.get("guest", "f", "0-gone")) == "v1"
    assert couch.reads == [("guest/f", "0-gone"), ("guest/f", None)]


def test_an_unknown_action_is_none_and_not_cached(couch: Couch, clock: Clock) -> None:
    store = ActionStore(couch, TTL_S)  # type: ignore[arg-type]
    assert store.get("guest", "nope", None) is None
    couch.put("guest/nope", "1-c", "new")
    assert code(store.get("guest", "nope", None)) == "new"  # created since: found at once


def test_while_couchdb_is_away_an_expired_copy_is_served_and_re_armed(couch: Couch, clock: Clock) -> None:
    store = ActionStore(couch, TTL_S)  # type: ignore[arg-type]
    assert code(store.get("guest", "f", None)) == "v1"
    couch.down = True
    clock.now += TTL_S + 1
    assert code(store.get("guest", "f", None)) == "v1"  # the copy beats no answer
    reads = len(couch.reads)
    clock.now += TTL_S - 0.1
    assert code(store.get("guest", "f", None)) == "v1"  # re-armed: no read for another TTL
    assert len(couch.reads) == reads


def test_without_a_copy_an_unreachable_couchdb_is_an_error(couch: Couch, clock: Clock) -> None:
    couch.down = True
    with pytest.raises(CouchDBError):
        ActionStore(couch, TTL_S).get("guest", "f", None)  # type: ignore[arg-type]


def test_the_least_recently_used_entry_goes_past_the_bound(
    couch: Couch, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(action_store, "_MAX", 2)
    for name in ("a", "b", "c"):
        couch.put(f"guest/{name}", "1-x", name)
    store = ActionStore(couch, TTL_S)  # type: ignore[arg-type]
    store.get("guest", "a", "1-x")
    store.get("guest", "b", "1-x")
    store.get("guest", "a", "1-x")  # a is used again: b is now the oldest
    store.get("guest", "c", "1-x")  # one too many: b goes
    couch.reads.clear()
    store.get("guest", "a", "1-x")
    store.get("guest", "c", "1-x")
    assert couch.reads == []
    store.get("guest", "b", "1-x")
    assert couch.reads == [("guest/b", "1-x")]
