"""``POST .../dags/{name}`` in process, with a fake key check, a fake CouchDB and a fake
producer: the ``profile_cpu`` query parameter reaches the ``dag.request`` event, and a
bad one is answered 400 in OpenWhisk's error JSON, nothing produced."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from gleaner.couchdb import Call
from gleaner.settings import Settings
from streams.events import DagRequest
from streams.gateway.app import Gateway
from tests.unit.streams.gateway_server import ask as serve

PATH = "/api/v1/namespaces/_/dags/skewed"


class FakeAuth:
    async def namespace_for(self, header: str | None) -> str:
        return "ns1"


class FakeCouch:
    async def call(self, call: Call) -> Any:
        assert call.method == "GET", call
        return {"_id": "ns1/skewed", "_rev": "1-a", "name": "skewed", "namespace": "ns1"}


class FakeData:
    threshold = 1 << 30  # every input fits inline


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def produce(self, topic: str, value: bytes, key: str | None = None) -> None:
        self.sent.append((topic, value))


async def ask(params: list[dict[str, str]]) -> tuple[list[httpx.Response], list[DagRequest]]:
    gateway = Gateway(Settings(), auth=FakeAuth())  # type: ignore[arg-type]
    gateway.db.call = FakeCouch().call  # type: ignore[method-assign]
    gateway.intake.data = FakeData()  # type: ignore[assignment]
    producer = FakeProducer()
    gateway.intake.producer = producer  # type: ignore[assignment]
    gateway.intake.waiter = object()  # type: ignore[assignment]  # non-blocking: never asked
    answers = await serve([("POST", PATH, {"params": p, "json": {"n": 1}}) for p in params], gateway)
    return answers, [DagRequest.from_dict(orjson.loads(value)) for _, value in producer.sent]


def test_profile_cpu_goes_on_the_profile_request() -> None:
    (sweep, plain), events = asyncio.run(
        ask([{"profile": "true", "profile_cpu": "0.5"}, {"profile": "true"}])
    )
    assert sweep.status_code == plain.status_code == 202, sweep.text
    assert [(e.profile, e.profile_cpu) for e in events] == [(True, 0.5), (True, None)]


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"profile": "true", "profile_cpu": "x"}, "must be a positive number of cores, got 'x'"),
        ({"profile": "true", "profile_cpu": ""}, "must be a positive number of cores"),
        ({"profile": "true", "profile_cpu": "0"}, "must be a positive number of cores"),
        ({"profile": "true", "profile_cpu": "-1"}, "must be a positive number of cores"),
        ({"profile": "true", "profile_cpu": "nan"}, "must be a positive number of cores"),
        ({"profile": "true", "profile_cpu": "inf"}, "must be a positive number of cores"),
        ({"profile_cpu": "1"}, "only allowed with 'profile=true'"),
        ({"profile": "false", "profile_cpu": "1"}, "only allowed with 'profile=true'"),
    ],
)
def test_a_bad_profile_cpu_is_a_400_in_openwhisk_json(params: dict[str, str], match: str) -> None:
    (answer,), events = asyncio.run(ask([params]))
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert set(body) == {"error", "code"} and match in body["error"]
    assert events == []
