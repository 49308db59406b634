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
