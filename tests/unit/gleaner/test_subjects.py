"""Namespaces and hashed keys (gleaner.subjects) against an in-memory CouchDB."""

from __future__ import annotations

import asyncio
import json

import pytest

from gleaner import credentials, subjects
from gleaner.couchdb import SUBJECTS
from gleaner.errors import BadRequest, Conflict, NotFound
from tests.unit.couch_fake import CouchStore, FakeAsyncCouch, FakeCouch

UUID1 = "00000000-0000-0000-0000-000000000001"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def db() -> FakeCouch:
    return FakeCouch()


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def cache(clock: Clock) -> subjects.CredentialCache:
    return subjects.CredentialCache(clock=clock)


def stored_text(db: FakeCouch) -> str:
    return json.dumps(db.store.dbs)


# --- hashing and parsing ------------------------------------------------------------------------


def test_a_key_is_stored_as_a_salted_hash_never_in_plain_text() -> None:
    doc = subjects.key_doc("ns", UUID1, "s3cret-key")
    assert "s3cret-key" not in json.dumps(doc)
    assert doc["algo"] == "pbkdf2_sha256" and doc["iterations"] >= 10_000 and len(doc["salt"]) == 32
    assert subjects.verify_key(doc, "s3cret-key")
    assert not subjects.verify_key(doc, "s3cret-kez") and not subjects.verify_key(doc, "")
    again = subjects.key_doc("ns", UUID1, "s3cret-key")
    assert again["salt"] != doc["salt"] and again["hash"] != doc["hash"]  # per-key salt


def test_a_plain_text_or_tampered_document_never_verifies() -> None:
    assert not subjects.verify_key({"uuid": UUID1, "key": "k"}, "k")
    doc = subjects.key_doc("ns", UUID1, "k")
    assert not subjects.verify_key({**doc, "iterations": 1}, "k")  # no cheap hash accepted
    assert not subjects.verify_key({**doc, "salt": "zz"}, "k")
    assert not subjects.verify_key({**doc, "algo": "md5"}, "k")


@pytest.mark.parametrize(
    "raw",
    ["", "nocolon", f"{UUID1}:", "not-a-uuid:key", f"{UUID1}:has space", f"{UUID1}:" + "k" * 600, None],
)
def test_what_cannot_be_a_credential_is_none(raw: str) -> None:
    assert subjects.parse_credential(raw) is None


def test_a_credential_is_parsed_to_its_canonical_uuid() -> None:
    assert subjects.parse_credential(f"{UUID1.upper()}:k:with:colons") == (UUID1, "k:with:colons")


@pytest.mark.parametrize("name", ["", "_admin", "a/b", "-x", "x" * 257, "ü", "key/x", "_design"])
def test_bad_namespace_names_are_refused(db: FakeCouch, name: str) -> None:
    with pytest.raises(BadRequest):
        subjects.create_namespace(db, name)


# --- namespaces and keys ------------------------------------------------------------------------


def test_create_authenticate_and_list(db: FakeCouch, cache: subjects.CredentialCache) -> None:
    cred = subjects.create_namespace(db, "alice")
    assert subjects.authenticate(db, cred, cache) == "alice"
    uuid, _, secret = cred.partition(":")
    assert secret not in stored_text(db)
    assert subjects.authenticate(db, f"{uuid}:wrong", cache) is None
    assert subjects.authenticate(db, f"{credentials.new_credential()}", cache) is None
    second = subjects.create_key(db, "alice")
    assert subjects.authenticate(db, second, cache) == "alice"
    assert [n["namespace"] for n in subjects.list_namespaces(db)] == ["alice"]
    assert subjects.list_namespaces(db)[0]["keys"] == 2
    assert {k["uuid"] for k in subjects.list_keys(db, "alice")} == {uuid, second.partition(":")[0]}
    with pytest.raises(Conflict):
        subjects.create_namespace(db, "alice")
    with pytest.raises(NotFound):
        subjects.create_key(db, "bob")


def test_a_revoked_key_stops_after_the_revalidation_window(
    db: FakeCouch, cache: subjects.CredentialCache, clock: Clock
) -> None:
    cred = subjects.create_namespace(db, "alice")
    assert subjects.authenticate(db, cred, cache) == "alice"
    subjects.revoke_key(db, "alice", cred.partition(":")[0])
    clock.now += subjects.REVALIDATE_S  # the cache entry is now due for a re-read
    assert subjects.authenticate(db, cred, cache) is None
    assert subjects.REVALIDATE_S < 1.0  # "within a second" on every process


def test_a_cached_key_is_reread_but_not_rehashed_while_unchanged(
    db: FakeCouch, cache: subjects.CredentialCache, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    cred = subjects.create_namespace(db, "alice")
    hashes = []
    real = subjects.hash_key
    monkeypatch.setattr(subjects, "hash_key", lambda *a: hashes.append(1) or real(*a))
    gets = lambda: sum(c.method == "GET" for c in db.store.calls)  # noqa: E731
    assert subjects.authenticate(db, cred, cache) == "alice"
    before = gets()
    assert subjects.authenticate(db, cred, cache) == "alice"  # fresh: no read at all
    assert gets() == before
    clock.now += 1
    assert subjects.authenticate(db, cred, cache) == "alice"  # stale: one read, no hash
    assert gets() == before + 1 and len(hashes) == 1


def test_rotation_keeps_the_uuid_and_stops_the_old_secret(
    db: FakeCouch, cache: subjects.CredentialCache, clock: Clock
) -> None:
    old = subjects.create_namespace(db, "alice")
    assert subjects.authenticate(db, old, cache) == "alice"
    new = subjects.rotate_key(db, "alice", old.partition(":")[0])
    assert new.partition(":")[0] == old.partition(":")[0] and new != old
    clock.now += 1
    assert subjects.authenticate(db, old, cache) is None
    assert subjects.authenticate(db, new, cache) == "alice"


def test_keys_are_managed_only_inside_their_namespace(db: FakeCouch) -> None:
    alice = subjects.create_namespace(db, "alice")
    subjects.create_namespace(db, "bob")
    with pytest.raises(NotFound):
        subjects.revoke_key(db, "bob", alice.partition(":")[0])
    with pytest.raises(NotFound):
        subjects.rotate_key(db, "bob", alice.partition(":")[0])
    with pytest.raises(BadRequest):
        subjects.revoke_key(db, "bob", "not-a-uuid")


def test_deleting_a_namespace_revokes_its_keys(
    db: FakeCouch, cache: subjects.CredentialCache, clock: Clock
) -> None:
    cred = subjects.create_namespace(db, "alice")
    extra = subjects.create_key(db, "alice")
    assert set(subjects.delete_namespace(db, "alice")) == {cred.partition(":")[0], extra.partition(":")[0]}
    clock.now += 1
    assert subjects.authenticate(db, cred, cache) is None and subjects.authenticate(db, extra, cache) is None
    assert subjects.list_namespaces(db) == []
    with pytest.raises(NotFound):
        subjects.delete_namespace(db, "alice")


def test_the_admin_key_is_no_tenant(db: FakeCouch, cache: subjects.CredentialCache) -> None:
    admin = credentials.new_credential()
    subjects.ensure_admin(db, admin)
    assert subjects.authenticate(db, admin, cache) is None
    entry = subjects.verify(db, admin, cache)
    assert entry is not None and entry.role == subjects.ADMIN
    assert subjects.list_namespaces(db) == []


def test_ensure_subject_is_idempotent_and_hashed(db: FakeCouch, cache: subjects.CredentialCache) -> None:
    cred = f"{UUID1}:{'k' * 64}"
    subjects.ensure_subject(db, "gleaner-test", cred)
    revs = {d["_id"]: d["_rev"] for d in db.store.dbs[db.db(SUBJECTS)].values()}
    subjects.ensure_subject(db, "gleaner-test", cred)
    assert {d["_id"]: d["_rev"] for d in db.store.dbs[db.db(SUBJECTS)].values()} == revs  # no rewrite
    assert "k" * 64 not in stored_text(db)
    assert subjects.authenticate(db, cred, cache) == "gleaner-test"
    other = f"{UUID1}:{'z' * 64}"
    subjects.ensure_subject(db, "gleaner-test", other)  # a new secret replaces the old
    assert subjects.authenticate(db, other, subjects.CredentialCache()) == "gleaner-test"
    assert subjects.authenticate(db, cred, subjects.CredentialCache()) is None


def test_plain_text_subjects_of_an_earlier_version_are_rehashed(
    db: FakeCouch, cache: subjects.CredentialCache
) -> None:
    name = db.db(SUBJECTS)
    db.store.dbs[name] = {
        "guest": {"_id": "guest", "_rev": "1-a", "namespace": "guest", "uuid": UUID1, "key": "plainkey"},
        "bad": {"_id": "bad", "_rev": "1-a", "namespace": "bad", "uuid": "nope", "key": "leak"},
    }
    assert subjects.authenticate(db, f"{UUID1}:plainkey", cache) is None  # never read in plain text
    assert sorted(subjects.migrate_plain_subjects(db)) == ["bad", "guest"]
    assert "plainkey" not in stored_text(db) and "leak" not in stored_text(db)
    assert subjects.authenticate(db, f"{UUID1}:plainkey", subjects.CredentialCache()) == "guest"
    assert any(c.path.endswith("/_compact") for c in db.store.calls)  # old revisions go too
    assert subjects.migrate_plain_subjects(db) == []


def test_the_async_twin_agrees_and_sees_revocation(clock: Clock) -> None:
    store = CouchStore()
    db, adb = FakeCouch(store), FakeAsyncCouch(store)
    cache = subjects.CredentialCache(clock=clock)
    cred = subjects.create_namespace(db, "alice")
    assert asyncio.run(subjects.authenticate_async(adb, cred, cache)) == "alice"
    assert asyncio.run(subjects.authenticate_async(adb, "junk", cache)) is None
    subjects.revoke_key(db, "alice", cred.partition(":")[0])
    clock.now += 1
    assert asyncio.run(subjects.authenticate_async(adb, cred, cache)) is None


def test_the_cache_drops_a_uuid_at_once(db: FakeCouch, cache: subjects.CredentialCache) -> None:
    cred = subjects.create_namespace(db, "alice")
    subjects.authenticate(db, cred, cache)
    uuid = cred.partition(":")[0]
    subjects.revoke_key(db, "alice", uuid)
    cache.drop_uuid(uuid)  # what the revoking gateway does: no wait at all there
    assert subjects.authenticate(db, cred, cache) is None


def test_only_the_latest_admin_key_works(db: FakeCouch) -> None:
    old, new = credentials.new_credential(), credentials.new_credential()
    subjects.ensure_admin(db, old)
    subjects.ensure_admin(db, new)
    assert subjects.verify(db, old, subjects.CredentialCache()) is None
    assert subjects.verify(db, new, subjects.CredentialCache()) is not None


def test_revoke_uuid_finds_the_key_in_any_namespace(db: FakeCouch) -> None:
    cred = subjects.create_namespace(db, "alice")
    assert subjects.revoke_uuid(db, cred.partition(":")[0])
    assert not subjects.revoke_uuid(db, cred.partition(":")[0])
    assert subjects.authenticate(db, cred, subjects.CredentialCache()) is None
