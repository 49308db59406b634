"""Plan one DAG request's allocations: predict, then size each parallel stage by a policy.

Policies (``plan_request(..., policy=...)``):

* ``thesis``  (thesis Fig. 3.5) normalize the predicted peaks, then fit them into
  the stage's budget with the peak-ratio validator (:mod:`predictor.validator`).
* ``libra``   (the Libra / Freyr baseline) every function at its own normalized
  peak, no stage budget (:mod:`predictor.peak_sizing`).
* ``gleaner`` CPU divided by predicted work to equalise finish times within the
  budget (:mod:`predictor.work_division`), each function's time from its scaling
  curve when it has one (:mod:`predictor.scaling`), and never more core-seconds
  than the user allocations; memory as the validator decides.
  Without a work model, or when the division is rejected, CPU falls back to the
  validator's, with a reason.

Only *parallel* stages are planned. An action stage has nothing to harvest from;
a map's functions exist only once its input is split, so it has no static slots.
Functions not in :attr:`Plan.allocations` run at their user allocation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from composer.stages import Analysis, StageInfo
from gleaner.allocation import Allocation, Origin, Predicted, Slot
from predictor.allocation import AllowedValues, NormalizedDemand, normalize_flagged, normalize_many
from predictor.inference import Prediction, Predictor
from predictor.peak_sizing import size_to_peak
from predictor.validator import Demand, StageDecision, validate_stage
from predictor.work_division import divide_work, predicted_makespan
from streams.events import allocations_to_wire

PlanningPolicy = Literal["thesis", "libra", "gleaner"]
PLANNING_POLICIES: tuple[str, ...] = get_args(PlanningPolicy)


@dataclass(frozen=True, slots=True)
class StagePlan:
    stage: int
    decision: StageDecision
    predicted: list[Prediction]
    normalized: list[Demand]  # the sized peaks; empty when a prediction was not finite
    user: list[Demand]
    policy: str = "thesis"
    makespan_s: float | None = None  # gleaner: predicted makespan with the planned CPU
    validator_makespan_s: float | None = None  # gleaner: the same with the validator's CPU
    # gleaner with scaling curves: core-seconds reserved with the planned CPU, and with the user's
    core_s: float | None = None
    user_core_s: float | None = None


def _rounded(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 4)


def _strict(value: float | None) -> float | None:
    """Non-finite as null: the summary travels as strict JSON."""
    return None if value is None or not math.isfinite(value) else value


@dataclass(frozen=True, slots=True)
class Plan:
    allocations: dict[Slot, Allocation]
    stages: list[StagePlan]
    reasons: list[str]
    policy: str = "thesis"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: allocations keyed ``"stage.index"``, decisions and reasons."""
        return {
            "policy": self.policy,
            "allocations": allocations_to_wire(self.allocations),
            "stages": self.stage_summaries(),
            "reasons": list(self.reasons),
        }

    def stage_summaries(self) -> list[dict[str, Any]]:
        """JSON-ready: each planned stage's decision (the plan event carries these beside
        the typed allocations)."""
        stages = []
        for sp in self.stages:
            summary: dict[str, Any] = {
                "stage": sp.stage,
                "policy": sp.policy,
                "cpu_mode": sp.decision.cpu_mode,
                "mem_mode": sp.decision.mem_mode,
                "predicted": [
                    [_strict(v) for v in (p.input_size, p.cpu, p.memory_mb, p.duration_ms)]
                    for p in sp.predicted
                ],
                "normalized": [list(a) for a in sp.normalized],
                "user": [list(a) for a in sp.user],
                "reason": sp.decision.reason,
            }
            if sp.policy == "gleaner":
                summary["makespan_s"] = _rounded(sp.makespan_s)
                summary["validator_makespan_s"] = _rounded(sp.validator_makespan_s)
                if any(p.scaling is not None for p in sp.predicted):
                    summary["scaling"] = {
                        "serial_fraction": [
                            None if p.scaling is None else round(p.scaling.serial_fraction, 4)
                            for p in sp.predicted
                        ],
                        "core_s": _rounded(sp.core_s),
                        "user_core_s": _rounded(sp.user_core_s),
                    }
            stages.append(summary)
        return stages


def _origin(decision: StageDecision, cpu: float, user_cpu: float) -> Origin:
    if decision.cpu_mode == "rejected" or math.isclose(cpu, user_cpu, abs_tol=1e-9):
        return "user"
    return "harvest" if cpu < user_cpu else "accelerate"


def _finite(p: Prediction) -> bool:
    return math.isfinite(p.input_size) and math.isfinite(p.cpu) and math.isfinite(p.memory_mb)


def _fmt(values: Sequence[float]) -> str:
    return "-".join(f"{v:g}" for v in values)


def _predicted(p: Prediction) -> Predicted:
    duration = p.duration_ms if p.duration_ms is not None and math.isfinite(p.duration_ms) else None
    return Predicted(p.input_size, p.cpu, p.memory_mb, duration)


@dataclass(frozen=True, slots=True)
class _Stage:
    """One stage's inputs to a policy."""

    info: StageInfo
    predicted: list[Prediction]
    user: list[Demand]
    allowed: AllowedValues
    memory_margin: float
    pre: Sequence[NormalizedDemand] | None = None  # normalized for the whole batch (normalize_batch)

    def normalized(self, reasons: list[str]) -> list[Demand]:
        out: list[Demand] = []
        for i, (slot, p) in enumerate(zip(self.info.slots, self.predicted, strict=True)):
            # A margin on memory before rounding up: an under-predicted memory is an OOM kill.
            n = (
                normalize_flagged(p.cpu, p.memory_mb * (1.0 + self.memory_margin), self.allowed)
                if self.pre is None
                else self.pre[i]
            )
            if n.notes:
                reasons.extend(self.notes(slot.index, slot.action, n.notes))
            out.append((n.cpu, n.mem))
        return out

    def notes(self, index: int, action: str, notes: Sequence[str]) -> list[str]:
        return [f"stage {self.info.index} function {index} ({action}): {note}" for note in notes]


def _thesis(s: _Stage, reasons: list[str]) -> StagePlan:
    normalized = s.normalized(reasons)
    decision = validate_stage(normalized, s.user, s.allowed)
    return StagePlan(s.info.index, decision, s.predicted, normalized, s.user, "thesis")


def _libra(s: _Stage, reasons: list[str], capacity: Demand | None) -> StagePlan:
    normalized: list[Demand] = []
    for slot, p in zip(s.info.slots, s.predicted, strict=True):
        size = size_to_peak(p.cpu, p.memory_mb, s.allowed, memory_margin=s.memory_margin, capacity=capacity)
        reasons.extend(s.notes(slot.index, slot.action, size.notes))
        normalized.append((size.cpu, size.memory_mb))
    cpu, mem = [d[0] for d in normalized], [d[1] for d in normalized]
    user_cpu = sum(u[0] for u in s.user)
    cpu_why = f"cpu: each function at its predicted peak {_fmt(cpu)} (sum {sum(cpu):g}, user {user_cpu:g})"
    mem_why = f"memory: each function at its predicted peak {_fmt(mem)} MB"
    why = f"{cpu_why}, no stage budget; {mem_why}"
    decision = StageDecision("sized", "sized", tuple(normalized), why, cpu_why, mem_why)
    return StagePlan(s.info.index, decision, s.predicted, normalized, s.user, "libra")


def _gleaner(s: _Stage, reasons: list[str]) -> StagePlan:
    normalized = s.normalized(reasons)
    validated = validate_stage(normalized, s.user, s.allowed)
    caps = [d[0] for d in normalized]  # A(predicted peak): more cores than that go unused
    work = [_predicted(p).work_cpu_s for p in s.predicted]
    if any(w is None for w in work):
        missing = any(p.duration_ms is None for p in s.predicted)
        why = "no work model" if missing else "a predicted duration is not finite"
        return _fallback(s, normalized, validated, why, None)
    works = [w for w in work if w is not None]
    curves = [p.scaling for p in s.predicted]  # None: that function scales linearly
    validator_makespan = predicted_makespan(works, caps, [a[0] for a in validated.allocations], curves)
    division = divide_work(works, caps, [u[0] for u in s.user], s.allowed.cpu, curves)
    if division.mode == "rejected":
        return _fallback(
            s, normalized, validated, f"work division rejected ({division.reason})", validator_makespan
        )
    memory = [a[1] for a in validated.allocations]
    why = f"{division.reason} (validator: {validator_makespan:.3g} s); {validated.mem_why}"
    allocations = tuple(zip(division.cpu, memory, strict=True))
    decision = StageDecision(
        "divided", validated.mem_mode, allocations, why, division.reason, validated.mem_why
    )
    return StagePlan(
        s.info.index,
        decision,
        s.predicted,
        normalized,
        s.user,
        "gleaner",
        division.makespan_s,
        validator_makespan,
        division.core_s,
        division.user_core_s,
    )


def _fallback(
    s: _Stage, normalized: list[Demand], validated: StageDecision, why: str, makespan: float | None
) -> StagePlan:
    """The validator's CPU and memory, saying why the work division did not decide."""
    cpu_why = f"{why}: cpu from the validator: {validated.cpu_why}"
    decision = replace(validated, reason=f"{cpu_why}; {validated.mem_why}", cpu_why=cpu_why)
    return StagePlan(s.info.index, decision, s.predicted, normalized, s.user, "gleaner", makespan, makespan)


def _decide(s: _Stage, policy: str, reasons: list[str], capacity: Demand | None) -> StagePlan:
    if not all(_finite(p) for p in s.predicted):
        why = f"stage {s.info.index}: a prediction is not finite, user allocations kept"
        reasons.append(why)
        rejected = StageDecision("rejected", "rejected", tuple(s.user), why)
        return StagePlan(s.info.index, rejected, s.predicted, [], s.user, policy)
    if policy == "libra":
        sp = _libra(s, reasons, capacity)
    elif policy == "gleaner":
        sp = _gleaner(s, reasons)
    else:
        sp = _thesis(s, reasons)
    reasons.append(f"stage {s.info.index}: {sp.decision.reason}")
    return sp


def _allocations(stage: StageInfo, sp: StagePlan, allowed: AllowedValues) -> dict[Slot, Allocation]:
    out: dict[Slot, Allocation] = {}
    grid = allowed.cpu  # built (and checked) once, not per function: the planner's hot path
    for slot, p, (cpu, mem), (user_cpu, _) in zip(
        stage.slots, sp.predicted, sp.decision.allocations, sp.user, strict=True
    ):
        finite = _finite(p)
        out[(slot.stage, slot.index)] = Allocation(
            cpu,
            round(mem),
            _origin(sp.decision, cpu, user_cpu),
            predicted=_predicted(p) if finite else None,
            cap=grid.at_least(p.cpu) if finite else None,
        )
    return out


@dataclass(frozen=True, slots=True)
class Selection:
    """The stages of one request that get planned, and the functions to predict for them."""

    stages: list[StageInfo]
    slots: list[Slot]  # every function of ``stages``, in order: one predict batch
    reasons: list[str]  # why other stages are not planned


def select_stages(analysis: Analysis, user: Mapping[Slot, Demand]) -> Selection:
    """The parallel stages whose every function has a user allocation."""
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
    return Selection(planned, slots, reasons)


def check_policy(policy: str) -> None:
    """ValueError for an unknown ``policy``."""
    if policy not in PLANNING_POLICIES:
        raise ValueError(f"unknown planning policy {policy!r} (known: {', '.join(PLANNING_POLICIES)})")


def plan_request(
    predictor: Predictor,
    analysis: Analysis,
    dag_input_size: int,
    user: Mapping[Slot, Demand],
    allowed: AllowedValues,
    *,
    memory_margin: float = 0.0,
    policy: str = "thesis",
    capacity: Demand | None = None,
) -> Plan:
    """Allocations for every function of every parallel stage of one request.

    ``user`` maps (stage, index) to the user's (cpu, memory) for that function.
    ``capacity`` is one invoker's (cores, MB); only ``libra`` needs it (no budget
    bounds its sizes). ValueError for an unknown ``policy``.
    """
    check_policy(policy)
    selection = select_stages(analysis, user)
    predictions = predictor.predict(dag_input_size, selection.slots)  # one batch for the whole request
    return plan_predicted(
        selection,
        predictions,
        user,
        allowed,
        memory_margin=memory_margin,
        policy=policy,
        capacity=capacity,
    )


def normalize_batch(
    predictions: Sequence[Sequence[Prediction]], allowed: AllowedValues, *, memory_margin: float = 0.0
) -> list[list[NormalizedDemand]]:
    """The normalizer's output for each request's predictions (memory with its margin),
    as the ``thesis`` and ``gleaner`` policies make it function by function, rounded
    for the whole batch at once (:func:`normalize_many`); for ``plan_predicted(...,
    normalized=)``."""
    margin = 1.0 + memory_margin
    flat = [p for request in predictions for p in request]
    demands = normalize_many([p.cpu for p in flat], [p.memory_mb * margin for p in flat], allowed)
    out: list[list[NormalizedDemand]] = []
    start = 0
    for request in predictions:
        out.append(demands[start : start + len(request)])
        start += len(request)
    return out


def plan_predicted(
    selection: Selection,
    predictions: Sequence[Prediction],
    user: Mapping[Slot, Demand],
    allowed: AllowedValues,
    *,
    memory_margin: float = 0.0,
    policy: str = "thesis",
    capacity: Demand | None = None,
    normalized: Sequence[NormalizedDemand] | None = None,
) -> Plan:
    """:func:`plan_request` from the predictions of ``selection.slots`` (made
    elsewhere, e.g. with a batch of requests: :meth:`Predictor.predict_many`).
    ``normalized``, when given, is :func:`normalize_batch`'s output for these
    predictions with this ``memory_margin`` (else the normalizer runs here)."""
    check_policy(policy)
    if len(predictions) != len(selection.slots):
        raise ValueError(f"{len(predictions)} predictions for {len(selection.slots)} functions")
    if normalized is not None and len(normalized) != len(predictions):
        raise ValueError(f"{len(normalized)} normalized demands for {len(predictions)} predictions")
    reasons = list(selection.reasons)
    allocations: dict[Slot, Allocation] = {}
    stage_plans: list[StagePlan] = []
    start = 0
    for stage in selection.stages:
        width = len(stage.slots)
        stage_user = [
            (float(user[s.stage, s.index][0]), float(user[s.stage, s.index][1])) for s in stage.slots
        ]
        pre = None if normalized is None else normalized[start : start + width]
        predicted = list(predictions[start : start + width])
        inputs = _Stage(stage, predicted, stage_user, allowed, memory_margin, pre)
        start += width
        sp = _decide(inputs, policy, reasons, capacity)
        stage_plans.append(sp)
        allocations.update(_allocations(stage, sp, allowed))
    return Plan(allocations, stage_plans, reasons, policy)
