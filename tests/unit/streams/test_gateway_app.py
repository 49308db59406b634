"""The gateway app in process, without its services: what it answers before any handler needs them."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from aiohttp import web
from prometheus_client import REGISTRY

from gleaner.settings import Settings
from streams.gateway.app import Gateway
from streams.gateway.openapi import OPENAPI_PATH, openapi_document


async def ask(requests: list[tuple[str, str, dict[str, Any]]]) -> list[httpx.Response]:
    gateway = Gateway(Settings())
    app = gateway.app()
    app.on_startup.clear()  # no Kafka, Redis or health thread: these answers need none
    app.on_cleanup.clear()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10) as client:
            return [await client.request(method, path, **kwargs) for method, path, kwargs in requests]
    finally:
        await runner.cleanup()
        await gateway.db.aclose()


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
    assert doc.json()["paths"].keys() == openapi_document(Settings())["paths"].keys()


def test_requests_are_counted_by_route_template_method_and_status() -> None:
    def count(route: str, status: str) -> float:
        labels = {"route": route, "method": "GET", "status": status}
        return REGISTRY.get_sample_value("gleaner_http_requests_total", labels) or 0.0

    before = count(OPENAPI_PATH, "200"), count("unmatched", "404")
    asyncio.run(ask([("GET", OPENAPI_PATH, {}), ("GET", "/no/such/route", {})]))
    assert (count(OPENAPI_PATH, "200"), count("unmatched", "404")) == (before[0] + 1, before[1] + 1)
