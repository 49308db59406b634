"""The one boundary to CouchDB, over its HTTP API with httpx.

Why httpx and not a CouchDB library: the ``couchdb`` package was last released
in 2018, and the maintained alternatives are either async-only (aiocouch) or
pull in a framework (ibmcloudant). CouchDB *is* its HTTP API, so a thin client
that builds each request once and runs it sync (invoker threads) or async (the
gateway) is the smallest honest choice, and it works unchanged against
CouchDB 3 and pouchdb-server.

Databases (names get ``settings.db_prefix``):
  subjects     namespaces and their hashed API keys  _id = namespace | "key/<uuid>"  (gleaner.subjects)
  whisks       actions (OpenWhisk's entity db)     _id = "<namespace>/<name>"
  activations  activation records                  _id = "<namespace>/<activationId>"
  dags         DAG definitions (compositions)      _id = "<namespace>/<name>"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from gleaner.credentials import couchdb_login
from gleaner.errors import Conflict, CouchDBError
from gleaner.settings_sections import StoreSettings

SUBJECTS = "subjects"
WHISKS = "whisks"
ACTIVATIONS = "activations"
DAGS = "dags"

# Mango indexes each database needs for its queries (sorting needs an index in CouchDB 3).
INDEXES: dict[str, list[tuple[str, list[str]]]] = {
    WHISKS: [("by-namespace", ["namespace", "name"])],
    ACTIVATIONS: [
        ("by-namespace-start", ["namespace", "start"]),
        ("by-name-start", ["namespace", "name", "start"]),
    ],
    SUBJECTS: [("by-type", ["type", "namespace"])],
    DAGS: [("by-namespace", ["namespace", "name"])],
}


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    body: Any = None
    params: dict[str, str] | None = None
    ok_missing: bool = False  # 404 -> None instead of an error


def doc_path(db: str, doc_id: str) -> str:
    return f"/{db}/{quote(doc_id, safe='')}"


def _interpret(call: Call, status: int, content: bytes) -> Any:
    if status == 404 and call.ok_missing:
        return None
    data = orjson.loads(content) if content else None
    if status == 409:
        raise Conflict(f"document update conflict at {call.path}")
    if status >= 400:
        reason = data.get("reason", data) if isinstance(data, dict) else data
        raise CouchDBError(f"CouchDB {call.method} {call.path} -> {status}: {reason}")
    return data


def existing_ids(rows: list[dict[str, Any]]) -> set[str]:
    """The ids of ``_all_docs`` rows that are documents: not missing (``error``), not deleted."""
    return {
        row["key"]
        for row in rows
        if "error" not in row and not (row.get("value") or {}).get("deleted") and "key" in row
    }


def _auth(settings: StoreSettings) -> httpx.BasicAuth | None:
    login = couchdb_login(settings)
    return httpx.BasicAuth(*login) if login else None


class _Calls:
    """Request builders shared by the sync and async clients."""

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings

    def db(self, name: str) -> str:
        return self.settings.db(name)

    def get(self, db: str, doc_id: str, rev: str | None = None) -> Call:
        return Call(
            "GET", doc_path(self.db(db), doc_id), params={"rev": rev} if rev else None, ok_missing=True
        )

    def put(self, db: str, doc: dict[str, Any]) -> Call:
        return Call("PUT", doc_path(self.db(db), doc["_id"]), body=doc)

    def delete(self, db: str, doc_id: str, rev: str) -> Call:
        return Call("DELETE", doc_path(self.db(db), doc_id), params={"rev": rev})

    def bulk(self, db: str, docs: list[dict[str, Any]]) -> Call:
        return Call("POST", f"/{self.db(db)}/_bulk_docs", body={"docs": docs})

    def all_docs(self, db: str, doc_ids: list[str]) -> Call:
        """The rows of ``doc_ids`` (their revisions, not their bodies) in one request; CouchDB
        and pouchdb-server both take the keys in a POST body."""
        return Call("POST", f"/{self.db(db)}/_all_docs", body={"keys": doc_ids})

    def find(
        self,
        db: str,
        selector: dict[str, Any],
        *,
        sort: list[dict[str, str]] | None = None,
        limit: int = 30,
        skip: int = 0,
        fields: list[str] | None = None,
    ) -> Call:
        body: dict[str, Any] = {"selector": selector, "limit": limit, "skip": skip}
        if sort:
            body["sort"] = sort
        if fields:
            body["fields"] = fields
        return Call("POST", f"/{self.db(db)}/_find", body=body)


class CouchDB(_Calls):
    """Synchronous client (threads: invoker agent, record sink, CLI)."""

    def __init__(self, settings: StoreSettings, timeout_s: float = 10.0) -> None:
        super().__init__(settings)
        self._http = httpx.Client(base_url=settings.couchdb_url, auth=_auth(settings), timeout=timeout_s)

    def call(self, call: Call) -> Any:
        try:
            content = orjson.dumps(call.body) if call.body is not None else None
            resp = self._http.request(
                call.method,
                call.path,
                content=content,
                params=call.params,
                headers={"Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise CouchDBError(f"CouchDB at {self.settings.couchdb_url} unreachable: {exc}") from exc
        return _interpret(call, resp.status_code, resp.content)

    def get_doc(self, db: str, doc_id: str, rev: str | None = None) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.call(self.get(db, doc_id, rev))
        return result

    def bulk_docs(self, db: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call(self.bulk(db, docs))
        return result

    def existing(self, db: str, doc_ids: list[str]) -> set[str]:
        """Which of ``doc_ids`` exist in ``db``, in one request (none when there are none)."""
        if not doc_ids:
            return set()
        return existing_ids(self.call(self.all_docs(db, doc_ids))["rows"])

    def find_docs(self, db: str, selector: dict[str, Any], **kw: Any) -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = self.call(self.find(db, selector, **kw))["docs"]
        return docs

    def ensure_db(self, db: str) -> None:
        try:
            self.call(Call("PUT", f"/{self.db(db)}"))
        except Conflict:
            pass  # pouchdb-server answers 412 / CouchDB 412; see below
        except CouchDBError as exc:
            if "412" not in str(exc):
                raise

    def ensure_index(self, db: str, name: str, fields: list[str]) -> None:
        self.call(
            Call(
                "POST",
                f"/{self.db(db)}/_index",
                body={"index": {"fields": fields}, "name": name, "ddoc": name, "type": "json"},
            )
        )

    def close(self) -> None:
        self._http.close()


class AsyncCouchDB(_Calls):
    """Asynchronous client (the HTTP gateway's event loop)."""

    def __init__(self, settings: StoreSettings, timeout_s: float = 10.0) -> None:
        super().__init__(settings)
        self._http = httpx.AsyncClient(base_url=settings.couchdb_url, auth=_auth(settings), timeout=timeout_s)

    async def call(self, call: Call) -> Any:
        try:
            content = orjson.dumps(call.body) if call.body is not None else None
            resp = await self._http.request(
                call.method,
                call.path,
                content=content,
                params=call.params,
                headers={"Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise CouchDBError(f"CouchDB at {self.settings.couchdb_url} unreachable: {exc}") from exc
        return _interpret(call, resp.status_code, resp.content)

    async def aclose(self) -> None:
        await self._http.aclose()


# Only server admins may read or write Gleaner's databases (CouchDB: members; pouchdb-server too).
ADMINS_ONLY = {"admins": {"names": [], "roles": ["_admin"]}, "members": {"names": [], "roles": ["_admin"]}}


def ensure_schema(settings: StoreSettings) -> None:
    """Create the databases and Mango indexes, and close them to anyone but server admins
    (idempotent). The keys' own migration is :func:`gleaner.subjects.migrate_plain_subjects`."""
    # The embedded server's own admin: lock its databases. An external CouchDB's access is the
    # operator's (CouchDB 3 keeps new databases admin-only already).
    embedded_admin = not settings.couchdb_user and couchdb_login(settings) is not None
    db = CouchDB(settings)
    try:
        for name, indexes in INDEXES.items():
            db.ensure_db(name)
            if embedded_admin:
                db.call(Call("PUT", f"/{db.db(name)}/_security", body=ADMINS_ONLY))
            for index_name, fields in indexes:
                db.ensure_index(name, index_name, fields)
    finally:
        db.close()
