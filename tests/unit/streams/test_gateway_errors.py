"""The gateway's one table from errors to HTTP statuses, its reading backwards by the
CLI's client, and the middleware that answers with it in OpenWhisk's error JSON."""

from __future__ import annotations

import asyncio
import inspect

import httpx
from aiohttp import web

import gleaner.errors as errors
from composer import CompositionError
from gleaner.errors import (
    BadRequest,
    Conflict,
    ContainerError,
    CouchDBError,
    DagError,
    DockerError,
    EventTooLarge,
    Forbidden,
    FunctionError,
    GleanerError,
    InvalidInput,
    InvalidLimits,
    KafkaError,
    MalformedEvent,
    NotFound,
    PayloadTooLarge,
    RedisError,
    ServiceError,
    SettingsError,
    StackError,
    Unauthorized,
)
from gleaner.gateway_client import ApiError
from invoker_agent.cgroup_resize import CgroupResizeError
from invoker_agent.proxy_client import InitError
from streams.gateway.app import openwhisk_errors
from streams.gateway.errors import HTTP_STATUS, status_of
from streams.payloads import ForeignReference
from streams.replay.trace import TraceError

# What each class answered before the statuses left gleaner/errors.py (its http_status).
BEFORE = {
    GleanerError: 500,
    SettingsError: 500,
    StackError: 500,
    BadRequest: 400,
    MalformedEvent: 400,
    EventTooLarge: 400,
    InvalidLimits: 400,
    PayloadTooLarge: 413,
    NotFound: 404,
    Conflict: 409,
    Unauthorized: 401,
    Forbidden: 403,
    ServiceError: 503,
    KafkaError: 503,
    CouchDBError: 503,
    RedisError: 503,
    DockerError: 503,
}


def _classes_of_gleaner_errors() -> set[type[GleanerError]]:
    return {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, GleanerError) and cls.__module__ == errors.__name__
    }


def test_every_error_class_has_its_own_row_in_the_table() -> None:
    defined = _classes_of_gleaner_errors()
    assert len(defined) == 21 and set(HTTP_STATUS) == defined


def test_statuses_are_what_they_were_for_every_class_that_had_one() -> None:
    assert {cls: HTTP_STATUS[cls] for cls in BEFORE} == BEFORE
    assert status_of(EventTooLarge("big")) == 400 and status_of(StackError("redis", "down")) == 500


def test_the_new_families_answer_as_their_members_did() -> None:
    # InvalidInput and DagError: 400 as BadRequest was; a function's failure: OpenWhisk's 502.
    assert (HTTP_STATUS[InvalidInput], HTTP_STATUS[DagError]) == (400, 400)
    assert (HTTP_STATUS[FunctionError], HTTP_STATUS[ContainerError]) == (502, 502)
    assert status_of(ContainerError("killed", oom_killed=True)) == 502  # not 503: nothing to retry


def test_a_dag_error_is_400_without_being_a_bad_request() -> None:
    error = CompositionError("unknown action(s): 'nope'", where="composition.components[1]")
    assert not isinstance(error, BadRequest) and isinstance(error, DagError)
    assert status_of(error) == 400


def test_errors_defined_elsewhere_answer_as_their_nearest_ancestor_in_the_table() -> None:
    assert status_of(ForeignReference("not yours")) == 400
    assert status_of(TraceError(3, "why")) == 400
    assert status_of(InitError("syntax error")) == 502
    assert status_of(CgroupResizeError("gone")) == 503
    assert status_of(ApiError(404, {"error": "x"})) == 500  # a client's error is never the gateway's


def test_only_platform_errors_are_transient() -> None:
    transient = {cls for cls in _classes_of_gleaner_errors() if cls.transient}
    assert transient == {ServiceError, KafkaError, CouchDBError, RedisError, DockerError}
    assert errors.is_transient(RedisError("down")) and not errors.is_transient(KeyError("x"))
    assert not errors.is_transient(ContainerError("killed", oom_killed=True))
    assert not errors.is_transient(MalformedEvent("bad"))


def test_the_clients_api_error_says_whether_to_retry() -> None:
    gone = ApiError(404, {"error": "The requested resource does not exist.", "code": "c" * 32})
    assert gone.status == 404 and not gone.transient
    assert str(gone) == "The requested resource does not exist. (HTTP 404)"
    away = ApiError(503, {"error": "couchdb: connection refused"})
    assert away.transient and not ApiError(502, {"error": "action failed"}).transient


async def _answers(raising: list[GleanerError]) -> list[httpx.Response]:
    async def fail(request: web.Request) -> web.StreamResponse:
        raise raising[int(request.match_info["n"])]

    app = web.Application(middlewares=[openwhisk_errors])
    app.router.add_get("/fail/{n}", fail)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10) as client:
            return [await client.get(f"/fail/{n}") for n in range(len(raising))]
    finally:
        await runner.cleanup()


def test_the_middleware_answers_each_error_with_its_status_in_openwhisk_json() -> None:
    raising: list[GleanerError] = [
        CompositionError("the composition is not acyclic: a -> b -> a"),
        NotFound(),
        RedisError("connection refused"),
        ContainerError("killed", oom_killed=True),
        PayloadTooLarge("The request content exceeds the maximum allowed 10 bytes."),
    ]
    answers = asyncio.run(_answers(raising))
    assert [a.status_code for a in answers] == [400, 404, 503, 502, 413]
    for answer, error in zip(answers, raising, strict=True):
        body = answer.json()
        assert set(body) == {"error", "code"} and len(body["code"]) == 32
        assert body["error"] == (str(error) or "The requested resource does not exist.")
