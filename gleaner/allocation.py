"""The one allocation type: what a function runs with, where it came from, and
every live change to it. Pure; no I/O.

An :class:`Allocation` is decided once per function by the predictor stream
(``predictor.plan``), travels inside the ``dag.plan`` event to the composition
stream, and from there on the function's ``activation.request`` to the invoker.
The event is the single source: a redelivered invocation carries the same
decision, and nothing has to be looked up (or can expire) on the hot path.

Live changes made by the invoker (start-now, timely release, safeguard, idle
capacity, reclaim) are :class:`AllocationChange` entries in the activation
record's ``gleaner.allocation_trajectory``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

from gleaner.errors import MalformedEvent

# user: the action's own limits; harvest / accelerate: planned below / above them;
# profile: the profiler's maximum; safeguard: given back live after a near-cap run.
Origin = Literal["user", "harvest", "accelerate", "profile", "safeguard"]
ORIGINS: tuple[str, ...] = get_args(Origin)

# Why an allocation changed while its activation ran (or why it started where it did).
ChangeReason = Literal[
    "planned",  # the allocation it was planned with, granted in full
    "start-now",  # started below its plan (but at least its user allocation) rather than wait
    "grow",  # grew towards its plan as permits freed up
    "timely-release",  # got a finished sibling's cores (same stage, same request)
    "safeguard",  # near its cap while harvested: its user allocation back
    "idle-capacity",  # grew into idle cores while nobody waited
    "reclaim",  # gave idle-capacity cores back because someone waits
    "backfill",  # started ahead of the queue's head without delaying its reserved start
    "lent",  # gave cores it was measured not to use to a waiting claim of any request
    "take-back",  # a lender got its lent cores back (it needed them, or nobody waits)
    "rerun",  # re-run at the user allocation after an OOM kill while harvested
    "resize-failed",  # a resize did not apply: it keeps its previous allocation
]
CHANGE_REASONS: tuple[str, ...] = get_args(ChangeReason)

# A function's place in its DAG, (stage, index): a plan's allocations are keyed by it
# (on the wire, as "stage.index": streams.events is the one codec).
Slot = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Predicted:
    """What the predictor expected one function to use (its models' raw outputs)."""

    input_size: float  # bytes
    cpu: float  # peak cores at the maximum allocation
    memory_mb: float  # peak MB
    duration_ms: float | None = None  # at the maximum allocation; None without a work model

    @property
    def work_cpu_s(self) -> float | None:
        """CPU-seconds of work: duration at the maximum allocation times its peak."""
        if self.duration_ms is None or not math.isfinite(self.duration_ms):
            return None
        return max(0.0, self.duration_ms) / 1000.0 * max(0.0, self.cpu)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "input_size": round(self.input_size),
            "cpu": round(self.cpu, 4),
            "memory": round(self.memory_mb, 1),
        }
        if self.duration_ms is not None:
            out["duration_ms"] = round(self.duration_ms, 1)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Predicted:
        if not isinstance(data, dict):
            raise MalformedEvent(f"predicted must be an object, got {type(data).__name__}")
        try:
            duration = data.get("duration_ms")
            return cls(
                float(data["input_size"]),
                float(data["cpu"]),
                float(data["memory"]),
                None if duration is None else float(duration),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedEvent(f"predicted {data!r} is malformed: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Allocation:
    """CPU cores and memory MB for one function, with where they came from."""

    cpu: float
    memory_mb: int
    origin: Origin = "user"
    predicted: Predicted | None = None
    reason: str | None = None  # why, when it is not simply the plan (e.g. a plan that could not apply)
    cap: float | None = None  # useful maximum in cores (predicted peak at max, on the grid)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cpu) and self.cpu > 0):
            raise MalformedEvent(f"allocation cpu must be a positive number, got {self.cpu!r}")
        if self.memory_mb <= 0:
            raise MalformedEvent(f"allocation memory must be positive, got {self.memory_mb!r}")
        if self.origin not in ORIGINS:
            raise MalformedEvent(f"allocation origin {self.origin!r} is not one of {', '.join(ORIGINS)}")
        if self.cap is not None and not (math.isfinite(self.cap) and self.cap > 0):
            raise MalformedEvent(f"allocation cap must be a positive number, got {self.cap!r}")

    def with_reason(self, reason: str) -> Allocation:
        return Allocation(self.cpu, self.memory_mb, self.origin, self.predicted, reason, self.cap)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cpu": self.cpu, "memory": self.memory_mb, "origin": self.origin}
        if self.predicted is not None:
            out["predicted"] = self.predicted.to_dict()
        if self.reason is not None:
            out["reason"] = self.reason
        if self.cap is not None:
            out["cap"] = self.cap
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Allocation:
        """Parse one allocation; :class:`MalformedEvent` says what is wrong."""
        if not isinstance(data, dict):
            raise MalformedEvent(f"an allocation must be an object, got {type(data).__name__}")
        try:
            cpu = data["cpu"]
            memory = data["memory"]
        except KeyError as exc:
            raise MalformedEvent(f"allocation {data!r} lacks {exc}") from exc
        if isinstance(cpu, bool) or not isinstance(cpu, int | float):
            raise MalformedEvent(f"allocation cpu must be a number, got {cpu!r}")
        if isinstance(memory, bool) or not isinstance(memory, int | float) or not math.isfinite(memory):
            raise MalformedEvent(f"allocation memory must be a number, got {memory!r}")
        origin = data.get("origin", "user")
        reason = data.get("reason")
        cap = data.get("cap")
        if reason is not None and not isinstance(reason, str):
            raise MalformedEvent(f"allocation reason must be a string, got {reason!r}")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int | float)):
            raise MalformedEvent(f"allocation cap must be a number, got {cap!r}")
        predicted = data.get("predicted")
        return cls(
            float(cpu),
            round(memory),
            origin,
            None if predicted in (None, {}) else Predicted.from_dict(predicted),
            reason,
            None if cap is None else float(cap),
        )


@dataclass(frozen=True, slots=True)
class AllocationChange:
    """One point of an activation's allocation trajectory."""

    at_ms: int  # epoch ms
    cpu: float
    memory_mb: int
    reason: ChangeReason
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"at_ms": self.at_ms, "cpu": self.cpu, "memory": self.memory_mb}
        out["reason"] = self.reason
        if self.note:
            out["note"] = self.note
        return out
