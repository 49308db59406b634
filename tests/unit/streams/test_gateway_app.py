"""The gateway app in process, without its services: what it answers before any handler needs them."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from gleaner.settings import Settings
from streams.gateway.openapi import OPENAPI_PATH, openapi_document
from tests.unit.streams.gateway_server import ask


def test_urls_and_headers_over_8kb_answer_in_openwhisk_json_not_aiohttp_text() -> None:
    url, header = asyncio.run(
        ask(
            [
                ("GET", "/ping", {"params": {"x": "a" * 9000}}),
                ("GET", "/ping", {"headers": {"X-Big": "b" * 9000}}),
            ]
        )
    )
    assert url.status_code == 414 and set(url.json()) == {"error", "code"}
    assert header.status_code == 431 and set(header.json()) == {"error", "code"}


def test_openapi_document_is_served_without_a_key() -> None:
    (doc,) = asyncio.run(ask([("GET", OPENAPI_PATH, {})]))
    assert doc.status_code == 200 and doc.headers["content-type"].startswith("application/json")
    assert doc.json()["paths"].keys() == openapi_document(Settings().gateway)["paths"].keys()


def test_requests_are_counted_by_route_template_method_and_status() -> None:
    def count(route: str, status: str) -> float:
        labels = {"route": route, "method": "GET", "status": status}
        return REGISTRY.get_sample_value("gleaner_http_requests_total", labels) or 0.0

    before = count(OPENAPI_PATH, "200"), count("unmatched", "404")
    asyncio.run(ask([("GET", OPENAPI_PATH, {}), ("GET", "/no/such/route", {})]))
    assert (count(OPENAPI_PATH, "200"), count("unmatched", "404")) == (before[0] + 1, before[1] + 1)
