"""Gleaner's one exception tree, grouped by what failed (after httpx's
``_exceptions.py``). Third-party errors are wrapped at the boundary module that
talks to the external system (``raise ... from exc``).

    GleanerError                 something Gleaner raises on purpose
    ├── SettingsError            bad configuration
    ├── StackError               embedded stack could not start (names the part)
    ├── InvalidInput             input that fails the same way every time it is given
    │   ├── BadRequest           a user's request: an HTTP body or query, CLI arguments
    │   ├── PayloadTooLarge      a body above the configured limit
    │   ├── MalformedEvent       an event that cannot be decoded (-> dead letter)
    │   │   └── EventTooLarge    an event it caused is above the Kafka size limit
    │   ├── InvalidLimits        allocation / timeout outside the allowed range
    │   └── DagError             a DAG Gleaner cannot run (composer's CompositionError)
    ├── NotFound                 unknown action / activation / namespace
    ├── Conflict                 entity exists and overwrite was not asked
    ├── Unauthorized             missing or wrong API key
    ├── Forbidden                key not allowed in that namespace
    ├── ServiceError             an external system failed: TRANSIENT, worth retrying
    │   ├── KafkaError
    │   ├── CouchDBError
    │   ├── RedisError
    │   └── DockerError          the Docker engine (or the host's iptables) refused
    └── FunctionError            the function's own outcome: never retried by the platform
        └── ContainerError       its container died, timed out or was OOM-killed

Only :class:`ServiceError` is :attr:`~GleanerError.transient`: the same work may
succeed once the system is back. Everything else fails the same way again, so a
consumer dead-letters it (:func:`is_transient` decides). HTTP statuses are the
gateway's business: one table in :mod:`streams.gateway.errors`.
"""

from __future__ import annotations


class GleanerError(Exception):
    """Base of every error Gleaner raises on purpose."""

    # Worth trying the same work again later (an external system may come back).
    transient: bool = False


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the work that raised ``exc`` may succeed: only a Gleaner
    error that says so. A bug (any other exception) fails the same way again."""
    return isinstance(exc, GleanerError) and exc.transient


class SettingsError(GleanerError):
    pass


class StackError(GleanerError):
    def __init__(self, part: str, reason: str) -> None:
        super().__init__(f"{part}: {reason}")
        self.part = part
        self.reason = reason


class InvalidInput(GleanerError):
    """Input that can never be handled as it is: its sender must change it."""


class BadRequest(InvalidInput):
    """A user's request is invalid: an HTTP body or query parameter, a CLI argument."""


class PayloadTooLarge(InvalidInput):
    pass


class MalformedEvent(InvalidInput):
    """An event that cannot be decoded or is not allowed: it is dead-lettered with why."""


class EventTooLarge(MalformedEvent):
    """Producing an event failed for its size: the source event is dead-lettered."""


class InvalidLimits(InvalidInput):
    pass


class DagError(InvalidInput):
    """A DAG Gleaner cannot run: unknown actions, a cycle, a combinator it does not
    support. A domain error, not an HTTP one (:class:`composer.CompositionError`)."""


class NotFound(GleanerError):
    pass


class Conflict(GleanerError):
    pass


class Unauthorized(GleanerError):
    pass


class Forbidden(GleanerError):
    pass


class ServiceError(GleanerError):
    """An external system (Kafka, CouchDB, Redis, Docker) failed or was away."""

    transient = True


class KafkaError(ServiceError):
    pass


class CouchDBError(ServiceError):
    pass


class RedisError(ServiceError):
    pass


class DockerError(ServiceError):
    pass


class FunctionError(GleanerError):
    """The function failed on its own terms: its activation record says so. Running it
    again would not be the platform's recovery, so it is never retried as one."""


class ContainerError(FunctionError):
    """The container running an activation failed (crash, OOM kill, timeout)."""

    def __init__(self, message: str, *, oom_killed: bool = False, timed_out: bool = False) -> None:
        super().__init__(message)
        self.oom_killed = oom_killed
        self.timed_out = timed_out
