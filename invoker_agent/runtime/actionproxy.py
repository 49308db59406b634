#!/usr/bin/env python3
"""Gleaner's in-container action server: the OpenWhisk runtime protocol over HTTP/1.1.

``POST /init`` loads the action (Python source, or a base64 zip with ``__main__.py``),
``POST /run`` calls its ``main(args)`` with stdout/stderr captured at the file-descriptor
level, ``GET /ping`` answers readiness. Standard library only: this file is copied into
the runtime image and started as the container's PID 1 (``python3 -u actionproxy.py``).

Only its invoker may drive it: the invoker passes a per-container secret in the
``__GLEANER_PROXY_TOKEN`` environment variable at container creation. The proxy reads it
once at start-up, keeps only its sha256, and wipes it from the environment (and from the
process's initial environment block, which ``/proc/<pid>/environ`` shows) before any user
code runs. Every route but ``GET /ping`` needs ``Authorization: Bearer <token>``; anything
else gets 403. A second ``/init`` gets 403 too, as in OpenWhisk.

Latency: every response (status line, headers, body) leaves in one ``sendall`` on a
``TCP_NODELAY`` socket. Writing headers and body separately costs ~44 ms per call
(Nagle against the client's delayed ACK); one send costs well under a millisecond.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import builtins
import contextlib
import ctypes
import glob
import hashlib
import hmac
import io
import json
import os
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import types
import zipfile
from typing import Any

DEFAULT_LOG_LIMIT = 10 * 1024 * 1024
FINISHED_KEPT = 16  # finished answers kept for an invoker taking over from a crashed one
MAX_HEADER_BYTES = 64 * 1024
DRAIN_TIMEOUT_S = 10.0
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 502: "Bad Gateway"}
TOKEN_ENV = "__GLEANER_PROXY_TOKEN"  # invoker_agent/docker_engine.py sets it
# Run-time metadata passed as __OW_<KEY> environment variables for one run (OpenWhisk's
# /run fields; its Python launcher copies them the same way). __OW_API_HOST is in the
# container's environment from its creation; a run may still override it.
OW_KEYS = ("namespace", "action_name", "action_version", "activation_id", "deadline", "api_host", "api_key")


# --------------------------------------------------------------------------- log capture
MAX_LINE_BYTES = 64 * 1024  # longer lines are split, as Docker's log drivers do


class LogCapture:
    """The lines of one call, with OpenWhisk's byte limit."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = max(0, int(limit_bytes))
        self.sentinel = b"XXX_GLEANER_END_OF_ACTIVATION_" + secrets.token_hex(8).encode() + b"_XXX"
        self.lines: list[str] = []
        self.used = 0
        self.truncated = False
        self._lock = threading.Lock()

    def __enter__(self) -> LogCapture:
        _flush_std()
        for stream in _streams():
            stream.attach(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _flush_std()
        streams = _streams()
        for stream in streams:
            stream.detach(self)
        for stream in streams:
            stream.drained.wait(DRAIN_TIMEOUT_S)
        if self.truncated:
            note = (
                f"Logs were truncated because the total bytes size exceeds the limit of {self.limit} bytes."
            )
            self.append("stderr", note, time.time_ns(), force=True)

    def append(self, stream: str, text: str, stamp_ns: int, force: bool = False) -> None:
        size = len(text.encode("utf-8", "replace"))
        with self._lock:
            if not force:
                if self.truncated or self.used + size > self.limit:
                    self.truncated = True
                    return
                self.used += size
            self.lines.append(f"{_stamp(stamp_ns)} {stream}: {text}")


class CapturedStream:
    """fd 1 or 2, pointed at a pipe while a call runs.

    Working at the fd level (not ``sys.stdout``) also captures child processes, threads
    and C code. The pipe and its reader thread live as long as the server (starting them
    per call costs ~0.3 ms). At the end of a call the fd is restored and a per-call
    sentinel is written into our own write end; the reader stops collecting at it, so a
    child that lingers with the pipe open cannot hold the answer back. Output arriving
    between calls goes to the original fd (the container's log).
    """

    def __init__(self, fd: int, name: str) -> None:
        self.fd = fd
        self.name = name
        self.original = os.dup(fd)
        self.read_end, self.write_end = os.pipe()
        self.capture: LogCapture | None = None
        self.drained = threading.Event()
        threading.Thread(target=self._loop, name=f"capture-{name}", daemon=True).start()

    def attach(self, capture: LogCapture) -> None:
        self.drained.clear()
        self.capture = capture
        os.dup2(self.write_end, self.fd)

    def detach(self, capture: LogCapture) -> None:
        os.dup2(self.original, self.fd)
        os.write(self.write_end, capture.sentinel + b"\n")

    def _loop(self) -> None:
        buf = bytearray()
        while chunk := os.read(self.read_end, 65536):
            now = time.time_ns()
            buf += chunk
            start = 0
            while (nl := buf.find(b"\n", start)) >= 0:
                self._line(bytes(buf[start:nl]), now)
                start = nl + 1
            del buf[:start]
            capture = self.capture
            keep = len(capture.sentinel) if capture else 0
            if len(buf) > MAX_LINE_BYTES + keep:
                self._line(bytes(buf[: len(buf) - keep]), now)
                del buf[: len(buf) - keep]

    def _line(self, line: bytes, now: int) -> None:
        capture = self.capture
        if capture is None:
            os.write(self.original, line + b"\n")
            return
        if line.endswith(capture.sentinel):
            if len(line) > len(capture.sentinel):
                capture.append(self.name, _decode(line[: -len(capture.sentinel)]), now)
            self.capture = None
            self.drained.set()
            return
        capture.append(self.name, _decode(line), now)


_STREAMS: list[CapturedStream] = []
_STREAMS_LOCK = threading.Lock()


def _streams() -> list[CapturedStream]:
    with _STREAMS_LOCK:
        if not _STREAMS:
            _STREAMS.extend([CapturedStream(1, "stdout"), CapturedStream(2, "stderr")])
        return _STREAMS


def _stamp(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1000:06d}Z"


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").rstrip("\r")


_LIBC: Any = None


def _flush_std() -> None:
    """Flush Python's and C's stdio buffers so nothing crosses the capture boundary."""
    global _LIBC
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    try:
        if _LIBC is None:
            _LIBC = ctypes.CDLL(None)
        _LIBC.fflush(None)
    except (OSError, AttributeError):
        pass


# --------------------------------------------------------------------------- the action
class Action:
    """The one action this process serves. One activation at a time (concurrency 1)."""

    def __init__(self) -> None:
        self.main: Any = None
        self.started_init = False
        self.lock = threading.Lock()
        self.running = False  # inside the action's main right now
        # The last answers by activation id: an invoker that took over from a crashed
        # one asks here before running the activation again (``GET /result/<id>``).
        self.finished: dict[str, tuple[int, str]] = {}

    def init(self, body: Any) -> tuple[int, str]:
        with self.lock:
            if self.started_init:
                return _reply(403, {"error": "Cannot initialize the action more than once."})
            value = body.get("value") if isinstance(body, dict) else None
            if not isinstance(value, dict) or not isinstance(value.get("code"), str) or not value["code"]:
                return _reply(502, {"error": "Missing main/no code to execute."})
            self.started_init = True
            for key, val in (value.get("env") or {}).items():
                os.environ[str(key)] = val if isinstance(val, str) else json.dumps(val)
            capture = LogCapture(DEFAULT_LOG_LIMIT)
            with capture:
                error = self._load(value)
            if error is not None:
                self.started_init = False  # a failed init may be retried, as in OpenWhisk
                return _reply(502, {"error": error, "logs": capture.lines})
            return _reply(200, {"ok": True, "logs": capture.lines})

    def _load(self, value: dict[str, Any]) -> str | None:
        entry = value.get("main") or "main"
        workdir = tempfile.mkdtemp(prefix="action-")
        path = os.path.join(workdir, "__main__.py")
        if value.get("binary"):
            try:
                data = base64.b64decode(value["code"], validate=False)
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    archive.extractall(workdir)
            except (binascii.Error, zipfile.BadZipFile, ValueError, OSError) as exc:
                return f"Invalid zip file: {type(exc).__name__}: {exc}"
            if not os.path.isfile(path):
                return "Invalid zip file: it has no __main__.py at its top level."
            sys.path[:0] = sorted(
                glob.glob(os.path.join(workdir, "virtualenv", "lib", "python3*", "site-packages"))
            )
            sys.path.insert(0, workdir)
            with open(path, encoding="utf-8", errors="replace") as fh:
                source = fh.read()
        else:
            source = value["code"]
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(source)
        # Relative paths of the action (its own files, what it writes) resolve in its own
        # directory under /tmp, the one writable place of a hardened container.
        os.chdir(workdir)
        previous_main = sys.modules.get("__main__")
        module = types.ModuleType("__main__")
        module.__file__ = path
        module.__builtins__ = builtins  # type: ignore[attr-defined]
        # The action *is* __main__: multiprocessing and pickle find its functions there.
        sys.modules["__main__"] = module
        try:
            exec(compile(source, path, "exec"), module.__dict__)
        except SyntaxError as exc:
            traceback.print_exc()
            _restore_main(previous_main)
            return f"Invalid action source: SyntaxError: {exc}"
        except BaseException as exc:
            traceback.print_exc()
            _restore_main(previous_main)
            return f"Action failed to initialize: {type(exc).__name__}: {exc}"
        fn = getattr(module, entry, None)
        if not callable(fn):
            _restore_main(previous_main)
            return f"Action entrypoint '{entry}' is not a function."
        self.main = fn
        return None

    def run(self, body: Any) -> tuple[int, str]:
        with self.lock:
            if self.main is None:
                return _reply(502, {"error": "Cannot invoke an uninitialized action."})
            if not isinstance(body, dict):
                return _reply(400, {"error": "The run request must be a JSON object."})
            args = body.get("value", {})
            if not isinstance(args, dict):
                return _reply(400, {"error": "The action arguments ('value') must be a JSON object."})
            limit = body.get("log_limit_bytes") or DEFAULT_LOG_LIMIT
            saved_env = _set_ow_env(body)
            capture = LogCapture(int(limit))
            result: Any = None
            error: str | None = None
            try:
                with capture:
                    self.running = True
                    try:
                        result = self.main(args)
                    except BaseException as exc:
                        traceback.print_exc()
                        error = f"An error has occurred: {type(exc).__name__}: {exc}"
                    finally:
                        self.running = False
            finally:
                _restore_env(saved_env)
        answer = self._answer(result, error, capture.lines)
        activation_id = body.get("activation_id")
        if isinstance(activation_id, str):
            self.finished[activation_id] = answer
            while len(self.finished) > FINISHED_KEPT:
                self.finished.pop(next(iter(self.finished)))
        return answer

    @staticmethod
    def _answer(result: Any, error: str | None, logs: list[str]) -> tuple[int, str]:
        if error is None and not isinstance(result, dict):
            error = "The action did not return a dictionary."
        if error is None:
            try:
                payload = json.dumps({"result": result, "logs": logs}, ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError) as exc:
                error = f"The action returned a value that is not JSON serializable: {exc}"
            else:
                return 200, payload
        return _reply(502, {"error": error, "logs": logs})

    def result(self, activation_id: str) -> tuple[int, str]:
        kept = self.finished.get(activation_id)
        if kept is None:
            return _reply(404, {"error": f"No finished run of {activation_id} here."})
        status, payload = kept
        return 200, json.dumps({"status": status, "answer": json.loads(payload)})


def _restore_main(previous: Any) -> None:
    if previous is not None:
        sys.modules["__main__"] = previous


def _set_ow_env(body: dict[str, Any]) -> dict[str, str | None]:
    saved: dict[str, str | None] = {}
    for key in OW_KEYS:
        if key in body and body[key] is not None:
            name = "__OW_" + key.upper()
            saved[name] = os.environ.get(name)
            os.environ[name] = str(body[key])
    return saved


def _restore_env(saved: dict[str, str | None]) -> None:
    for name, old in saved.items():
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


# --------------------------------------------------------------------------- HTTP/1.1
class BadRequestError(Exception):
    pass


def read_request(conn: socket.socket, buf: bytearray) -> tuple[str, str, dict[str, str], bytes] | None:
    """Read one request from ``conn``; leftover bytes stay in ``buf``. None on clean EOF."""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        if len(buf) > MAX_HEADER_BYTES:
            raise BadRequestError("request headers too large")
        chunk = conn.recv(65536)
        if not chunk:
            if buf:
                raise BadRequestError("connection closed mid-request")
            return None
        buf += chunk
    head = bytes(buf[:end]).decode("latin-1")
    del buf[: end + 4]
    request_line, *header_lines = head.split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3:
        raise BadRequestError(f"malformed request line: {request_line!r}")
    method, target, version = parts
    headers = {"_version": version}
    for line in header_lines:
        name, sep, val = line.partition(":")
        if sep:
            headers[name.strip().lower()] = val.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        raise BadRequestError("chunked request bodies are not supported")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError as exc:
        raise BadRequestError("bad Content-Length") from exc
    while len(buf) < length:
        chunk = conn.recv(max(65536, length - len(buf)))
        if not chunk:
            raise BadRequestError("connection closed mid-body")
        buf += chunk
    body = bytes(buf[:length])
    del buf[:length]
    return method, target.split("?", 1)[0], headers, body


def _reply(status: int, payload: dict[str, Any]) -> tuple[int, str]:
    return status, json.dumps(payload, ensure_ascii=False)


def send_response(conn: socket.socket, status: int, text: str, keep_alive: bool) -> None:
    body = text.encode("utf-8", "surrogatepass")
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    conn.sendall(head.encode("latin-1") + body)  # one send: see the module docstring


# --------------------------------------------------------------------------- caller check
class Gate:
    """Who may drive this proxy: whoever shows the token the invoker gave the container.

    Only a digest is kept, so the plain token is not left in this process's objects
    for the action's code (which runs in this process) to find."""

    def __init__(self, token: str | None) -> None:
        self.digest = _digest(token) if token else None

    def allows(self, authorization: str) -> bool:
        if self.digest is None:  # started without a token: nobody is the invoker
            return False
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not given:
            return False
        return hmac.compare_digest(_digest(given.strip()), self.digest)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def take_token(environ: dict[str, str] | None = None) -> str | None:
    """Read the invoker's token once and remove every trace of it from the environment:
    ``os.environ`` (which child processes and the action see) and the initial
    environment block of this process (``/proc/self/environ``, ``/proc/1/environ``)."""
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV)
    if environ is None:
        _wipe_initial_environ(TOKEN_ENV)  # before the pop: getenv finds it only while it is set
    env.pop(TOKEN_ENV, None)
    return token or None


def _wipe_initial_environ(name: str) -> None:
    """Overwrite the value of ``name`` in the process's initial environment block.

    ``os.environ.pop`` unsets the variable for libc, but the kernel keeps showing the
    original bytes at ``/proc/<pid>/environ`` for as long as the process lives; libc's
    ``getenv`` points right at them."""
    try:
        libc = ctypes.CDLL(None)
        libc.getenv.restype = ctypes.c_void_p
        address = libc.getenv(name.encode())
        if address:
            ctypes.memset(address, ord("x"), len(ctypes.string_at(address)))
    except (OSError, AttributeError):
        pass


UNAUTHORIZED = "This action proxy answers its invoker only."


def dispatch(action: Action, method: str, path: str, body: bytes) -> tuple[int, str]:
    if path == "/ping" and method in ("GET", "HEAD"):
        return _reply(200, {"ok": True})
    if path.startswith("/result/") and method == "GET":
        return action.result(path[len("/result/") :])
    if method != "POST" or path not in ("/init", "/run"):
        return _reply(404, {"error": f"No route for {method} {path}"})
    try:
        parsed = json.loads(body) if body else {}
    except ValueError as exc:
        return _reply(400, {"error": f"The request body is not valid JSON: {exc}"})
    return action.init(parsed) if path == "/init" else action.run(parsed)


CALLER_GONE_EXIT = 70


class CallerWatch:
    """While ``/run`` runs, watch its connection: if the invoker that asked is
    gone (its socket closed: crashed, killed) while the function still runs,
    end the container at once. The invoker's restart runs the activation
    again; letting this run finish too would run the function twice. A run
    that had finished keeps its answer for the invoker that takes over."""

    def __init__(self, conn: socket.socket, action: Action, interval_s: float = 0.05) -> None:
        self._conn = conn
        self._action = action
        self._interval = interval_s
        self._done = threading.Event()
        threading.Thread(target=self._loop, name="caller-watch", daemon=True).start()

    def stop(self) -> None:
        self._done.set()

    def _loop(self) -> None:
        import select

        while not self._done.wait(self._interval):
            try:
                readable, _, _ = select.select([self._conn], [], [], 0)
                if not readable:
                    continue
                peek = self._conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                peek = b""
            if self._done.is_set():
                return
            if peek == b"" and self._action.running:  # EOF: nobody waits for this run any more
                _flush_std()
                os._exit(CALLER_GONE_EXIT)
            # Finished already (its answer stays in ``Action.finished`` for a new invoker),
            # or the caller sent more bytes (pipelining): nothing more to watch for.
            return


def handle_connection(action: Action, conn: socket.socket, gate: Gate) -> None:
    buf = bytearray()
    try:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            try:
                request = read_request(conn, buf)
            except BadRequestError as exc:
                send_response(conn, *_reply(400, {"error": str(exc)}), keep_alive=False)
                return
            if request is None:
                return
            method, path, headers, body = request
            connection = headers.get("connection", "").lower()
            keep_alive = connection != "close" and (
                headers["_version"] != "HTTP/1.0" or connection == "keep-alive"
            )
            allowed = gate.allows(headers.pop("authorization", ""))
            if not allowed and not (path == "/ping" and method in ("GET", "HEAD")):
                send_response(conn, *_reply(403, {"error": UNAUTHORIZED}), keep_alive=keep_alive)
                if not keep_alive:
                    return
                continue
            watch = CallerWatch(conn, action) if path == "/run" else None
            try:
                status, payload = dispatch(action, method, path, body)
            except Exception as exc:  # a bug here must not kill the server
                status, payload = _reply(502, {"error": f"Action proxy error: {type(exc).__name__}: {exc}"})
            finally:
                if watch is not None:
                    watch.stop()
            send_response(conn, status, payload, keep_alive)
            if not keep_alive:
                return
    except OSError:
        pass  # the client went away
    finally:
        conn.close()


def serve(host: str, port: int, gate: Gate) -> None:
    action = Action()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen(128)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle_connection, args=(action, conn, gate), daemon=True).start()


# --------------------------------------------------------------------------- PID 1
def run_as_init(child_main: Any) -> None:
    """As PID 1, fork the server and stay behind as a tiny init (like tini).

    PID 1 inherits every orphaned process and must reap it, but reaping in the server
    would steal exit statuses from the action's own children. The init forwards
    SIGTERM/SIGINT and exits with the server, so the container dies with it (OOM kill).
    """
    pid = os.fork()
    if pid == 0:
        child_main()
        os._exit(0)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    while True:
        try:
            wpid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        if wpid == pid:
            code = os.waitstatus_to_exitcode(status)
            os._exit(128 - code if code < 0 else code)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Gleaner action proxy (OpenWhisk runtime protocol)")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=int(os.environ.get("__OW_PROXY_PORT", "8080")))
    opts = parser.parse_args(argv)
    # Before the fork: neither the init nor the server keeps the token in its environment.
    gate = Gate(take_token())
    if os.getpid() == 1:
        run_as_init(lambda: serve(opts.host, opts.port, gate))
    else:
        serve(opts.host, opts.port, gate)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
