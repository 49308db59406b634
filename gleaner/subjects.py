"""Namespaces and their API keys, in CouchDB's subjects database.

A credential is OpenWhisk's ``uuid:key``. The uuid names the key; the key is
the secret and is stored only as a salted PBKDF2-HMAC-SHA256 hash.

Documents (``settings.db("subjects")``):
  namespace  _id = <namespace>      {"type": "namespace", "namespace", "created"}
  key        _id = "key/<uuid>"     {"type": "key", "role": "tenant"|"admin", "namespace",
                                     "uuid", "algo", "iterations", "salt", "hash", "created"}

Namespace names cannot hold "/", so the two kinds of ids never collide, and a
key is found by its uuid with one GET (no index, no scan).

Verification is hot (every request, every Kafka event), so a verified
credential is cached in memory by a SHA-256 digest of it (never the plain
text). A cache entry is trusted for ``REVALIDATE_S``; after that the key
document is read again (one GET by id, no hashing while its revision is
unchanged). A revoked or rotated key therefore stops working within
``REVALIDATE_S`` in every process, whatever cache it sits in.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import threading
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gleaner.couchdb import SUBJECTS, AsyncCouchDB, Call, CouchDB
from gleaner.credentials import new_secret
from gleaner.errors import BadRequest, Conflict, NotFound

ALGO = "pbkdf2_sha256"
# API keys are 256-bit random secrets, so the work factor guards only against
# a stolen database with weak, hand-chosen keys; 50k is ~40 ms once per key and process.
ITERATIONS = 50_000
REVALIDATE_S = 0.5
TENANT = "tenant"
ADMIN = "admin"
ADMIN_NAMESPACE = "_admin"  # never a valid namespace name: CouchDB ids may not start with "_"
_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_@.-]{0,255}$")
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,512}$")  # printable ASCII, no spaces or colons split it
_CACHE_MAX = 10_000


# --- pure logic ---------------------------------------------------------------------------------


def key_id(uuid: str) -> str:
    return f"key/{uuid}"


def check_namespace(name: str) -> str:
    if not isinstance(name, str) or not _NAMESPACE_RE.match(name):
        raise BadRequest(
            f"namespace {name!r} is invalid: 1-256 characters, letters, digits, '_', '@', '.', '-', "
            "starting with a letter or digit"
        )
    return name


def check_uuid(value: str) -> str:
    try:
        return str(uuidlib.UUID(value))
    except (ValueError, AttributeError, TypeError) as exc:
        raise BadRequest(f"key uuid {value!r} is not a UUID") from exc


def parse_credential(credential: str) -> tuple[str, str] | None:
    """``uuid:key`` -> (canonical uuid, key), or None when it cannot be a credential."""
    if not isinstance(credential, str):
        return None
    user, sep, key = credential.partition(":")
    if not sep or not _KEY_RE.match(key):
        return None
    try:
        return str(uuidlib.UUID(user)), key
    except ValueError:
        return None


def hash_key(key: str, salt: bytes, iterations: int = ITERATIONS) -> str:
    return hashlib.pbkdf2_hmac("sha256", key.encode(), salt, iterations).hex()


def key_doc(
    namespace: str, uuid: str, key: str, *, role: str = TENANT, now_ms: int | None = None
) -> dict[str, Any]:
    salt = secrets.token_bytes(16)
    return {
        "_id": key_id(uuid),
        "type": "key",
        "role": role,
        "namespace": namespace,
        "uuid": uuid,
        "algo": ALGO,
        "iterations": ITERATIONS,
        "salt": salt.hex(),
        "hash": hash_key(key, salt),
        "created": now_ms if now_ms is not None else int(time.time() * 1000),
    }


def verify_key(doc: dict[str, Any], key: str) -> bool:
    """Does ``key`` match the stored hash? A document without one (plain text) never matches."""
    try:
        if doc.get("algo") != ALGO:
            return False
        salt = bytes.fromhex(doc["salt"])
        iterations = int(doc["iterations"])
        stored = str(doc["hash"])
    except (KeyError, ValueError, TypeError):
        return False
    if not 1_000 <= iterations <= 10_000_000:
        return False
    return hmac.compare_digest(hash_key(key, salt, iterations), stored)


def credential_digest(credential: str) -> bytes:
    """The cache key: a fast digest, so plain credentials never sit in memory as dict keys."""
    return hashlib.sha256(credential.encode()).digest()


@dataclass(slots=True)
class Verified:
    uuid: str
    namespace: str
    role: str
    rev: str
    checked_at: float


class CredentialCache:
    """Verified credentials by digest; an entry is fresh for ``revalidate_s``."""

    def __init__(
        self, revalidate_s: float = REVALIDATE_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.revalidate_s = revalidate_s
        self.clock = clock
        self._entries: dict[bytes, Verified] = {}
        self._lock = threading.Lock()

    def fresh(self, digest: bytes) -> Verified | None:
        hit = self._entries.get(digest)
        if hit is not None and self.clock() - hit.checked_at < self.revalidate_s:
            return hit
        return None

    def known(self, digest: bytes) -> Verified | None:
        return self._entries.get(digest)

    def put(self, digest: bytes, entry: Verified) -> None:
        with self._lock:
            if len(self._entries) >= _CACHE_MAX:
                self._entries.clear()  # bounded; a full cache only costs re-verification
            self._entries[digest] = entry

    def drop(self, digest: bytes) -> None:
        with self._lock:
            self._entries.pop(digest, None)

    def drop_uuid(self, uuid: str) -> None:
        with self._lock:
            for digest in [d for d, e in self._entries.items() if e.uuid == uuid]:
                del self._entries[digest]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _is_key_doc(doc: dict[str, Any] | None, uuid: str) -> bool:
    return doc is not None and doc.get("type") == "key" and doc.get("uuid") == uuid and "namespace" in doc


def _unchanged(
    cache: CredentialCache, digest: bytes, uuid: str, doc: dict[str, Any] | None
) -> Verified | None:
    """The cached entry refreshed, if ``doc`` is the very revision it was verified against."""
    if doc is None or not _is_key_doc(doc, uuid):
        cache.drop(digest)
        return None
    known = cache.known(digest)
    if known is not None and known.rev == doc.get("_rev"):
        known.checked_at = cache.clock()  # same revision: no need to hash again
        return known
    return None


def _resolve(
    cache: CredentialCache, digest: bytes, uuid: str, key: str, doc: dict[str, Any] | None
) -> Verified | None:
    """Given the key document just read, the verified entry (cached) or None (dropped)."""
    known = _unchanged(cache, digest, uuid, doc)
    if known is not None:
        return known
    if doc is None or not _is_key_doc(doc, uuid) or not verify_key(doc, key):
        cache.drop(digest)
        return None
    entry = Verified(
        uuid, str(doc["namespace"]), str(doc.get("role", TENANT)), str(doc["_rev"]), cache.clock()
    )
    cache.put(digest, entry)
    return entry


# One cache per process: the Kafka consumers and CLI share it; the gateway may bring its own.
DEFAULT_CACHE = CredentialCache()


def _look_up(
    cache: CredentialCache, credential: str
) -> tuple[tuple[str, str], bytes, Verified | None] | None:
    """(uuid and key, the cache digest, a fresh cached entry) of a well-formed credential."""
    parsed = parse_credential(credential)
    if parsed is None:
        return None
    digest = credential_digest(credential)
    return parsed, digest, cache.fresh(digest)


def _tenant_namespace(entry: Verified | None) -> str | None:
    return entry.namespace if entry is not None and entry.role == TENANT else None


def verify(db: CouchDB, credential: str, cache: CredentialCache = DEFAULT_CACHE) -> Verified | None:
    looked = _look_up(cache, credential)
    if looked is None:
        return None
    (uuid, key), digest, hit = looked
    if hit is not None:
        return hit
    return _resolve(cache, digest, uuid, key, db.get_doc(SUBJECTS, key_id(uuid)))


def authenticate(db: CouchDB, credential: str, cache: CredentialCache = DEFAULT_CACHE) -> str | None:
    """``uuid:key`` -> the namespace it belongs to, or None (unknown, revoked, wrong or admin key).

    Raises CouchDBError when the subjects database cannot be read.
    """
    return _tenant_namespace(verify(db, credential, cache))


async def verify_async(
    db: AsyncCouchDB, credential: str, cache: CredentialCache = DEFAULT_CACHE
) -> Verified | None:
    looked = _look_up(cache, credential)
    if looked is None:
        return None
    (uuid, key), digest, hit = looked
    if hit is not None:
        return hit
    doc = await db.call(db.get(SUBJECTS, key_id(uuid)))
    known = _unchanged(cache, digest, uuid, doc)
    if known is not None or doc is None:
        return known
    # Hashing takes tens of milliseconds: off the event loop.
    return await asyncio.to_thread(_resolve, cache, digest, uuid, key, doc)


async def authenticate_async(
    db: AsyncCouchDB, credential: str, cache: CredentialCache = DEFAULT_CACHE
) -> str | None:
    return _tenant_namespace(await verify_async(db, credential, cache))


# --- namespaces and keys (the admin's operations) ------------------------------------------------

_ALL = 10_000  # subjects are few; one page holds them


def _now_ms() -> int:
    return int(time.time() * 1000)


def _namespace_doc(namespace: str) -> dict[str, Any]:
    return {"_id": namespace, "type": "namespace", "namespace": namespace, "created": _now_ms()}


def _keys_of(db: CouchDB, namespace: str) -> list[dict[str, Any]]:
    return db.find_docs(SUBJECTS, {"type": "key", "namespace": namespace}, limit=_ALL)


def _namespace(db: CouchDB, namespace: str) -> dict[str, Any]:
    doc = db.get_doc(SUBJECTS, check_namespace(namespace))
    if doc is None or doc.get("type") != "namespace":
        raise NotFound(f"namespace {namespace!r} does not exist")
    return doc


def _issue(db: CouchDB, namespace: str, uuid: str, *, rev: str | None = None, role: str = TENANT) -> str:
    secret = new_secret()
    doc = key_doc(namespace, uuid, secret, role=role)
    if rev is not None:
        doc["_rev"] = rev
    db.call(db.put(SUBJECTS, doc))
    return f"{uuid}:{secret}"


def create_namespace(db: CouchDB, namespace: str) -> str:
    """Create ``namespace`` with its first key; return that key (``uuid:key``), shown once."""
    check_namespace(namespace)
    try:
        db.call(db.put(SUBJECTS, _namespace_doc(namespace)))
    except Conflict as exc:
        raise Conflict(f"namespace {namespace!r} already exists") from exc
    return _issue(db, namespace, str(uuidlib.uuid4()))


def list_namespaces(db: CouchDB) -> list[dict[str, Any]]:
    """Every namespace with how many keys it has, by name."""
    names = db.find_docs(SUBJECTS, {"type": "namespace"}, limit=_ALL, fields=["namespace", "created"])
    keys = db.find_docs(SUBJECTS, {"type": "key", "role": TENANT}, limit=_ALL, fields=["namespace"])
    counts: dict[str, int] = {}
    for key in keys:
        counts[str(key.get("namespace"))] = counts.get(str(key.get("namespace")), 0) + 1
    out = [
        {"namespace": d["namespace"], "keys": counts.get(d["namespace"], 0), "created": d.get("created")}
        for d in names
    ]
    return sorted(out, key=lambda d: str(d["namespace"]))


def delete_namespace(db: CouchDB, namespace: str) -> list[str]:
    """Delete ``namespace`` and revoke its keys (its actions and records stay, unreachable);
    return the revoked uuids."""
    doc = _namespace(db, namespace)
    keys = _keys_of(db, namespace)
    gone = [{"_id": k["_id"], "_rev": k["_rev"], "_deleted": True} for k in keys]
    db.bulk_docs(SUBJECTS, [*gone, {"_id": doc["_id"], "_rev": doc["_rev"], "_deleted": True}])
    return [str(k["uuid"]) for k in keys]


def list_keys(db: CouchDB, namespace: str) -> list[dict[str, Any]]:
    """The keys of ``namespace`` (uuid and creation time; secrets are never stored)."""
    _namespace(db, namespace)
    keys = [{"uuid": k["uuid"], "created": k.get("created")} for k in _keys_of(db, namespace)]
    return sorted(keys, key=lambda k: str(k["uuid"]))


def create_key(db: CouchDB, namespace: str) -> str:
    """A further key for ``namespace``; return it (``uuid:key``), shown once."""
    _namespace(db, namespace)
    return _issue(db, namespace, str(uuidlib.uuid4()))


def _key_of(db: CouchDB, namespace: str, uuid: str) -> dict[str, Any]:
    _namespace(db, namespace)
    doc = db.get_doc(SUBJECTS, key_id(check_uuid(uuid)))
    if not _is_key_doc(doc, check_uuid(uuid)) or doc is None or doc["namespace"] != namespace:
        raise NotFound(f"namespace {namespace!r} has no key {uuid}")
    return doc


def rotate_key(db: CouchDB, namespace: str, uuid: str) -> str:
    """A new secret for key ``uuid`` (the uuid stays); the old secret stops working."""
    doc = _key_of(db, namespace, uuid)
    return _issue(db, namespace, doc["uuid"], rev=doc["_rev"])


def revoke_key(db: CouchDB, namespace: str, uuid: str) -> None:
    doc = _key_of(db, namespace, uuid)
    db.call(db.delete(SUBJECTS, doc["_id"], doc["_rev"]))


# --- idempotent set-up (gleaner up, tests, benchmarks) -------------------------------------------


def _ensure_key(db: CouchDB, namespace: str, credential: str, role: str) -> None:
    parsed = parse_credential(credential)
    if parsed is None:
        raise BadRequest("a key must be 'uuid:key' with a UUID and a printable key")
    uuid, key = parsed
    existing = db.get_doc(SUBJECTS, key_id(uuid))
    if (
        _is_key_doc(existing, uuid)
        and existing is not None
        and existing["namespace"] == namespace
        and existing.get("role", TENANT) == role
        and verify_key(existing, key)
    ):
        return
    doc = key_doc(namespace, uuid, key, role=role)
    if existing is not None:
        doc["_rev"] = existing["_rev"]
    db.call(db.put(SUBJECTS, doc))


def ensure_namespace(db: CouchDB, namespace: str) -> None:
    existing = db.get_doc(SUBJECTS, check_namespace(namespace))
    if existing is not None and existing.get("type") == "namespace":
        return
    doc = _namespace_doc(namespace)
    if existing is not None:
        doc["_rev"] = existing["_rev"]  # an earlier version's plain-text subject: replaced
    db.call(db.put(SUBJECTS, doc))


def ensure_subject(db: CouchDB, namespace: str, credential: str) -> None:
    """Make ``namespace`` exist and accept the key ``uuid:key`` (stored hashed; idempotent)."""
    ensure_namespace(db, namespace)
    _ensure_key(db, namespace, credential, TENANT)


def ensure_admin(db: CouchDB, credential: str) -> None:
    """Make ``credential`` the platform admin's one key (it is no tenant's): an earlier admin
    key (a deleted or replaced secrets file) stops working."""
    _ensure_key(db, ADMIN_NAMESPACE, credential, ADMIN)
    current = key_id(check_uuid(credential.partition(":")[0]))
    others = [
        d for d in db.find_docs(SUBJECTS, {"type": "key", "role": ADMIN}, limit=_ALL) if d["_id"] != current
    ]
    if others:
        db.bulk_docs(SUBJECTS, [{"_id": d["_id"], "_rev": d["_rev"], "_deleted": True} for d in others])


def revoke_uuid(db: CouchDB, uuid: str) -> bool:
    """Revoke the key ``uuid`` in whatever namespace holds it; False when there is none."""
    doc = db.get_doc(SUBJECTS, key_id(check_uuid(uuid)))
    if doc is None:
        return False
    db.call(db.delete(SUBJECTS, doc["_id"], doc["_rev"]))
    return True


def migrate_plain_subjects(db: CouchDB) -> list[str]:
    """Re-hash an earlier version's subjects (``{"_id": ns, "uuid", "key"}`` in plain text):
    each becomes a namespace and a hashed key, and the plain key is gone. Return the namespaces."""
    legacy = db.find_docs(SUBJECTS, {"key": {"$exists": True}}, limit=_ALL)
    moved: list[str] = []
    for doc in legacy:
        namespace, uuid, key = doc.get("namespace") or doc["_id"], doc.get("uuid"), doc.get("key")
        credential = f"{uuid}:{key}"
        new = _namespace_doc(str(namespace))
        new["_id"], new["_rev"] = doc["_id"], doc["_rev"]
        if _NAMESPACE_RE.match(str(namespace)) and parse_credential(credential) is not None:
            _ensure_key(db, str(namespace), credential, TENANT)
        db.call(db.put(SUBJECTS, new))  # the plain key is overwritten even when it was unusable
        moved.append(str(namespace))
    if moved:  # old revisions still hold the plain keys until compaction
        db.call(Call("POST", f"/{db.db(SUBJECTS)}/_compact", body={}))
    return moved
