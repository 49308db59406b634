"""A real gateway app on a free local port, without its Kafka, Redis or health start-up:
for the unit tests of answers that need none of them."""

from __future__ import annotations

from typing import Any

import httpx
from aiohttp import web

from gleaner.settings import Settings
from streams.gateway.app import Gateway


async def ask(
    requests: list[tuple[str, str, dict[str, Any]]], gateway: Gateway | None = None
) -> list[httpx.Response]:
    """Serve ``gateway`` (a plain one by default) on a free port and send ``requests``."""
    gateway = gateway or Gateway(Settings())
    db = gateway.db  # its own client, closed at the end even when a test swapped ``call``
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
        await db.aclose()
