"""HTTP helpers shared by the gateway's routes: OpenWhisk-shaped answers and
checked query parameters and bodies."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gleaner.errors import BadRequest, PayloadTooLarge


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def error_response(message: str, status: int, code: str) -> web.Response:
    return json_response({"error": message, "code": code}, status)


MAX_JSON_DEPTH = 200  # orjson writes at most 255 levels; deeper input would fail later, as a 500
MAX_INT = 2**53 - 1  # the largest integer every JSON reader agrees on
MAX_LIST = 200  # the most entries one list page answers


def json_depth(value: Any) -> int:
    """How deeply ``value`` nests (iteratively: a deep value must not blow the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def int_param(request: web.Request, name: str, default: int, lo: int = 0, hi: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"The query parameter '{name}' must be an integer, got {raw!r}") from exc
    top = MAX_INT if hi is None else hi
    if value < lo or value > top:
        raise BadRequest(f"The query parameter '{name}' must be between {lo} and {top}")
    return value


def flag(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise BadRequest(f"The query parameter '{name}' must be true or false")
    return raw == "true"


async def json_body(request: web.Request, limit: int, *, allow_empty: bool = True) -> Any:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(
            f"The request content was {request.content_length} bytes, "
            f"above the maximum allowed {limit} bytes."
        )
    raw = await request.read()
    if len(raw) > limit:
        raise PayloadTooLarge(f"The request content exceeds the maximum allowed {limit} bytes.")
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadRequest("The request content was malformed: empty body.")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The request content was malformed: {exc}") from exc
    if json_depth(value) > MAX_JSON_DEPTH:
        raise BadRequest(f"The request content nests deeper than {MAX_JSON_DEPTH} levels.")
    return value
