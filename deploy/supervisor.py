"""The supervisor ``gleaner up`` leaves behind: it restarts a crashed part of
the embedded stack with an exponential backoff, and writes what it did to
``run/supervisor.json`` for ``gleaner status``.

Why our own loop and not supervisord or systemd: the stack runs from the
user's state directory on machines without an init system (containers, CI),
its parts already live as detached processes with pid files that ``gleaner
up`` adopts and ``gleaner down`` stops, and supervisord backs off only on
start failures; a part that crash-loops after a successful start would be
restarted at once, forever, with no count to show. The loop is a few dozen
lines around a pure schedule (:class:`Backoff`), tested without processes.

It watches Gleaner's components and the embedded Redis, CouchDB and Kafka,
and with ``kafka_storage=s3`` Kafka's S3 store (SeaweedFS), which it looks at
before Kafka; external services are the operator's to run. Kafka on
``memory://`` loses its topics with its process, so after a restart they are
created again (on ``s3://`` they are still there, and that step does nothing).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from deploy.common import run_dir
from gleaner.errors import GleanerError
from gleaner.settings import Settings

log = logging.getLogger(__name__)

NAME = "supervisor"
STATE_FILE = "supervisor.json"


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before restart ``n`` (1-based) of a part that keeps
    failing; a part that stayed up ``stable_s`` starts from the first delay again."""

    first_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    stable_s: float = 60.0

    def delay(self, failures: int) -> float:
        return min(self.max_s, self.first_s * self.factor ** max(0, failures - 1))


@dataclass(slots=True)
class PartState:
    restarts: int = 0  # since the supervisor started
    failures: int = 0  # in a row, for the backoff
    pid: int | None = None
    up_since: float | None = None  # monotonic
    down_since: float | None = None
    next_start: float | None = None
    last_exit: str = ""  # wall-clock time of the last crash seen
    last_error: str = ""

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("up_since", "down_since", "next_start", "failures"):
            out.pop(key)
        return out


@dataclass(frozen=True, slots=True)
class Part:
    """One supervised part: how to find its pid, and how to start it again."""

    name: str
    pid: Callable[[], int | None]
    start: Callable[[], int | None]  # returns the new pid; raises GleanerError on failure


class Supervisor:
    def __init__(
        self,
        parts: list[Part],
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[dict[str, PartState]], None] | None = None,
    ) -> None:
        self.parts = parts
        self.backoff = backoff or Backoff()
        self._clock = clock
        self._on_change = on_change
        self.state = {p.name: PartState() for p in parts}

    def step(self) -> list[str]:
        """Look at every part once; restart those that are due. Returns the restarted."""
        now = self._clock()
        restarted: list[str] = []
        changed = False
        for part in self.parts:
            st = self.state[part.name]
            pid = part.pid()
            if pid is not None:
                if st.pid != pid:
                    st.pid, st.up_since, changed = pid, now, True
                if st.failures and st.up_since is not None and now - st.up_since >= self.backoff.stable_s:
                    st.failures = 0
                st.down_since = st.next_start = None
                continue
            if st.next_start is None:  # just found dead
                st.failures += 1
                st.down_since = now
                st.next_start = now + self.backoff.delay(st.failures)
                st.last_exit = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                st.pid = st.up_since = None
                changed = True
                log.warning("%s is down; restart in %.1fs", part.name, st.next_start - now)
            if now < st.next_start:
                continue
            try:
                st.pid = part.start()
            except GleanerError as exc:
                st.last_error = str(exc).split("\n", 1)[0]
                st.failures += 1
                st.next_start = self._clock() + self.backoff.delay(st.failures)
                log.error("restarting %s failed: %s", part.name, st.last_error)
                changed = True
                continue
            st.restarts += 1
            st.up_since = self._clock()
            st.down_since = st.next_start = None
            st.last_error = ""
            restarted.append(part.name)
            changed = True
            log.info("restarted %s (pid %s, restart %d)", part.name, st.pid, st.restarts)
        if changed and self._on_change is not None:
            self._on_change(self.state)
        return restarted


# -- the process ------------------------------------------------------------------------


def state_path(settings: Settings) -> Any:
    return run_dir(settings) / STATE_FILE


def write_state(settings: Settings, state: dict[str, PartState]) -> None:
    path = state_path(settings)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({name: st.public() for name, st in state.items()}, indent=1))
    tmp.replace(path)


def read_state(settings: Settings) -> dict[str, dict[str, Any]]:
    """What the supervisor last wrote ({} when it has not run)."""
    try:
        data = json.loads(state_path(settings).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def stack_parts(settings: Settings) -> list[Part]:
    """The embedded services and every component, as ``gleaner up`` started them."""
    from deploy import procs, services

    parts: list[Part] = []
    for name in services.service_names(settings):
        if name != "docker" and not services.service(settings, name).external:
            parts.append(_service_part(settings, name))
    parts.extend(_component_part(settings, name) for name in procs.component_names(settings))
    return parts


def _service_part(settings: Settings, name: str) -> Part:
    from deploy import services
    from deploy.broker_loss import after_broker_loss
    from deploy.common import read_pid

    marker = services.service(settings, name).marker

    def pid() -> int | None:
        return read_pid(settings, name, marker)

    def start() -> int | None:
        status = services.start(settings, name)
        if name == "kafka" and settings.kafka_storage == "memory":
            after_broker_loss(settings)  # its topics and log went with it: topics, then the outbox
        elif name == "kafka":  # on s3:// its topics survive: a no-op
            services.ensure_platform_topics(settings)
        return status.pid

    return Part(name, pid, start)


def _component_part(settings: Settings, name: str) -> Part:
    from deploy import procs
    from deploy.common import read_pid

    def pid() -> int | None:
        return read_pid(settings, name, procs.marker(name))

    def start() -> int | None:
        return procs.spawn_component(settings, name)

    return Part(name, pid, start)


def run(settings: Settings, interval_s: float = 0.25) -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sup = Supervisor(stack_parts(settings), on_change=lambda st: write_state(settings, st))
    write_state(settings, sup.state)
    log.info("supervising %s (pid %d)", ", ".join(p.name for p in sup.parts), os.getpid())
    while not stop.wait(interval_s):
        sup.step()
        # Reap children we started (they would linger as zombies otherwise).
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
