"""Which documents exist, in one ``_all_docs`` request (the keys in a POST body, as
CouchDB and pouchdb-server take them): missing and deleted rows do not count."""

from __future__ import annotations

from gleaner.couchdb import ACTIVATIONS, existing_ids
from tests.unit.couch_fake import FakeCouch


def test_the_rows_of_documents_count_and_missing_or_deleted_ones_do_not():
    rows = [
        {"id": "ns/a", "key": "ns/a", "value": {"rev": "1-x"}},
        {"key": "ns/b", "error": "not_found"},
        {"id": "ns/c", "key": "ns/c", "value": {"rev": "2-y", "deleted": True}, "doc": None},
    ]
    assert existing_ids(rows) == {"ns/a"}


def test_existing_asks_once_for_all_the_ids_and_not_at_all_for_none():
    couch = FakeCouch()
    db = couch.settings.db(ACTIVATIONS)
    couch.store.dbs[db] = {"ns/a": {"_id": "ns/a", "_rev": "1-x"}}
    assert couch.existing(ACTIVATIONS, ["ns/a", "ns/b"]) == {"ns/a"}
    (call,) = couch.store.calls
    assert (call.method, call.path, call.body) == ("POST", f"/{db}/_all_docs", {"keys": ["ns/a", "ns/b"]})
    assert couch.existing(ACTIVATIONS, []) == set() and len(couch.store.calls) == 1
