"""The stack side of the placement comparison: the invokers it runs on, the
placement component restarted with one policy at a time, and which invoker
ran each activation.

Placement reads its policy once, at start (``GLEANER_PLACEMENT_POLICY``), so
switching policy means restarting the component with that setting in its
environment. The supervisor is paused for the second the switch takes: it
would otherwise see placement gone, count a crash and race to start it again
with the stack's own policy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from deploy import procs
from deploy.common import log_file, read_pid, stop_part
from gleaner.errors import BadRequest, GleanerError, MalformedEvent
from gleaner.gateway_client import OpenWhiskClient
from gleaner.settings import Settings
from streams.events import decode
from streams.replay.runner import Listener, Received

PLACEMENT = "placement"
INVOKERS = 2  # the thesis's cluster: two invokers
RESTART_TIMEOUT_S = 15.0
SUPERVISOR_LOOK_S = 0.5  # twice the supervisor's polling interval


def invoker_capacities(client: OpenWhiskClient) -> dict[str, float]:
    """Healthy invokers and their CPU capacity, from the gateway's heartbeat view."""
    _, beats = client.request("GET", f"{client.target.apihost}/invokers/health")
    return {
        str(b["invoker"]): float(b["cpu_capacity"])
        for b in beats or []
        if isinstance(b, dict) and b.get("healthy")
    }


def check_invokers(capacities: Mapping[str, float], want: int = INVOKERS) -> None:
    """Refuse a stack that is not ``want`` healthy invokers of equal capacity. Pure."""
    fix = f"Stop the stack and start it with {want}: `gleaner down && gleaner up --invokers {want}`"
    if len(capacities) != want:
        seen = ", ".join(f"{k} ({v:g} cores)" for k, v in sorted(capacities.items())) or "none"
        raise BadRequest(f"the placement comparison runs on {want} invokers; healthy now: {seen}. {fix}")
    if len(set(capacities.values())) != 1:
        split = ", ".join(f"{k} {v:g}" for k, v in sorted(capacities.items()))
        raise BadRequest(
            f"the invokers' CPU capacities differ ({split} cores): an invoker started before "
            f"`--invokers` was raised keeps the whole machine. {fix}"
        )


class PlacementSwitch:
    """Restarts the stack's placement component with one policy at a time, and knows
    whether the process placing now is still the one it started."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.policy: str | None = None  # unknown until the first switch
        self._pid: int | None = None

    def check(self) -> None:
        """Placement must run from this state directory, or it cannot be restarted."""
        if self._running() is None:
            raise BadRequest(
                f"no placement component runs from {self.settings.state_dir}: the comparison restarts "
                "it once per policy, so it needs the embedded stack (`gleaner up --invokers 2`)"
            )

    def use(self, policy: str) -> None:
        """Placement runs ``policy`` from now on (a restart unless it already does)."""
        if policy == self.policy and self.still_ours():
            return
        with supervisor_paused(self.settings):
            stop_part(self.settings, PLACEMENT, procs.marker(PLACEMENT), timeout=RESTART_TIMEOUT_S)
            policy_settings = dataclasses.replace(self.settings, placement_policy=policy)
            self._pid = procs.spawn_component(policy_settings, PLACEMENT)
        # A supervisor paused halfway through looking at the old pid could still take the new
        # one for dead and start its own: give it one look, then make sure.
        time.sleep(SUPERVISOR_LOOK_S)
        if not self.still_ours():
            raise GleanerError(
                f"placement (pid {self._pid}) was replaced right after its restart with {policy}, "
                "probably by the supervisor; run the comparison again"
            )
        self.policy = policy

    def still_ours(self) -> bool:
        """False when placement was restarted by someone else (the supervisor after a crash)."""
        return self._pid is not None and self._running() == self._pid

    @property
    def log(self) -> str:
        return str(log_file(self.settings, PLACEMENT))

    def _running(self) -> int | None:
        return read_pid(self.settings, PLACEMENT, procs.marker(PLACEMENT))


@contextlib.contextmanager
def supervisor_paused(settings: Settings) -> Iterator[None]:
    pid = read_pid(settings, procs.SUPERVISOR, procs.marker(procs.SUPERVISOR))
    if pid is None:
        yield
        return
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


# -- which invoker ran what ---------------------------------------------------------


def ran_on(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """(activation id, invoker) of an ``activations.completed`` event; None when its
    record names no invoker (a platform failure before placement). Pure."""
    record = event.get("record")
    gleaner = record.get("gleaner") if isinstance(record, dict) else None
    invoker = gleaner.get("invoker") if isinstance(gleaner, dict) else None
    aid = event.get("activation_id")
    if not isinstance(invoker, str) or not isinstance(aid, str):
        return None
    return aid, invoker


@dataclasses.dataclass(slots=True)
class _Tee:
    inner: Listener
    note: Callable[[Received], None]

    def poll(self, timeout_s: float) -> Received | None:
        msg = self.inner.poll(timeout_s)
        if msg is not None:
            self.note(msg)
        return msg

    def close(self) -> None:
        self.inner.close()


class InvokerLog:
    """Activation id -> invoker, read off the completions a replay listens to anyway
    (the replay's own outcomes keep no invoker)."""

    def __init__(self, completed_topic: str) -> None:
        self.completed_topic = completed_topic
        self.by_activation: dict[str, str] = {}

    def listening(self, listen: Callable[[], Listener]) -> Callable[[], Listener]:
        return lambda: _Tee(listen(), self._note)

    def take(self, activation_ids: list[str]) -> dict[str, str]:
        """The invokers of these activations; forgets everything seen so far."""
        found = {a: self.by_activation[a] for a in activation_ids if a in self.by_activation}
        self.by_activation.clear()
        return found

    def _note(self, msg: Received) -> None:
        if msg.topic != self.completed_topic:
            return
        try:
            event = decode(msg.value)
        except MalformedEvent:
            return
        pair = ran_on(event)
        if pair is not None:
            self.by_activation[pair[0]] = pair[1]
