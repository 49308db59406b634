"""The gateway's one table from Gleaner's errors to HTTP statuses.

Errors say what failed (:mod:`gleaner.errors`); only the gateway turns them
into statuses, here. An error class not in the table answers as its nearest
ancestor that is (a :class:`composer.CompositionError` as a
:class:`~gleaner.errors.DagError`). The CLI's client reads the table backwards
to say what a status means (:func:`error_for_status`).
"""

from __future__ import annotations

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

# Every class of gleaner.errors, by family. Within a status, the first class listed
# is what that status means to a client (error_for_status).
HTTP_STATUS: dict[type[GleanerError], int] = {
    GleanerError: 500,
    SettingsError: 500,
    StackError: 500,
    BadRequest: 400,
    InvalidInput: 400,
    MalformedEvent: 400,  # an event the gateway built from the request (a bad policy, say)
    EventTooLarge: 400,
    InvalidLimits: 400,
    DagError: 400,  # the request named a DAG that cannot run
    PayloadTooLarge: 413,
    NotFound: 404,
    Conflict: 409,
    Unauthorized: 401,
    Forbidden: 403,
    ServiceError: 503,  # a store or the broker is away: try again later
    KafkaError: 503,
    CouchDBError: 503,
    RedisError: 503,
    DockerError: 503,
    FunctionError: 502,  # as OpenWhisk answers an action that failed
    ContainerError: 502,
}


def status_of(exc: GleanerError) -> int:
    """The HTTP status the gateway answers ``exc`` with: its class's, or its nearest ancestor's."""
    for cls in type(exc).__mro__:
        status = HTTP_STATUS.get(cls)
        if status is not None:
            return status
    return HTTP_STATUS[GleanerError]  # unreachable: every error descends from GleanerError
