"""Gleaner's own long-running components, run as detached processes.

They are the registry's (streams/components.py), in its start order. Each is
``python -m gleaner run <name>`` with the caller's environment plus the
settings exported as ``GLEANER_*`` variables, so a component sees exactly the
settings ``gleaner up`` was given, overrides included.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from deploy.common import (
    PartStatus,
    log_file,
    log_tail,
    read_pid,
    run_dir,
    spawn,
    stop_part,
)
from gleaner.credentials import admin_credential, guest_credential
from gleaner.errors import StackError
from gleaner.metrics import metrics_address
from gleaner.settings import PREFIX, Settings
from streams.components import COMPONENTS

SUPERVISOR = "supervisor"  # restarts whatever crashes (deploy/supervisor.py)
GATEWAY_READY_TIMEOUT_S = 60.0
EARLY_EXIT_GRACE_S = 0.3  # a component that dies this fast has a config or import error
CUT_OFF_AFTER_S = 15.0  # reused parts that see no invoker for this long are started again
PLACEMENT_INVOKERS_GAUGE = "gleaner_placement_invokers_healthy"


def is_invoker(name: str) -> bool:
    return re.fullmatch(r"invoker\d*", name) is not None


def _invoker_index(name: str) -> int:
    return int(name[len("invoker") :] or 0)


def component_names(settings: Settings) -> tuple[str, ...]:
    """Every component of this stack: one invoker part per ``settings.invokers``
    (``invoker`` is invoker0, then ``invoker1``...), plus any extra one already
    running (so ``status`` and ``down`` see it whatever the settings say)."""
    running = {_invoker_index(p.stem) for p in run_dir(settings).glob("invoker*.pid") if is_invoker(p.stem)}
    extra = sorted((set(range(1, settings.invokers)) | running) - {0})
    invokers = ("invoker", *(f"invoker{k}" for k in extra))
    # In the registry's start order (streams/components.py).
    return tuple(name for c in COMPONENTS for name in (invokers if c.per_invoker else (c.name,)))


def part_settings(settings: Settings, name: str) -> Settings:
    """A component's own settings: an invoker gets its id and its share of the capacity."""
    if not is_invoker(name):
        return settings
    index = _invoker_index(name)
    share = max(settings.invokers, index + 1)
    if share == 1:
        return settings
    step = settings.cpu_step
    cpu = max(step, math.floor(settings.invoker_cpu_capacity / share / step) * step)
    return dataclasses.replace(
        settings,
        invoker_id=f"invoker{index}",
        invoker_cpu_capacity=cpu,
        invoker_memory_capacity_mb=max(1, settings.invoker_memory_capacity_mb // share),
    )


def component_argv(name: str) -> list[str]:
    return [sys.executable, "-m", "gleaner", "run", "invoker" if is_invoker(name) else name]


def marker(name: str) -> str:
    return f"gleaner run {'invoker' if is_invoker(name) else name}"


def spawn_component(settings: Settings, name: str) -> int:
    """Start one component detached (the supervisor's restart); its pid."""
    proc = spawn(settings, name, component_argv(name), env=component_env(settings, name))
    time.sleep(EARLY_EXIT_GRACE_S)
    if proc.poll() is not None:
        raise _died(settings, name, proc, proc.pid)
    return proc.pid


def start_supervisor(settings: Settings) -> PartStatus:
    """Leave the supervisor running (reused when it already is)."""
    pid = read_pid(settings, SUPERVISOR, marker(SUPERVISOR))
    if pid is not None:
        return PartStatus(SUPERVISOR, "up", "-", pid, "reused; running")
    return PartStatus(SUPERVISOR, "up", "-", spawn_component(settings, SUPERVISOR), "running")


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ``GLEANER_*`` variables that ``load_settings`` reads back."""
    env: dict[str, str] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        env[PREFIX + f.name.upper()] = str(value) if not isinstance(value, Path) else os.fspath(value)
    return env


def component_env(settings: Settings, name: str = "") -> dict[str, str]:
    return {**os.environ, **settings_env(part_settings(settings, name))}


def invokers_up(body: Any) -> list[str]:
    """Invoker ids marked up in a ``GET /invokers`` answer (``{"invoker0": "up"}``;
    a value may also be an object with a ``status`` or ``state``)."""
    if not isinstance(body, dict):
        return []
    up: list[str] = []
    for key, value in body.items():
        state = value.get("status", value.get("state")) if isinstance(value, dict) else value
        if isinstance(state, str) and state.lower() == "up":
            up.append(str(key))
    return up


def _auth(settings: Settings) -> tuple[str, str] | None:
    """`/invokers` needs a credential: the admin's, else the default namespace's."""
    credential = admin_credential(settings) or guest_credential(settings) or ""
    user, sep, key = credential.partition(":")
    return (user, key) if sep else None


def gateway_check(settings: Settings) -> str | None:
    resp = httpx.get(f"{settings.api_host.rstrip('/')}/invokers", auth=_auth(settings), timeout=3.0)
    if resp.status_code != 200:
        return None
    up = invokers_up(resp.json())
    return f"invokers up: {', '.join(up)}" if up else None


def gauge_value(text: str, name: str) -> float | None:
    """The value of an unlabelled gauge in a Prometheus text exposition; None if absent. Pure."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            try:
                return float(line.split()[1])
            except (IndexError, ValueError):
                return None
    return None


def placement_check(settings: Settings) -> str | None:
    """How many invokers placement counts healthy (read from its metrics), or None while it
    sees none: a gateway can see an invoker that placement, cut off, cannot."""
    address = metrics_address(settings, "placement")
    if address is None:
        return "metrics off"  # its view cannot be read: the gateway's stands for both
    value = gauge_value(httpx.get(address, timeout=2.0).text, PLACEMENT_INVOKERS_GAUGE)
    return f"sees {value:g} healthy invoker(s)" if value else None


def _died(settings: Settings, name: str, proc: subprocess.Popen[bytes] | None, pid: int) -> StackError:
    code = f" with code {proc.returncode}" if proc is not None and proc.returncode is not None else ""
    log = log_file(settings, name)
    return StackError(name, f"process {pid} exited{code}; log {log}:\n{log_tail(log)}")


def start_components(
    settings: Settings,
    names: tuple[str, ...] | None = None,
    *,
    ready_timeout: float = GATEWAY_READY_TIMEOUT_S,
) -> list[PartStatus]:
    """Start (or reuse) the components in order, then wait until the gateway
    reports a live invoker; any component dying meanwhile fails the start."""
    names = names or component_names(settings)
    running: dict[str, tuple[int, subprocess.Popen[bytes] | None, bool]] = {}
    for name in names:
        pid = read_pid(settings, name, marker(name))
        if pid is not None:
            running[name] = (pid, None, True)
            continue
        proc = spawn(settings, name, component_argv(name), env=component_env(settings, name))
        time.sleep(EARLY_EXIT_GRACE_S)
        if proc.poll() is not None:
            raise _died(settings, name, proc, proc.pid)
        running[name] = (proc.pid, proc, False)

    def alive_or_raise() -> None:
        for name, (pid, proc, _) in running.items():
            if proc is not None:
                dead = proc.poll() is not None
            else:
                dead = read_pid(settings, name, marker(name)) is None
            if dead:
                raise _died(settings, name, proc, pid)

    details = {name: "running" for name in names}
    if "gateway" in names:
        kept = [n for n in names if running[n][2]]

        def restart_cut_off() -> None:
            """Reused parts alive but cut off (the broker was replaced under them): start
            them again, the supervisor first out of the way (``up`` starts it after)."""
            stop_part(settings, SUPERVISOR, marker(SUPERVISOR), timeout=10.0)
            for name in kept:
                stop_part(settings, name, marker(name), timeout=10.0)
                proc = spawn(settings, name, component_argv(name), env=component_env(settings, name))
                running[name] = (proc.pid, proc, False)

        details["gateway"] = _wait_gateway(
            settings, ready_timeout, alive_or_raise, restart_cut_off if kept else None
        )
        if "placement" in names:
            details["placement"] = placement_check(settings) or "running"
    else:
        alive_or_raise()
    out = []
    for name in names:
        pid, _, reused = running[name]
        detail = ("reused; " if reused else "") + details[name]
        out.append(PartStatus(name, "up", _address(settings, name), pid, detail))
    return out


def _wait_gateway(
    settings: Settings, timeout: float, alive_or_raise: Any, restart_cut_off: Any | None = None
) -> str:
    """Until the gateway and placement both see a healthy invoker (a request can go through);
    reused parts that still do not after CUT_OFF_AFTER_S are started again, once."""
    began = time.monotonic()
    deadline = began + timeout
    last = ""
    while True:
        alive_or_raise()
        try:
            detail = gateway_check(settings)
            if detail is not None and placement_check(settings) is not None:
                return detail
            last = "no invoker reported up yet" if detail is None else "placement sees no invoker yet"
        except (httpx.HTTPError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if restart_cut_off is not None and time.monotonic() - began >= CUT_OFF_AFTER_S:
            restart_cut_off()
            restart_cut_off = None
        if time.monotonic() >= deadline:
            log = log_file(settings, "gateway")
            raise StackError(
                "gateway",
                f"GET {settings.api_host}/invokers not ready after {timeout:.0f} s ({last}); "
                f"log {log}:\n{log_tail(log)}\ninvoker log:\n{log_tail(log_file(settings, 'invoker'), 10)}",
            )
        time.sleep(0.25)


def _address(settings: Settings, name: str) -> str:
    if name == "gateway":
        return settings.api_host
    if is_invoker(name):
        return part_settings(settings, name).invoker_id
    return "-"


def component_status(settings: Settings, name: str, restarts: dict[str, Any] | None = None) -> PartStatus:
    pid = read_pid(settings, name, marker(name))
    address = _address(settings, name)
    if pid is None:
        return PartStatus(name, "down", address, None, "")
    detail = "running"
    seen = (restarts or {}).get(name)
    if isinstance(seen, dict) and seen.get("restarts"):
        detail += f"; restarted {seen['restarts']}x, last crash {seen.get('last_exit') or '?'}"
    if name == "gateway":
        try:
            detail = gateway_check(settings) or "running; no invoker up"
        except (httpx.HTTPError, ValueError) as exc:
            detail = f"running; not answering ({type(exc).__name__})"
    metrics = metrics_address(settings, name)
    if metrics:
        detail += f"; metrics {metrics}"
    return PartStatus(name, "up", address, pid, detail)


def stop_components(settings: Settings, names: tuple[str, ...] | None = None) -> list[str]:
    """Stop the components this project started, ingress first; return those stopped.
    The supervisor goes first, or it would start them again."""
    stopped = []
    if stop_part(settings, SUPERVISOR, marker(SUPERVISOR), timeout=10.0) is not None:
        stopped.append(SUPERVISOR)
    names = names or component_names(settings)
    for name in reversed(names):
        if stop_part(settings, name, marker(name), timeout=10.0) is not None:
            stopped.append(name)
    return stopped
