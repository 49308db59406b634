"""The activation list, read-your-writes: the store's page merged with the records
this gateway has just seen complete.

The record sink writes records to CouchDB in batches, some 150-250 ms after the
completion (its poll, its batch window, the bulk write). A caller that has just
been answered (a blocking invoke, a DAG request's result) lists its activations
at once, so the list adds what the gateway's completion waiter keeps
(``CompletionWaiter.recent_records``) and the store does not show yet. Waiting
for the record before answering would instead add the sink's latency to every
blocking invoke.

The order is the store's: newest ``start`` first (OpenWhisk's); on equal
``start`` a stored record comes before a recent one. ``skip`` and ``limit``
count over the merged list. Only the records a query admits are merged: the
namespace (the caller's own, as in the store's selector), the name, ``since``
and ``upto``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gleaner.couchdb import ACTIVATIONS, AsyncCouchDB, Call

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ListQuery:
    """One ``GET .../activations``: its filters and its page (0 for ``since``/``upto``: none)."""

    namespace: str
    name: str | None = None
    since: int = 0
    upto: int = 0
    skip: int = 0
    limit: int = 30

    def selector(self) -> Doc:
        selector: Doc = {"namespace": self.namespace}
        if self.name:
            selector["name"] = self.name
        start: Doc = {"$gte": self.since} if self.since else {"$gt": None}
        if self.upto:
            start["$lte"] = self.upto
        selector["start"] = start
        return selector

    def sort(self) -> list[dict[str, str]]:
        # The same fields as an index (gleaner.couchdb.INDEXES), all descending: CouchDB needs both.
        if self.name:
            return [{"namespace": "desc"}, {"name": "desc"}, {"start": "desc"}]
        return [{"namespace": "desc"}, {"start": "desc"}]

    def admits(self, record: Doc) -> bool:
        """Whether the store's selector would match ``record``."""
        start = record.get("start")
        if not isinstance(start, int) or isinstance(start, bool):
            return False
        if record.get("namespace") != self.namespace or not isinstance(record.get("activationId"), str):
            return False
        if self.name and record.get("name") != self.name:
            return False
        return start >= self.since and (not self.upto or start <= self.upto)


def candidates(recent: Iterable[Doc], query: ListQuery, after: int | None = None) -> list[Doc]:
    """The recent records ``query`` admits that its page can show, newest first: those started
    after ``after`` (None: any), at most ``skip + limit`` (that many others come first)."""
    if after is not None:  # the cheap test first: most are older than a full page's last one
        recent = [r for r in recent if type(s := r.get("start")) is int and s > after]
    admitted = [r for r in recent if query.admits(r)]
    return heapq.nlargest(query.skip + query.limit, admitted, key=lambda r: (r["start"], r["activationId"]))


def merged_page(stored: list[Doc], recent: list[Doc], offset: int, limit: int) -> list[Doc]:
    """``[offset:offset + limit]`` of ``stored`` (a run of the store's order) merged with
    ``recent`` (newest first), without the recent records ``stored`` already holds.

    A recent record goes before a stored one only if it started later, so a stored
    record beyond the run (equal or older ``start``) can never be taken for a new one."""
    have = {d.get("activationId") for d in stored}
    fresh = [r for r in recent if r["activationId"] not in have]
    merged: list[Doc] = []
    i = j = 0
    end = offset + limit
    while len(merged) < end and (i < len(stored) or j < len(fresh)):
        if j < len(fresh) and (i == len(stored) or fresh[j]["start"] > stored[i].get("start", 0)):
            merged.append(fresh[j])
            j += 1
        else:
            merged.append(stored[i])
            i += 1
    return merged[offset:end]


def store_window(query: ListQuery, pending: int) -> tuple[int, int]:
    """(skip, limit) of the store query: ``pending`` records missing from the store may come
    before the page, so the store's run starts that many earlier (never before 0)."""
    start = max(0, query.skip - pending)
    return start, query.skip + query.limit - start


def stored_ids(rows: list[Doc]) -> set[str]:
    """Document ids an ``_all_docs`` answer found (neither missing nor deleted)."""
    return {
        r["id"]
        for r in rows
        if "error" not in r and isinstance(r.get("id"), str) and not (r.get("value") or {}).get("deleted")
    }


async def _find(db: AsyncCouchDB, query: ListQuery, skip: int, limit: int) -> list[Doc]:
    found = await db.call(db.find(ACTIVATIONS, query.selector(), sort=query.sort(), limit=limit, skip=skip))
    docs: list[Doc] = found["docs"]
    return docs


async def list_page(db: AsyncCouchDB, query: ListQuery, recent: Iterable[Doc]) -> list[Doc]:
    """The page of records ``query`` asks for, with ``recent`` ones merged in.

    The store's page comes first, as it always did. Only recent records that started
    after its last one (when it is full) can enter it; at ``skip=0`` the page itself
    tells which of them the store holds. Past ``skip``, those missing from the store
    also move the page: ``_all_docs`` says which, and the store's run is read again
    from that many records earlier."""
    docs = await _find(db, query, query.skip, query.limit)
    last = docs[-1].get("start") if len(docs) == query.limit else None
    fresh = candidates(recent, query, after=last if isinstance(last, int) else None)
    if not fresh:
        return docs
    if not query.skip:
        return merged_page(docs, fresh, 0, query.limit)
    shown = {d.get("activationId") for d in docs}
    unsure = [r for r in fresh if r["activationId"] not in shown]
    if not unsure:
        return docs
    keys = [f"{query.namespace}/{r['activationId']}" for r in unsure]
    answer = await db.call(Call("POST", f"/{db.db(ACTIVATIONS)}/_all_docs", body={"keys": keys}))
    have = stored_ids(answer.get("rows", []))
    pending = [r for r, key in zip(unsure, keys, strict=True) if key not in have]
    if not pending:
        return docs
    skip, limit = store_window(query, len(pending))
    return merged_page(await _find(db, query, skip, limit), pending, query.skip - skip, query.limit)
