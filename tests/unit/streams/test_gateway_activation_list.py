"""The activation list merges what the gateway just saw complete with the store's page
(read-your-writes): no duplicates, the store's order, skip/limit over the merged list,
the name/since/upto filters and the caller's namespace only."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from gleaner.couchdb import AsyncCouchDB, Call
from gleaner.settings import Settings
from streams.gateway.activation_list import (
    ListQuery,
    candidates,
    list_page,
    merged_page,
    store_window,
    stored_ids,
)
from streams.gateway.app import Gateway
from tests.unit.streams.gateway_server import ask

Doc = dict[str, Any]


def rec(aid: str, start: int, ns: str = "ns1", name: str = "hello") -> Doc:
    return {
        "_id": f"{ns}/{aid}",
        "entityType": "activation",
        "activationId": aid,
        "namespace": ns,
        "name": name,
        "start": start,
        "end": start + 5,
        "response": {"result": {"n": start}},
        "logs": [],
    }


def ids(docs: list[Doc]) -> list[str]:
    return [d["activationId"] for d in docs]


class Store(AsyncCouchDB):
    """The activations database as CouchDB answers the gateway's two reads: ``_find``
    (selector, newest ``start`` first, skip, limit) and ``_all_docs`` by keys."""

    def __init__(self, docs: list[Doc]) -> None:
        super().__init__(Settings())
        self.docs = {d["_id"]: d for d in docs}
        self.calls: list[Call] = []

    @staticmethod
    def _matches(doc: Doc, selector: Doc) -> bool:
        for field, want in selector.items():
            if field != "start":
                if doc.get(field) != want:
                    return False
                continue
            start = doc.get("start")
            if not isinstance(start, int):
                return False
            if "$gte" in want and start < want["$gte"]:
                return False
            if "$lte" in want and start > want["$lte"]:
                return False
        return True

    async def call(self, call: Call) -> Any:
        self.calls.append(call)
        assert call.method == "POST", call
        if call.path.endswith("/_find"):
            body = call.body
            found = [d for d in self.docs.values() if self._matches(d, body["selector"])]
            found.sort(key=lambda d: (d["start"], d["_id"]), reverse=True)
            return {"docs": found[body["skip"] : body["skip"] + body["limit"]]}
        assert call.path.endswith("/_all_docs"), call
        keys = call.body["keys"]
        written = {"value": {"rev": "1-a"}}
        return {
            "rows": [
                {"key": k, "id": k, **written} if k in self.docs else {"key": k, "error": "not_found"}
                for k in keys
            ]
        }


def page(store: Store, query: ListQuery, recent: list[Doc]) -> list[str]:
    return ids(asyncio.run(list_page(store, query, recent)))


# -- the pure parts ----------------------------------------------------------------


def test_the_store_query_is_the_one_the_route_always_made() -> None:
    plain = ListQuery("ns1")
    assert plain.selector() == {"namespace": "ns1", "start": {"$gt": None}}
    assert plain.sort() == [{"namespace": "desc"}, {"start": "desc"}]
    named = ListQuery("ns1", "hello", since=10, upto=20)
    assert named.selector() == {"namespace": "ns1", "name": "hello", "start": {"$gte": 10, "$lte": 20}}
    assert named.sort() == [{"namespace": "desc"}, {"name": "desc"}, {"start": "desc"}]


def test_a_query_admits_only_its_namespace_name_and_time_range() -> None:
    query = ListQuery("ns1", "hello", since=10, upto=20)
    assert query.admits(rec("a", 10)) and query.admits(rec("b", 20))
    assert not query.admits(rec("c", 15, ns="ns2"))
    assert not query.admits(rec("d", 15, name="other"))
    assert not query.admits(rec("e", 9)) and not query.admits(rec("f", 21))
    assert not query.admits({**rec("g", 15), "start": None})
    assert ListQuery("ns1").admits(rec("h", 15, name="other"))


def test_candidates_are_newest_first_and_no_more_than_a_page_can_show() -> None:
    recent = [rec(f"a{i}", i) for i in range(10)] + [rec("x", 99, ns="ns2")]
    assert ids(candidates(recent, ListQuery("ns1", skip=2, limit=3))) == ["a9", "a8", "a7", "a6", "a5"]
    assert ids(candidates(recent, ListQuery("ns1"), after=7)) == ["a9", "a8"]
    assert candidates(recent, ListQuery("ns3")) == []


def test_recent_records_older_than_a_full_page_are_not_merged() -> None:
    store = Store([rec("s2", 20), rec("s1", 10)])
    old = rec("old", 5)  # not stored yet, but older than the full page's last record
    assert page(store, ListQuery("ns1", limit=2), [old]) == ["s2", "s1"]
    assert page(store, ListQuery("ns1", limit=3), [old]) == ["s2", "s1", "old"]


def test_a_recent_record_newer_than_the_page_goes_first_and_the_limit_holds() -> None:
    stored = [rec("s3", 30), rec("s2", 20), rec("s1", 10)]
    assert ids(merged_page(stored, [rec("new", 40)], 0, 3)) == ["new", "s3", "s2"]
    assert ids(merged_page(stored, [rec("mid", 25)], 0, 10)) == ["s3", "mid", "s2", "s1"]
    assert ids(merged_page(stored, [rec("new", 40)], 1, 2)) == ["s3", "s2"]


def test_a_recent_record_the_page_already_holds_is_not_listed_twice() -> None:
    stored = [rec("s2", 20), rec("s1", 10)]
    merged = merged_page(stored, [rec("s2", 20), rec("new", 30)], 0, 10)
    assert ids(merged) == ["new", "s2", "s1"]
    assert merged[1] is stored[0]  # the store's copy, not the recent one


def test_on_equal_start_the_stored_record_comes_first() -> None:
    # So a stored record just beyond a full page, recent too, can never push into it.
    stored = [rec("s2", 20), rec("s1", 10)]
    assert ids(merged_page(stored, [rec("t", 10)], 0, 2)) == ["s2", "s1"]


def test_the_store_window_starts_early_by_the_records_it_lacks() -> None:
    assert store_window(ListQuery("ns1", skip=10, limit=5), 3) == (7, 8)
    assert store_window(ListQuery("ns1", skip=2, limit=5), 3) == (0, 7)
    assert store_window(ListQuery("ns1", skip=0, limit=5), 0) == (0, 5)


def test_stored_ids_leave_out_missing_and_deleted_documents() -> None:
    rows = [
        {"key": "ns1/a", "id": "ns1/a", "value": {"rev": "1-a"}},
        {"key": "ns1/b", "error": "not_found"},
        {"key": "ns1/c", "id": "ns1/c", "value": {"rev": "2-b", "deleted": True}},
    ]
    assert stored_ids(rows) == {"ns1/a"}


# -- with a store ------------------------------------------------------------------


def test_with_nothing_recent_the_store_answers_alone_as_before() -> None:
    store = Store([rec("s2", 20), rec("s1", 10)])
    assert page(store, ListQuery("ns1", skip=1, limit=30), []) == ["s1"]
    (call,) = store.calls
    assert (call.body["skip"], call.body["limit"]) == (1, 30)


def test_at_skip_zero_one_store_query_the_usual_one_is_enough() -> None:
    store = Store([rec("s2", 20), rec("s1", 10)])
    assert page(store, ListQuery("ns1", limit=2), [rec("s2", 20), rec("new", 30)]) == ["new", "s2"]
    (call,) = store.calls
    assert call.path.endswith("/_find") and (call.body["skip"], call.body["limit"]) == (0, 2)


def test_other_namespaces_recent_records_never_show() -> None:
    store = Store([rec("s1", 10), rec("t1", 15, ns="ns2")])
    recent = [rec("t2", 30, ns="ns2"), rec("new", 20)]
    assert page(store, ListQuery("ns1"), recent) == ["new", "s1"]
    assert page(store, ListQuery("ns2"), recent) == ["t2", "t1"]


def test_the_name_filter_applies_to_recent_records() -> None:
    store = Store([rec("s1", 10), rec("o1", 12, name="other")])
    recent = [rec("new", 20), rec("o2", 30, name="other")]
    assert page(store, ListQuery("ns1", "hello"), recent) == ["new", "s1"]
    assert page(store, ListQuery("ns1", "other"), recent) == ["o2", "o1"]


def test_skip_counts_recent_records_not_yet_stored_and_only_those() -> None:
    stored = [rec(f"s{i}", i * 10) for i in range(1, 6)]  # s5 (newest) .. s1
    recent = [rec("s5", 50), rec("new", 60)]  # s5 is stored already, new is not
    store = Store(stored)
    assert page(store, ListQuery("ns1", skip=1, limit=2), recent) == ["s5", "s4"]
    assert page(store, ListQuery("ns1", skip=2, limit=2), recent) == ["s4", "s3"]
    # The usual page, which of the recent records the store holds, the page from one earlier.
    assert [c.path.rsplit("/", 1)[-1] for c in store.calls[:3]] == ["_find", "_all_docs", "_find"]
    assert store.calls[1].body == {"keys": ["ns1/new", "ns1/s5"]}
    assert (store.calls[2].body["skip"], store.calls[2].body["limit"]) == (0, 3)


@pytest.mark.parametrize("seed", range(8))
def test_every_page_is_the_page_of_the_store_and_the_recent_records_together(seed: int) -> None:
    rng = random.Random(seed)
    starts = rng.sample(range(1, 10_000), 60)
    everything = [
        rec(f"a{i:02d}", start, ns=rng.choice(["ns1", "ns1", "ns2"]), name=rng.choice(["hello", "bye"]))
        for i, start in enumerate(starts)
    ]
    newest = sorted(everything, key=lambda d: d["start"], reverse=True)
    pending = newest[: rng.randint(0, 8)]  # the sink is behind by the newest few, some of them
    pending = [d for d in pending if rng.random() < 0.7]
    stored = [d for d in everything if d not in pending]
    recent = pending + rng.sample(stored, 15)  # the waiter's cache also holds stored records
    store = Store(stored)
    for ns in ("ns1", "ns2"):
        for name in (None, "hello"):
            for skip in (0, 1, 3, 7, 20):
                for limit in (1, 4, 30):
                    query = ListQuery(ns, name, skip=skip, limit=limit)
                    truth = [d for d in newest if query.admits(d)][skip : skip + limit]
                    assert page(store, query, recent) == ids(truth), (ns, name, skip, limit)


# -- the route ---------------------------------------------------------------------


class FakeAuth:
    async def namespace_for(self, header: str | None) -> str:
        return "ns1"


class FakeWaiter:
    def __init__(self, records: list[Doc]) -> None:
        self.records = records

    def recent_records(self, namespace: str) -> list[Doc]:
        return [r for r in self.records if r["namespace"] == namespace]


def test_the_route_lists_what_the_gateway_just_answered() -> None:
    gateway = Gateway(Settings(), auth=FakeAuth())  # type: ignore[arg-type]
    store = Store([rec("s1", 10), rec("o1", 12, name="other")])
    gateway.db.call = store.call  # type: ignore[method-assign]
    gateway.intake.waiter = FakeWaiter([rec("new", 20), rec("theirs", 30, ns="ns2")])  # type: ignore[assignment]
    path = "/api/v1/namespaces/_/activations"
    listed, named, docs = asyncio.run(
        ask(
            [
                ("GET", path, {"params": {"limit": "50"}}),
                ("GET", path, {"params": {"name": "ns1/hello"}}),
                ("GET", path, {"params": {"docs": "true", "limit": "1"}}),
            ],
            gateway,
        )
    )
    assert listed.status_code == 200 and ids(listed.json()) == ["new", "o1", "s1"]
    assert "response" not in listed.json()[0] and listed.json()[0]["namespace"] == "ns1"
    assert ids(named.json()) == ["new", "s1"]
    (full,) = docs.json()
    assert full["response"] == {"result": {"n": 20}} and "_id" not in full
