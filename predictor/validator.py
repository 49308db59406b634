"""The harvesting validator (thesis §3.5.2): fit one parallel stage's demands
into the stage's budget. Pure.

The budget of a stage is the sum of its functions' user allocations, per
dimension. Each dimension is decided on its own:

CPU
    *fit*       the normalized demands sum to at most the budget: each function
                gets its demand (what is left over is harvested).
    *scaled*    the demands exceed the budget: keep their ratio and scale them
                into the budget on allowed values (floor to the step, never below
                the minimum; leftover steps go to the largest shortfalls), so the
                sum is as close to the budget as the grid allows, never above it.
                Thesis: 6-2 with 4 units -> 3-1; 5-1 with 4 units -> 3-1.
    *rejected*  not even the minimums fit (user allocations below the grid):
                every function keeps its user CPU.
Memory
    *fit*       as for CPU.
    *rejected*  the demands exceed the budget: every function keeps its user
                memory. Memory is never scaled below a predicted demand, because
                an OOM kill fails the whole request, while too little CPU only
                slows a function down.

Arithmetic is done in whole grid steps above the minimum, so every allocation is
on the grid by construction and budgets are compared without float drift.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from predictor.allocation import AllowedValues, Grid

Demand = tuple[float, float]  # (cpu cores, memory MB): a demand or a user allocation
# The validator decides fit / scaled / rejected; the planner's other policies add
# "divided" (predictor.work_division) and "sized" (predictor.peak_sizing).
CpuMode = Literal["fit", "scaled", "rejected", "divided", "sized"]
MemMode = Literal["fit", "rejected", "sized"]


@dataclass(frozen=True, slots=True)
class StageDecision:
    cpu_mode: CpuMode
    mem_mode: MemMode
    allocations: tuple[Demand, ...]  # per function, in the order given; rejected dimensions = user
    reason: str
    # Each dimension's part of ``reason``, so a policy can keep one and replace the other.
    cpu_why: str = ""
    mem_why: str = ""


def budget_units(user: Sequence[float], grid: Grid) -> int | None:
    """Whole steps above the minimums that the user allocations pay for; None when
    the user allocations do not even cover every function's minimum."""
    spare = (sum(user) - len(user) * grid.minimum) / grid.step
    if spare < -1e-6:
        return None
    return math.floor(spare + 1e-6)


def _scale_units(demands: Sequence[float], demand_units: Sequence[int], budget: int, grid: Grid) -> list[int]:
    """Units per function proportional to ``demands`` that sum to exactly ``budget``
    (requires sum(demand_units) > budget >= 0); never above a function's demand."""
    total_value = budget * grid.step + len(demands) * grid.minimum
    scale = total_value / sum(demands)
    targets = [(d * scale - grid.minimum) / grid.step for d in demands]  # ideal, in units
    units = [min(max(math.floor(t + 1e-6), 0), du) for t, du in zip(targets, demand_units, strict=True)]
    order = range(len(units))
    # Raising small demands to the minimum can overshoot: take back from the largest surplus.
    while sum(units) > budget:
        i = max((i for i in order if units[i] > 0), key=lambda i: (units[i] - targets[i], -i))
        units[i] -= 1
    # Hand leftover steps to the largest shortfalls, never above the demand.
    while sum(units) < budget:
        i = max((i for i in order if units[i] < demand_units[i]), key=lambda i: (targets[i] - units[i], -i))
        units[i] += 1
    return units


def _fmt(values: Sequence[float]) -> str:
    return "-".join(f"{v:g}" for v in values)


# Decisions remembered: demands are grid values and user allocations a DAG's few
# limits, so a stage sees the same inputs again and again (a planner's hot path).
DECISIONS_CACHED = 4096


def validate_stage(
    demands: Sequence[Demand], user: Sequence[Demand], allowed: AllowedValues
) -> StageDecision:
    """Decide one parallel stage: ``demands`` are the normalized predictions and
    ``user`` the user allocations, one ``(cpu, mem)`` per function, same order."""
    if len(demands) != len(user):
        raise ValueError(f"{len(demands)} demands for {len(user)} user allocations")
    key_d, key_u = tuple(demands), tuple(user)
    if _cacheable(key_d) and _cacheable(key_u):
        return _decided(key_d, key_u, allowed)
    return _decide(demands, user, allowed)


def _cacheable(pairs: tuple[Demand, ...]) -> bool:
    """Whether equal inputs are the same inputs: pairs of positive finite floats (-0.0 == 0.0
    and 1 == 1.0, yet each prints and serializes its own way; a list cannot be a key)."""
    for pair in pairs:
        if type(pair) is not tuple or len(pair) != 2:
            return False
        c, m = pair
        if not (type(c) is float and type(m) is float and 0 < c < math.inf and 0 < m < math.inf):
            return False
    return True


@functools.lru_cache(maxsize=DECISIONS_CACHED)
def _decided(demands: tuple[Demand, ...], user: tuple[Demand, ...], allowed: AllowedValues) -> StageDecision:
    return _decide(demands, user, allowed)  # a StageDecision is immutable: shared safely


def _decide(demands: Sequence[Demand], user: Sequence[Demand], allowed: AllowedValues) -> StageDecision:
    cpu_grid, mem_grid = allowed.cpu, allowed.mem
    user_cpu = [u[0] for u in user]
    user_mem = [u[1] for u in user]
    # Demands are meant to be normalized already; snapping them again costs nothing and
    # keeps every output on the grid even if a caller forgot.
    cpu_units = [cpu_grid.ceil_units(d[0]) for d in demands]
    mem_units = [mem_grid.ceil_units(d[1]) for d in demands]
    cpu_demand = [cpu_grid.value(u) for u in cpu_units]
    mem_demand = [mem_grid.value(u) for u in mem_units]

    cpu_mode: CpuMode
    cpu_budget = budget_units(user_cpu, cpu_grid)
    if cpu_budget is None:
        cpu_mode, cpu = "rejected", list(user_cpu)
        cpu_why = f"cpu: user allocations {_fmt(user_cpu)} do not cover the minimums, user cpu kept"
    elif sum(cpu_units) <= cpu_budget:
        cpu_mode, cpu = "fit", cpu_demand
        cpu_why = f"cpu: demands {_fmt(cpu_demand)} fit the budget {sum(user_cpu):g}"
    else:
        cpu_mode = "scaled"
        cpu = [cpu_grid.value(u) for u in _scale_units(cpu_demand, cpu_units, cpu_budget, cpu_grid)]
        cpu_why = f"cpu: demands {_fmt(cpu_demand)} exceed the budget {sum(user_cpu):g}, scaled: {_fmt(cpu)}"

    mem_mode: MemMode
    mem_budget = budget_units(user_mem, mem_grid)
    if mem_budget is not None and sum(mem_units) <= mem_budget:
        mem_mode, mem = "fit", mem_demand
        mem_why = f"memory: demands {_fmt(mem_demand)} MB fit the budget {sum(user_mem):g} MB"
    elif mem_budget is None:
        mem_mode, mem = "rejected", list(user_mem)
        mem_why = f"memory: user allocations {_fmt(user_mem)} MB do not cover the minimums, user memory kept"
    else:
        mem_mode, mem = "rejected", list(user_mem)
        mem_why = (
            f"memory: demands {_fmt(mem_demand)} MB exceed the budget {sum(user_mem):g} MB, "
            "user memory kept (memory is never scaled below a predicted demand)"
        )
    return StageDecision(
        cpu_mode, mem_mode, tuple(zip(cpu, mem, strict=True)), f"{cpu_why}; {mem_why}", cpu_why, mem_why
    )
