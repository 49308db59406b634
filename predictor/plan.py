"""Plan one DAG request's allocations: predict, normalize, validate (thesis Fig. 3.5).

Only *parallel* stages are planned. An action stage has nothing to harvest from;
a map's functions exist only once its input is split, so it has no static slots.
Functions not in :attr:`Plan.allocations` run at their user allocation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from composer.stages import Analysis, StageInfo
from predictor.allocation import AllowedValues, normalize_flagged
from predictor.inference import Prediction, Predictor
from predictor.validator import Allocation, StageDecision, validate_stage

Origin = Literal["harvest", "accelerate", "user"]
Slot = tuple[int, int]  # (stage, index)


@dataclass(frozen=True, slots=True)
class StagePlan:
    stage: int
    decision: StageDecision
    predicted: list[Prediction]
    normalized: list[Allocation]  # empty when a prediction was not finite
    user: list[Allocation]


@dataclass(frozen=True, slots=True)
class Plan:
    allocations: dict[Slot, tuple[float, int, Origin]]  # (cpu cores, memory MB, origin)
    stages: list[StagePlan]
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: allocations keyed ``"stage.index"``, decisions and reasons."""
        return {
            "allocations": {
                f"{s}.{i}": {"cpu": c, "memory": m, "origin": o}
                for (s, i), (c, m, o) in self.allocations.items()
            },
            "stages": [
                {
                    "stage": sp.stage,
                    "cpu_mode": sp.decision.cpu_mode,
                    "mem_mode": sp.decision.mem_mode,
                    "predicted": [[p.input_size, p.cpu, p.memory_mb] for p in sp.predicted],
                    "normalized": [list(a) for a in sp.normalized],
                    "user": [list(a) for a in sp.user],
                    "reason": sp.decision.reason,
                }
                for sp in self.stages
            ],
            "reasons": list(self.reasons),
        }


def _origin(decision: StageDecision, cpu: float, user_cpu: float) -> Origin:
    if decision.cpu_mode == "rejected" or math.isclose(cpu, user_cpu, abs_tol=1e-9):
        return "user"
    return "harvest" if cpu < user_cpu else "accelerate"


def _finite(p: Prediction) -> bool:
    return math.isfinite(p.input_size) and math.isfinite(p.cpu) and math.isfinite(p.memory_mb)


def _decide(
    stage: StageInfo,
    predicted: list[Prediction],
    user: list[Allocation],
    allowed: AllowedValues,
    reasons: list[str],
    memory_margin: float = 0.0,
) -> StagePlan:
    if not all(_finite(p) for p in predicted):
        why = f"stage {stage.index}: a prediction is not finite, user allocations kept"
        reasons.append(why)
        return StagePlan(
            stage.index, StageDecision("rejected", "rejected", tuple(user), why), predicted, [], user
        )
    normalized: list[Allocation] = []
    for slot, p in zip(stage.slots, predicted, strict=True):
        # A margin on memory before rounding up: an under-predicted memory is an OOM kill.
        n = normalize_flagged(p.cpu, p.memory_mb * (1.0 + memory_margin), allowed)
        reasons.extend(
            f"stage {stage.index} function {slot.index} ({slot.action}): {note}" for note in n.notes
        )
        normalized.append((n.cpu, n.mem))
    decision = validate_stage(normalized, user, allowed)
    reasons.append(f"stage {stage.index}: {decision.reason}")
    return StagePlan(stage.index, decision, predicted, normalized, user)


def plan_request(
    predictor: Predictor,
    analysis: Analysis,
    dag_input_size: int,
    user: Mapping[Slot, Allocation],
    allowed: AllowedValues,
    *,
    memory_margin: float = 0.0,
) -> Plan:
    """Allocations for every function of every parallel stage of one request.

    ``user`` maps (stage, index) to the user's (cpu, memory) for that function.
    """
    reasons: list[str] = []
    planned: list[StageInfo] = []
    for stage in analysis.stages:
        if stage.kind == "map":
            reasons.append(f"stage {stage.index} (map): skipped, its functions are known only at run time")
        elif stage.kind == "parallel":
            missing = [s.index for s in stage.slots if (s.stage, s.index) not in user]
            if missing:
                reasons.append(f"stage {stage.index}: no user allocation for functions {missing}, skipped")
            else:
                planned.append(stage)
    slots = [(s.stage, s.index) for stage in planned for s in stage.slots]
    predictions = predictor.predict(dag_input_size, slots)  # one batch for the whole request
    allocations: dict[Slot, tuple[float, int, Origin]] = {}
    stage_plans: list[StagePlan] = []
    start = 0
    for stage in planned:
        width = len(stage.slots)
        stage_user = [
            (float(user[s.stage, s.index][0]), float(user[s.stage, s.index][1])) for s in stage.slots
        ]
        sp = _decide(stage, predictions[start : start + width], stage_user, allowed, reasons, memory_margin)
        start += width
        stage_plans.append(sp)
        for slot, (cpu, mem), (user_cpu, _) in zip(
            stage.slots, sp.decision.allocations, stage_user, strict=True
        ):
            allocations[(slot.stage, slot.index)] = (cpu, round(mem), _origin(sp.decision, cpu, user_cpu))
    return Plan(allocations, stage_plans, reasons)
