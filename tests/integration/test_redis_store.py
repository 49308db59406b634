"""The Redis adapter's atomic steps against the real Redis of the stack."""

from __future__ import annotations

import uuid

import pytest

from gleaner.redis_store import RedisStore
from gleaner.settings import Settings

pytestmark = pytest.mark.integration


def test_replace_if_equal_sets_only_while_the_key_holds_what_was_read(stack_up: Settings) -> None:
    store = RedisStore(stack_up)
    key = f"gleaner:test:cas:{uuid.uuid4().hex}"
    try:
        store.set(key, b"running:i0:x", 60)
        assert store.replace_if_equal(key, b"running:i0:x", b"running:i1:y", 60)
        assert store.get(key) == b"running:i1:y"
        assert not store.replace_if_equal(key, b"running:i0:x", b"running:i2:z", 60)  # changed since
        assert store.get(key) == b"running:i1:y"
        store.delete(key)
        assert not store.replace_if_equal(key, b"running:i1:y", b"running:i2:z", 60)  # gone
        assert store.get(key) is None
    finally:
        store.delete(key)
        store.close()
