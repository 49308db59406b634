"""The real embedded stack, brought up once per test session.

``deploy.stack.up`` is idempotent: a stack that already runs (``gleaner up``)
is reused. Tests use their own namespace so they never touch a user's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from deploy import stack
from deploy.images import ensure_runtime_image
from gleaner.couchdb import ACTIVATIONS, CouchDB
from gleaner.gateway_client import OpenWhiskClient, Target
from gleaner.settings import Settings, load_settings
from gleaner.subjects import ensure_subject

TEST_NAMESPACE = "gleaner-test"
TEST_AUTH = f"{uuid.UUID(int=1)}:{'k' * 64}"


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def stack_up(settings: Settings) -> Settings:
    stack.up(settings, progress=False)
    return settings


@pytest.fixture(scope="session")
def runtime_image(settings: Settings) -> str:
    return ensure_runtime_image(settings, progress=False)


@pytest.fixture(scope="session")
def couch(stack_up: Settings) -> Iterator[CouchDB]:
    db = CouchDB(stack_up)
    ensure_subject(db, TEST_NAMESPACE, TEST_AUTH)
    yield db
    db.close()


@pytest.fixture(scope="session")
def ow(stack_up: Settings, couch: CouchDB) -> Iterator[OpenWhiskClient]:
    client = OpenWhiskClient(Target(stack_up.api_host, TEST_AUTH))
    yield client
    client.close()


@pytest.fixture()
def unique() -> str:
    return uuid.uuid4().hex[:8]


def wait_for(fn: Callable[[], Any], timeout_s: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def stored_record(couch: CouchDB, activation_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """The record as CouchDB holds it (written by the record sink)."""
    return wait_for(
        lambda: couch.get_doc(ACTIVATIONS, f"{TEST_NAMESPACE}/{activation_id}"),
        timeout_s,
        f"record {activation_id} in CouchDB",
    )
