"""When an idle consumer fetches: the librdkafka side of the idle cost.

Tansu answers a fetch only when its wait ends, so a hot consumer (5 ms wait)
has the broker answer ~200 empty fetches a second, all day. librdkafka's wait
is fixed at creation, so the consumer dozes instead: after ``idle_after_s``
without a record its partitions are paused (polls keep the group membership
alive) and it wakes for a short probe every ``probe_every_s``. The first
record of a probe, or a ring of its doorbell, wakes it for good. Cost: a
record that arrives while a consumer dozes waits for the ring (about one fetch
wait) or, with no ring, for the next probe (``probe_every_s / 2`` on average);
the records behind it, nothing. Pure: the consumer applies the decisions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

PAUSE = "pause"
RESUME = "resume"


class DozeState(enum.Enum):
    AWAKE = "awake"  # fetching, records flowing
    DOZING = "dozing"  # paused until the next probe
    PROBING = "probing"  # fetching for one short probe


@dataclass(slots=True)
class Doze:
    idle_after_s: float
    probe_every_s: float
    probe_for_s: float
    last_record: float = 0.0
    state: DozeState = DozeState.AWAKE
    _until: float = 0.0  # the next probe (dozing) or the probe's end (probing)

    def step(self, now: float) -> str | None:
        """The change due at ``now``: PAUSE, RESUME or None."""
        if self.state is DozeState.AWAKE and now - self.last_record >= self.idle_after_s:
            return self._doze(now)
        if self.state is DozeState.DOZING and now >= self._until:
            self.state, self._until = DozeState.PROBING, now + self.probe_for_s
            return RESUME
        if self.state is DozeState.PROBING and now >= self._until:
            return self._doze(now)
        return None

    def seen(self, now: float) -> str | None:
        """A record arrived: awake (resume if it came while paused)."""
        self.last_record = now
        was, self.state = self.state, DozeState.AWAKE
        return RESUME if was is DozeState.DOZING else None

    def rung(self, now: float) -> str | None:
        """A doorbell rang for a topic it reads: records are coming, so awake as if one had
        arrived (resume if paused). Its probes may then be rare (:mod:`streams.kafka.doorbell`)."""
        return self.seen(now)

    def wake(self, now: float) -> None:
        """Fetching was resumed from outside (a retry hold ended): count as fresh traffic."""
        self.last_record, self.state = now, DozeState.AWAKE

    def wait_s(self, now: float, timeout_s: float) -> float:
        """How long a poll may block before the next step is due."""
        due = self.last_record + self.idle_after_s if self.state is DozeState.AWAKE else self._until
        return max(0.0, min(timeout_s, due - now))

    def _doze(self, now: float) -> str:
        self.state, self._until = DozeState.DOZING, now + self.probe_every_s
        return PAUSE
