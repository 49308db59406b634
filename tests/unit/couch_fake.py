"""An in-memory CouchDB behind the real clients: ``CouchDB.call`` is answered from a dict,
so the request building stays the real one. Revisions and conflicts act like CouchDB's."""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import unquote

from gleaner.couchdb import AsyncCouchDB, Call, CouchDB, _interpret
from gleaner.settings import Settings


def _matches(doc: dict[str, Any], selector: dict[str, Any]) -> bool:
    for field, want in selector.items():
        if isinstance(want, dict) and "$exists" in want:
            if (field in doc) != bool(want["$exists"]):
                return False
        elif doc.get(field) != want:
            return False
    return True


class CouchStore:
    def __init__(self) -> None:
        self.dbs: dict[str, dict[str, dict[str, Any]]] = {}
        self.calls: list[Call] = []
        self._revs = itertools.count(1)

    def _put(self, db: str, doc: dict[str, Any]) -> tuple[int, Any]:
        docs = self.dbs.setdefault(db, {})
        current = docs.get(doc["_id"])
        if (current["_rev"] if current else None) != doc.get("_rev"):
            return 409, {"error": "conflict", "reason": "Document update conflict."}
        if doc.get("_deleted"):
            docs.pop(doc["_id"], None)
            return 200, {"ok": True}
        stored = {**doc, "_rev": f"{next(self._revs)}-x"}
        docs[doc["_id"]] = stored
        return 201, {"ok": True, "id": doc["_id"], "rev": stored["_rev"]}

    def answer(self, call: Call) -> tuple[int, Any]:
        self.calls.append(call)
        parts = call.path.strip("/").split("/", 1)
        db, rest = parts[0], unquote(parts[1]) if len(parts) > 1 else ""
        docs = self.dbs.setdefault(db, {})
        if call.method == "POST" and rest == "_find":
            found = [d for d in docs.values() if _matches(d, call.body["selector"])]
            fields = call.body.get("fields")
            if fields:
                found = [{k: d[k] for k in fields if k in d} for d in found]
            return 200, {"docs": found[: call.body.get("limit", 25)]}
        if call.method == "POST" and rest == "_all_docs":
            rows = [
                {"id": k, "key": k, "value": {"rev": docs[k].get("_rev", "1-x")}}
                if k in docs
                else {"key": k, "error": "not_found"}
                for k in call.body["keys"]
            ]
            return 200, {"total_rows": len(docs), "offset": 0, "rows": rows}
        if call.method == "POST" and rest == "_bulk_docs":
            return 201, [self._put(db, d)[1] for d in call.body["docs"]]
        if call.method == "POST":  # _compact, _index
            return 202, {"ok": True}
        if call.method == "GET":
            doc = docs.get(rest)
            return (200, dict(doc)) if doc else (404, {"error": "not_found", "reason": "missing"})
        if call.method == "PUT":
            return self._put(db, call.body)
        if call.method == "DELETE":
            rev = (call.params or {}).get("rev")
            return self._put(db, {"_id": rest, "_rev": rev, "_deleted": True})
        raise AssertionError(f"unexpected {call}")


def _encode(call: Call, status: int, body: Any) -> Any:
    import orjson

    return _interpret(call, status, orjson.dumps(body))


class FakeCouch(CouchDB):
    def __init__(self, store: CouchStore | None = None, settings: Settings | None = None) -> None:
        super().__init__(settings or Settings())
        self.store = store or CouchStore()

    def call(self, call: Call) -> Any:
        return _encode(call, *self.store.answer(call))


class FakeAsyncCouch(AsyncCouchDB):
    def __init__(self, store: CouchStore, settings: Settings | None = None) -> None:
        super().__init__(settings or Settings())
        self.store = store

    async def call(self, call: Call) -> Any:
        return _encode(call, *self.store.answer(call))
