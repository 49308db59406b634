"""Shared pieces of the embedded stack: part status, address parsing and
detached processes tracked by pid files.

Convention for every process the stack starts: it runs in its own session (so
it outlives the CLI that started it and can be stopped as a group), writes
stdout/stderr to ``state_dir/logs/<part>.log`` and its pid goes to
``state_dir/run/<part>.pid``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gleaner.errors import StackError
from gleaner.settings import Settings

State = Literal["up", "down", "external"]

# Hosts the embedded stack owns; any other address names an external service.
EMBEDDED_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})

LOG_TAIL_LINES = 20
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True, slots=True)
class PartStatus:
    part: str
    state: State
    address: str
    pid: int | None
    detail: str


def is_embedded_host(host: str | None) -> bool:
    return (host or "").lower() in EMBEDDED_HOSTS


def split_host_port(hostport: str, default_port: int) -> tuple[str, int]:
    """``"h:p"`` / ``"[v6]:p"`` / ``"h"`` -> (host, port)."""
    hostport = hostport.strip()
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest.lstrip(":")
    elif hostport.count(":") == 1:
        host, _, port = hostport.partition(":")
    else:
        host, port = hostport, ""
    try:
        return host, int(port) if port else default_port
    except ValueError as exc:
        raise StackError("settings", f"bad port in address {hostport!r}") from exc


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """A cheap TCP probe, so health checks do not make clients log connect errors."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --- files -------------------------------------------------------------------


def run_dir(settings: Settings) -> Path:
    return settings.state_dir / "run"


def log_dir(settings: Settings) -> Path:
    return settings.state_dir / "logs"


def pid_file(settings: Settings, part: str) -> Path:
    return run_dir(settings) / f"{part}.pid"


def log_file(settings: Settings, part: str) -> Path:
    return log_dir(settings) / f"{part}.log"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    # Some tools colour their logs (Tansu does); escapes only garble a message.
    tail = _ANSI.sub("", text).splitlines()[-lines:]
    return "\n".join(tail) if tail else "(log is empty)"


# --- processes ---------------------------------------------------------------


def _cmdline(pid: int) -> list[str]:
    # Right after exec (Popen has returned) the new argv can read as empty for a
    # moment; retry briefly rather than take a fresh process for a dead one.
    for _ in range(20):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return []
        if raw:
            return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
        time.sleep(0.01)
    return []


def cmdline_text(pid: int) -> str:
    return " ".join(_cmdline(pid))


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def process_matches(pid: int, marker: str) -> bool:
    """The pid is alive and its command line still contains ``marker``.

    The marker check keeps a recycled pid (a stale pid file after a reboot or
    session end) from being mistaken for our process, or worse, killed.
    """
    if _is_zombie(pid):  # also true when the pid is gone
        return False
    argv = _cmdline(pid)
    return bool(argv) and marker in " ".join(argv)


def read_pid(settings: Settings, part: str, marker: str) -> int | None:
    """The live pid of ``part``; a pid file naming a dead process is removed."""
    path = pid_file(settings, part)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    if process_matches(pid, marker):
        return pid
    with contextlib.suppress(OSError):
        path.unlink()
    return None


def spawn(
    settings: Settings,
    part: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` detached, logging to the part's log file, and record its pid."""
    run_dir(settings).mkdir(parents=True, exist_ok=True)
    log_dir(settings).mkdir(parents=True, exist_ok=True)
    log = log_file(settings, part)
    with log.open("ab") as fh:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        fh.write(f"--- {stamp} gleaner starts: {' '.join(argv)}\n".encode())
        fh.flush()
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the CLI; stoppable as a group
                env=dict(env) if env is not None else None,
                cwd=cwd,
                close_fds=True,
            )
        except OSError as exc:
            raise StackError(part, f"cannot start {argv[0]}: {exc}") from exc
    pid_file(settings, part).write_text(f"{proc.pid}\n")
    return proc


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group ``pid`` leads, then SIGKILL after ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Reap it if it is our child, otherwise it would linger as a zombie.
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            if not process_matches(pid, ""):
                return
            time.sleep(0.05)


def stop_part(settings: Settings, part: str, marker: str, timeout: float = 10.0) -> int | None:
    """Stop ``part`` if this project started it (pid file); return the pid stopped."""
    pid = read_pid(settings, part, marker)
    if pid is not None:
        stop_pid(pid, timeout)
    with contextlib.suppress(OSError):
        pid_file(settings, part).unlink()
    return pid


class StillStarting(Exception):
    """Raised by a probe whose service answers that it is busy starting (e.g. Redis
    loading a large dataset): the wait goes on past its timeout, up to STARTING_LIMIT_S."""


STARTING_LIMIT_S = 600.0  # a store that is still loading after 10 min is stuck, not slow


def wait_healthy(
    settings: Settings,
    part: str,
    check: Callable[[], str | None],
    *,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    interval: float = 0.1,
    starting_limit: float = STARTING_LIMIT_S,
) -> str:
    """Poll ``check`` (returns a detail when healthy, None when not yet) until it
    passes; fail early if ``proc`` exits, and on timeout, with the log tail. While the
    probe raises :class:`StillStarting`, the timeout is pushed back (the service is
    alive and working), but never past ``starting_limit`` from the start."""
    began = time.monotonic()
    deadline = began + timeout
    last_error = ""
    while True:
        try:
            detail = check()
        except StillStarting as exc:
            detail, last_error = None, f"still starting: {exc}"
            deadline = max(deadline, min(time.monotonic() + timeout, began + starting_limit))
        except Exception as exc:  # any other probe failure just means "not yet"
            detail, last_error = None, f"{type(exc).__name__}: {exc}"
        if detail is not None:
            return detail
        if proc is not None and proc.poll() is not None:
            raise StackError(
                part,
                f"process exited with code {proc.returncode}; "
                f"log {log_file(settings, part)}:\n{log_tail(log_file(settings, part))}",
            )
        if time.monotonic() >= deadline:
            why = f" (last probe: {last_error})" if last_error else ""
            raise StackError(
                part,
                f"not healthy after {timeout:.0f} s{why}; "
                f"log {log_file(settings, part)}:\n{log_tail(log_file(settings, part))}",
            )
        time.sleep(interval)
