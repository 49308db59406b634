"""The invokers' scheduler, one configuration at a time, for ``gleaner eval --schedulers``.

An invoker reads its scheduler settings once, at start, so comparing schedulers in one
run means restarting every invoker part with the configuration in its environment
(with the supervisor paused, as the placement comparison does), then waiting until each
one heartbeats again from its new incarnation. The pool's containers go with the old
incarnation: the caller warms the new one before it measures.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from benchmarks.evaluation.placement_stack import SUPERVISOR_LOOK_S, supervisor_paused
from deploy import procs
from deploy.common import read_pid, stop_part
from gleaner.errors import BadRequest, GleanerError
from gleaner.gateway_client import OpenWhiskClient
from gleaner.settings import Settings

RESTART_TIMEOUT_S = 15.0
HEALTHY_TIMEOUT_S = 60.0

# Each configuration, as the settings it sets. ``fifo`` is the invoker before issue 20;
# ``lend`` is the default now (least slack, backfill and lending across requests).
SCHEDULERS: dict[str, dict[str, Any]] = {
    "fifo": {"scheduler": "fifo", "scheduler_backfill": False, "scheduler_lending": False},
    "age": {"scheduler": "age", "scheduler_backfill": False, "scheduler_lending": False},
    "backfill": {"scheduler": "fifo", "scheduler_backfill": True, "scheduler_lending": False},
    "order": {"scheduler": "slack", "scheduler_backfill": False, "scheduler_lending": False},
    "slack": {"scheduler": "slack", "scheduler_backfill": True, "scheduler_lending": False},
    "lend": {"scheduler": "slack", "scheduler_backfill": True, "scheduler_lending": True},
}


def schedulers_from(raw: str | None) -> list[str]:
    """The configurations named (comma-separated), known and distinct. Pure."""
    names = [x.strip() for x in (raw or "").split(",") if x.strip()]
    unknown = [n for n in names if n not in SCHEDULERS]
    if unknown:
        raise BadRequest(f"unknown scheduler {', '.join(unknown)}: choose from {', '.join(SCHEDULERS)}")
    if len(set(names)) != len(names):
        raise BadRequest("--schedulers names a configuration twice")
    return names


def label(policy: str, scheduler: str | None, default: str | None) -> str:
    """The report's name of a run: the policy alone under the default configuration. Pure."""
    return policy if scheduler is None or scheduler == default else f"{policy}@{scheduler}"


def configured(settings: Settings, scheduler: str) -> Settings:
    return dataclasses.replace(settings, **SCHEDULERS[scheduler])


def incarnations(beats: Any) -> dict[str, str]:
    """Healthy invoker -> incarnation, from the gateway's heartbeat view. Pure."""
    return {
        str(b["invoker"]): str(b.get("incarnation"))
        for b in beats or []
        if isinstance(b, dict) and b.get("healthy") and "invoker" in b
    }


class SchedulerSwitch:
    def __init__(self, settings: Settings, client: OpenWhiskClient) -> None:
        self.settings = settings
        self.client = client
        self.current: str | None = None

    def _parts(self) -> list[str]:
        return [n for n in procs.component_names(self.settings) if procs.is_invoker(n)]

    def check(self) -> None:
        missing = [p for p in self._parts() if read_pid(self.settings, p, procs.marker(p)) is None]
        if missing:
            raise BadRequest(
                f"no {', '.join(missing)} runs from {self.settings.state_dir}: comparing schedulers "
                "restarts the invokers, so it needs the embedded stack (`gleaner up`)"
            )

    def use(self, scheduler: str) -> None:
        if scheduler == self.current:
            return
        before = self._incarnations()
        with supervisor_paused(self.settings):
            for part in self._parts():
                stop_part(self.settings, part, procs.marker(part), timeout=RESTART_TIMEOUT_S)
                procs.spawn_component(configured(self.settings, scheduler), part)
        time.sleep(SUPERVISOR_LOOK_S)
        self._wait_new(before)
        self.current = scheduler

    def _incarnations(self) -> Mapping[str, str]:
        return incarnations(self.client.request("GET", f"{self.client.target.apihost}/invokers/health")[1])

    def _wait_new(self, before: Mapping[str, str]) -> None:
        deadline = time.monotonic() + HEALTHY_TIMEOUT_S
        while time.monotonic() < deadline:
            now = self._incarnations()
            if before and all(now.get(k) not in (None, v) for k, v in before.items()):
                return
            time.sleep(0.5)
        raise GleanerError(
            f"the invokers did not heartbeat again within {HEALTHY_TIMEOUT_S:g} s of a restart"
        )
