import time

from gleaner.ttlcache import TTLCache


def test_loads_once_then_serves_from_cache_until_expiry():
    cache: TTLCache[str, int] = TTLCache(ttl_s=0.05)
    loads = []
    load = lambda: loads.append(1) or 7  # noqa: E731
    assert cache.get_or_load("k", load) == 7 and cache.get_or_load("k", load) == 7
    assert len(loads) == 1
    time.sleep(0.06)
    assert cache.get_or_load("k", load) == 7 and len(loads) == 2


def test_a_missing_entity_is_not_cached():
    cache: TTLCache[str, int] = TTLCache(ttl_s=10)
    assert cache.get_or_load("k", lambda: None) is None
    assert cache.get_or_load("k", lambda: 3) == 3


def test_an_expired_copy_is_served_while_the_store_is_away():
    import pytest

    from gleaner.errors import CouchDBError

    cache: TTLCache[str, int] = TTLCache(ttl_s=0.01, store_down_s=0.01)
    assert cache.get_or_load("k", lambda: 1) == 1
    time.sleep(0.02)

    def down() -> int:
        raise CouchDBError("unreachable")

    assert cache.get_or_load("k", down) == 1  # stale beats stalled
    with pytest.raises(CouchDBError):
        cache.get_or_load("never-seen", down)  # nothing to fall back on
    time.sleep(0.02)  # the re-armed copy expires too
    assert cache.get_or_load("k", lambda: 2) == 2  # back: fresh again


def test_a_stale_copy_served_once_is_re_armed_so_later_reads_do_not_wait_on_the_store():
    from gleaner.errors import CouchDBError

    cache: TTLCache[str, int] = TTLCache(ttl_s=0.05)
    cache.get_or_load("k", lambda: 1)
    time.sleep(0.06)
    calls = []

    def down() -> int:
        calls.append(1)
        raise CouchDBError("unreachable")

    assert cache.get_or_load("k", down) == 1 and cache.get_or_load("k", down) == 1
    assert len(calls) == 1


def test_after_one_failed_load_other_stale_keys_are_served_without_asking_the_store():
    from gleaner.errors import CouchDBError

    cache: TTLCache[str, int] = TTLCache(ttl_s=0.01)
    cache.get_or_load("a", lambda: 1)
    cache.get_or_load("b", lambda: 2)
    time.sleep(0.02)
    calls = []

    def down() -> int:
        calls.append(1)
        raise CouchDBError("unreachable")

    assert cache.get_or_load("a", down) == 1 and cache.get_or_load("b", down) == 2
    assert len(calls) == 1  # one wait on the store, not one per key


def test_by_revision_serves_a_seen_version_and_loads_an_unseen_one() -> None:
    from gleaner.ttlcache import ByRevision

    loads: list[str] = []
    current = {"_rev": "2-b", "v": 2}

    def load() -> dict[str, object]:
        loads.append("read")
        return current

    versions = ByRevision(max_versions=2)
    assert versions.get("ns/d", None, load) is current  # no revision carried: the current one
    assert versions.get("ns/d", "2-b", load) is current and loads == ["read"]  # seen: not read again
    assert versions.get("ns/d", "1-a", load) is current and loads == ["read", "read"]  # unseen: current
    versions.get("ns/e", None, lambda: {"_rev": "1-x"})
    versions.get("ns/f", None, lambda: {"_rev": "1-y"})  # bound 2: ns/d@2-b, the oldest, goes
    assert versions.get("ns/d", "2-b", load) is current and loads == ["read", "read", "read"]
    assert versions.get("ns/gone", "1-z", lambda: None) is None
