"""Host-side client for the in-container action proxy (``invoker_agent/runtime/actionproxy.py``).

One persistent HTTP/1.1 connection per container: a warm ``/run`` round trip is well
under a millisecond on loopback or the Docker bridge, so nothing here may add a
connection setup or a Nagle stall to the hot path.

Every request carries the container's secret (``Authorization: Bearer``), given to the
container at creation (:mod:`invoker_agent.docker_engine`); the proxy answers 403 without it.
"""

from __future__ import annotations

import http.client
import select
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from gleaner.errors import ContainerError

_JSON_HEADERS = {"Content-Type": "application/json", "Connection": "keep-alive"}
# Errors meaning the connection (or the process behind it) is gone.
_DROPPED = (ConnectionError, http.client.RemoteDisconnected, http.client.IncompleteRead, BrokenPipeError)


class InitError(ContainerError):
    """``/init`` refused the action: syntax error, missing entry point, bad zip, ..."""

    def __init__(self, message: str, *, status: int = 502, logs: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.logs = logs or []


@dataclass(frozen=True, slots=True)
class RunResponse:
    ok: bool
    result: dict[str, Any] | None
    error: str | None
    logs: list[str] = field(default_factory=list)
    duration_ms: float = 0.0


class ActionProxyClient:
    def __init__(self, host: str, port: int = 8080, *, token: str = "") -> None:
        self.host = host
        self.port = port
        self._headers = dict(_JSON_HEADERS)
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._conn: http.client.HTTPConnection | None = None

    # ------------------------------------------------------------------ public API
    def wait_ready(self, timeout_s: float) -> None:
        """Poll ``GET /ping`` until the proxy answers; ContainerError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        delay = 0.002
        last: Exception | None = None
        while True:
            try:
                status, _ = self._request("GET", "/ping", None, timeout_s=1.0, retry=False)
                if status == 200:
                    return
            except (OSError, http.client.HTTPException) as exc:
                last = exc
                self.close()
            if time.monotonic() >= deadline:
                raise ContainerError(
                    f"action proxy at {self.host}:{self.port} not ready after {timeout_s:.1f}s: {last}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def init(self, *, name: str, main: str, code: str, binary: bool, env: dict[str, str]) -> None:
        body = {"value": {"name": name, "main": main or "main", "code": code, "binary": binary, "env": env}}
        try:
            status, payload = self._request("POST", "/init", body, timeout_s=120.0, retry=True)
        except TimeoutError as exc:
            self.close()
            raise ContainerError(f"/init of {name} timed out", timed_out=True) from exc
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise ContainerError(f"/init of {name}: connection to the container lost ({exc})") from exc
        if status >= 400:
            message = payload.get("error") if isinstance(payload, dict) else None
            logs = payload.get("logs") if isinstance(payload, dict) else None
            raise InitError(str(message or f"/init failed with HTTP {status}"), status=status, logs=logs)

    def run(
        self,
        *,
        args: dict[str, Any],
        namespace: str,
        action_name: str,
        activation_id: str,
        deadline_ms: int,
        timeout_s: float,
        log_limit_bytes: int,
        api_host: str | None = None,
        api_key: str | None = None,
        action_version: str | None = None,
    ) -> RunResponse:
        """Run the action once. Besides ``value``, the body carries what the proxy puts into
        the action's environment for this run as ``__OW_<KEY>`` (OpenWhisk's ``/run``
        fields); ``api_host`` only to override the container's own ``__OW_API_HOST``."""
        body: dict[str, Any] = {
            "value": args,
            "namespace": namespace,
            "action_name": action_name,
            "activation_id": activation_id,
            "deadline": str(deadline_ms),
            "log_limit_bytes": log_limit_bytes,
        }
        optional = {"api_host": api_host, "api_key": api_key, "action_version": action_version}
        body.update((k, v) for k, v in optional.items() if v)
        started = time.perf_counter()
        try:
            # Never resend a /run once it may have reached the action: it could run twice.
            status, payload = self._request("POST", "/run", body, timeout_s=timeout_s, retry=False)
        except TimeoutError as exc:
            self.close()
            raise ContainerError(
                f"activation {activation_id} exceeded its time limit of {timeout_s:.3f}s", timed_out=True
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise ContainerError(
                f"activation {activation_id}: the action's process ended abruptly ({type(exc).__name__})"
            ) from exc
        duration_ms = (time.perf_counter() - started) * 1000.0
        if not isinstance(payload, dict):
            payload = {"error": f"the action proxy answered HTTP {status} with a non-object body"}
        logs = payload.get("logs") or []
        if status == 200 and isinstance(payload.get("result"), dict):
            return RunResponse(True, payload["result"], None, logs, duration_ms)
        error = str(payload.get("error") or f"the action proxy answered HTTP {status}")
        return RunResponse(False, None, error, logs, duration_ms)

    def finished_run(self, activation_id: str, timeout_s: float = 2.0) -> RunResponse | None:
        """The answer this container kept of a finished run of ``activation_id``, if any
        (asked by an invoker taking over from one that crashed)."""
        try:
            status, payload = self._request(
                "GET", f"/result/{activation_id}", None, timeout_s=timeout_s, retry=False
            )
        except (OSError, http.client.HTTPException):
            self.close()
            return None
        if status != 200 or not isinstance(payload, dict) or not isinstance(payload.get("answer"), dict):
            return None
        answer = payload["answer"]
        logs = answer.get("logs") or []
        if payload.get("status") == 200 and isinstance(answer.get("result"), dict):
            return RunResponse(True, answer["result"], None, logs, 0.0)
        return RunResponse(False, None, str(answer.get("error") or "the action failed"), logs, 0.0)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ------------------------------------------------------------------ internals
    def _connection(self, timeout_s: float) -> http.client.HTTPConnection:
        conn = self._conn
        if conn is not None and conn.sock is not None and _peer_closed(conn.sock):
            conn.close()  # a dropped keep-alive: reconnect before sending, not after
            conn = None
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
            self._conn = conn
        if conn.sock is not None:
            conn.sock.settimeout(timeout_s)
        else:
            conn.timeout = timeout_s
        return conn

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None, *, timeout_s: float, retry: bool
    ) -> tuple[int, Any]:
        data = orjson.dumps(body) if body is not None else None
        for attempt in (0, 1):
            conn = self._connection(timeout_s)
            sent = False
            try:
                conn.request(method, path, body=data, headers=self._headers)
                sent = True
                response = conn.getresponse()
                raw = response.read()
            except _DROPPED:
                self.close()
                # Reconnect once when the request never left, or when it is safe to repeat.
                if attempt == 0 and (retry or not sent):
                    continue
                raise
            if response.will_close:
                self.close()
            try:
                return response.status, orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                return response.status, {"error": raw[:500].decode("utf-8", "replace")}
        raise AssertionError("unreachable")


def _peer_closed(sock: socket.socket) -> bool:
    """An idle keep-alive socket that is readable has been closed (or reset) by the peer."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
