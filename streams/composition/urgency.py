"""What an invocation tells the invoker's least-slack scheduler, pure.

A DAG request's **deadline** is its arrival plus the DAG's ``slo_ms`` when the
DAG has one; otherwise its arrival plus ``factor`` times its predicted latency
(a request's slack grows with its size, so a small request that arrives behind
a large one is not the one that waits). Its **remaining** critical path, when
a function of stage ``k`` is invoked, is the predicted time of stages ``k`` to
the end. A stage's time is the plan's prediction where the predictor planned
it (per input size: the slowest function's predicted run at its planned
cores), else what the composition stream has learned of that stage from
completed requests (:class:`streams.composition.prewarm.StageTimes`). Stages
with neither count as zero: the estimate errs towards urgent, never towards
idle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from gleaner.allocation import Allocation, Slot


@dataclass(frozen=True, slots=True)
class Urgency:
    deadline_ms: int | None
    remaining_ms: int | None
    run_ms: int | None


def planned_stage_ms(allocations: Mapping[Slot, Allocation]) -> dict[int, float]:
    """Per stage, the slowest planned function's predicted run (from the plan's allocations):
    its duration at the maximum allocation, stretched linearly when planned below its
    predicted peak."""
    out: dict[int, float] = {}
    for (stage, _), planned in allocations.items():
        predicted = planned.predicted
        if predicted is None or predicted.duration_ms is None:
            continue
        if not math.isfinite(predicted.duration_ms) or predicted.duration_ms < 0:
            continue
        stretch = max(1.0, predicted.cpu / planned.cpu) if predicted.cpu > 0 else 1.0
        out[stage] = max(out.get(stage, 0.0), predicted.duration_ms * stretch)
    return out


@dataclass(frozen=True, slots=True)
class RequestTimes:
    """One request's predicted stage times (ms; unknown stages absent) and its deadline,
    worked out once per event; :meth:`of` then answers per function."""

    stage_ms: dict[int, float]
    depth: int
    deadline_ms: int | None

    @classmethod
    def build(
        cls,
        started_ms: int,
        depth: int,
        learned: Mapping[int, float],
        planned: Mapping[int, float],
        slo_ms: int | None,
        factor: float,
    ) -> RequestTimes:
        stage_ms = {}
        for s in range(depth):
            value = planned.get(s, learned.get(s))
            if value is not None and math.isfinite(value):
                stage_ms[s] = max(0.0, value)
        total = sum(stage_ms.values())
        if slo_ms is not None and slo_ms > 0:
            deadline: int | None = started_ms + int(slo_ms)
        elif total > 0:
            deadline = started_ms + round(factor * total)
        else:
            deadline = None
        return cls(stage_ms, depth, deadline)

    def of(self, stage: int | None) -> Urgency:
        """The deadline, remaining critical path and own run of a function of ``stage``."""
        if stage is None or not 0 <= stage < self.depth:
            return Urgency(self.deadline_ms, None, None)
        remaining = sum(ms for s, ms in self.stage_ms.items() if s >= stage)
        run = self.stage_ms.get(stage)
        return Urgency(self.deadline_ms, round(remaining), None if run is None else round(run))
