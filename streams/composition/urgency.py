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
from typing import Any


@dataclass(frozen=True, slots=True)
class Urgency:
    deadline_ms: int | None
    remaining_ms: int | None
    run_ms: int | None


def planned_stage_ms(allocations: Mapping[str, Any]) -> dict[int, float]:
    """Per stage, the slowest planned function's predicted run (from the plan's allocations,
    keyed ``"stage.index"``): its duration at the maximum allocation, stretched linearly
    when planned below its predicted peak."""
    out: dict[int, float] = {}
    for key, raw in allocations.items():
        head, _, _ = str(key).partition(".")
        if not head.isdigit() or not isinstance(raw, Mapping):
            continue
        predicted = raw.get("predicted")
        cpu = raw.get("cpu")
        if not isinstance(predicted, Mapping) or not isinstance(cpu, int | float) or cpu <= 0:
            continue
        duration, peak = predicted.get("duration_ms"), predicted.get("cpu")
        if not isinstance(duration, int | float) or not math.isfinite(duration) or duration < 0:
            continue
        stretch = max(1.0, float(peak) / float(cpu)) if isinstance(peak, int | float) and peak > 0 else 1.0
        stage = int(head)
        out[stage] = max(out.get(stage, 0.0), float(duration) * stretch)
    return out


def urgency_of(
    started_ms: int,
    stage: int | None,
    depth: int,
    learned: Mapping[int, float],
    planned: Mapping[int, float],
    slo_ms: int | None,
    factor: float,
) -> Urgency:
    """The deadline, remaining critical path and own run of a function of ``stage``."""

    def stage_ms(s: int) -> float | None:
        value = planned.get(s, learned.get(s))
        return None if value is None or not math.isfinite(value) else max(0.0, value)

    known = {s: ms for s in range(depth) if (ms := stage_ms(s)) is not None}
    total = sum(known.values())
    if slo_ms is not None and slo_ms > 0:
        deadline: int | None = started_ms + int(slo_ms)
    elif total > 0:
        deadline = started_ms + round(factor * total)
    else:
        deadline = None
    if stage is None or not 0 <= stage < depth:
        return Urgency(deadline, None, None)
    remaining = sum(ms for s, ms in known.items() if s >= stage)
    run = known.get(stage)
    return Urgency(deadline, round(remaining), None if run is None else round(run))
