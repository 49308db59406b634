"""Gleaner's one exception tree. Third-party errors are wrapped at the boundary
module that talks to the external system (``raise ... from exc``).

    GleanerError
    ├── SettingsError            bad configuration
    ├── StackError               embedded stack could not start (names the part)
    ├── BadRequest               invalid user input (HTTP 400)
    │   ├── MalformedEvent       an event that cannot be decoded (-> dead letter)
    │   │   └── EventTooLarge    an event it caused is above the Kafka size limit
    │   └── InvalidLimits        allocation / timeout outside the allowed range
    ├── PayloadTooLarge          body above the configured limit (HTTP 413)
    ├── NotFound                 unknown action / activation / namespace (HTTP 404)
    ├── Conflict                 entity exists and overwrite was not asked (HTTP 409)
    ├── Unauthorized             missing or wrong API key (HTTP 401)
    ├── Forbidden                key not allowed in that namespace (HTTP 403)
    └── ServiceError             an external system failed
        ├── KafkaError
        ├── CouchDBError
        ├── RedisError
        └── DockerError
            └── ContainerError   a container died, timed out or was OOM-killed
"""

from __future__ import annotations


class GleanerError(Exception):
    """Base of every error Gleaner raises on purpose."""

    http_status = 500


class SettingsError(GleanerError):
    pass


class StackError(GleanerError):
    def __init__(self, part: str, reason: str) -> None:
        super().__init__(f"{part}: {reason}")
        self.part = part
        self.reason = reason


class BadRequest(GleanerError):
    http_status = 400


class MalformedEvent(BadRequest):
    pass


class EventTooLarge(MalformedEvent):
    """Producing an event failed for its size: the source event is dead-lettered."""


class InvalidLimits(BadRequest):
    pass


class PayloadTooLarge(GleanerError):
    http_status = 413


class NotFound(GleanerError):
    http_status = 404


class Conflict(GleanerError):
    http_status = 409


class Unauthorized(GleanerError):
    http_status = 401


class Forbidden(GleanerError):
    http_status = 403


class ServiceError(GleanerError):
    http_status = 503


class KafkaError(ServiceError):
    pass


class CouchDBError(ServiceError):
    pass


class RedisError(ServiceError):
    pass


class DockerError(ServiceError):
    pass


class ContainerError(DockerError):
    """The container running an activation failed (crash, OOM kill, timeout)."""

    def __init__(self, message: str, *, oom_killed: bool = False, timed_out: bool = False) -> None:
        super().__init__(message)
        self.oom_killed = oom_killed
        self.timed_out = timed_out
