"""Divide one parallel stage's CPU budget by predicted work. Pure; no I/O.

The stage finishes with its slowest function, so the goal is the smallest
predicted *makespan*: function i with work W_i (CPU-seconds: duration at the
maximum allocation x its peak cores there) and c_i cores finishes after
W_i / min(c_i, cap_i), where cap_i is its useful parallelism (the predicted peak
at the maximum allocation on the grid: more cores than that go unused). So::

    minimise  max_i W_i / min(c_i, cap_i)
    s.t.      sum_i c_i <= budget (the sum of the user CPUs),
              grid.minimum <= c_i <= cap_i, every c_i on the grid.

Greedy on whole grid steps: start everyone at the minimum and give one step at a
time to the function that would finish last and is still below its cap. Each
W_i / c_i decreases in c_i, and for a min-max of decreasing per-item costs on unit
steps this greedy is optimal at every budget: it only ever feeds the current
bottleneck, which any better division would also have to feed. Steps left when
every function is at its cap stay unspent (harvested).

Unlike the peak-ratio validator (:mod:`predictor.validator`), which scales peaks
and so gives two functions with equal peaks equal cores however different their
work, this gives the longer one more, and never predicts a longer makespan.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from predictor.allocation import Grid
from predictor.validator import budget_units

DivisionMode = Literal["divided", "rejected"]


@dataclass(frozen=True, slots=True)
class WorkDivision:
    cpu: tuple[float, ...]  # cores per function, in the order given; the user CPUs when rejected
    mode: DivisionMode
    reason: str
    makespan_s: float  # predicted, with ``cpu``; NaN when the work cannot be predicted


def predicted_makespan(work: Sequence[float], caps: Sequence[float], cpu: Sequence[float]) -> float:
    """max_i work_i / min(cpu_i, cap_i), in seconds for work in CPU-seconds; 0 for an
    empty stage, NaN when a term is not a finite, positive number."""
    if not len(work) == len(caps) == len(cpu):
        raise ValueError(f"{len(work)} works, {len(caps)} caps and {len(cpu)} allocations")
    worst = 0.0
    for w, cap, c in zip(work, caps, cpu, strict=True):
        cores = min(c, cap)
        if not (math.isfinite(w) and math.isfinite(cores) and cores > 0):
            return math.nan
        worst = max(worst, w / cores)
    return worst


def _fmt(values: Sequence[float]) -> str:
    return "-".join(f"{v:g}" for v in values)


def _invalid(work: Sequence[float], caps: Sequence[float]) -> str | None:
    """Why these inputs cannot be divided (the caller falls back), or None."""
    for i, w in enumerate(work):
        if not (math.isfinite(w) and w > 0):
            return f"function {i} has no usable predicted work ({w!r} CPU-s)"
    for i, cap in enumerate(caps):
        if not (math.isfinite(cap) and cap > 0):
            return f"function {i} has no usable cap ({cap!r} cores)"
    return None


def divide_work(
    work: Sequence[float], caps: Sequence[float], user_cpu: Sequence[float], grid: Grid
) -> WorkDivision:
    """Divide the stage's CPU budget (the sum of ``user_cpu``) to equalise predicted
    finish times. ``work`` in CPU-seconds and ``caps`` in cores, one per function,
    same order; caps are snapped up onto ``grid`` (never above its top)."""
    if not len(work) == len(caps) == len(user_cpu):
        raise ValueError(f"{len(work)} works, {len(caps)} caps for {len(user_cpu)} user allocations")
    user = tuple(float(u) for u in user_cpu)
    why_not = _invalid(work, caps)
    if why_not is not None:
        return WorkDivision(user, "rejected", f"cpu: {why_not}, user cpu kept", math.nan)
    cap_units = [grid.ceil_units(cap) for cap in caps]
    cap_values = [grid.value(u) for u in cap_units]
    budget = budget_units(user, grid)
    if budget is None:
        return WorkDivision(
            user,
            "rejected",
            f"cpu: user allocations {_fmt(user)} do not cover the minimums, user cpu kept",
            predicted_makespan(work, cap_values, user),
        )
    # Whole steps above the minimum: every allocation is on the grid by construction,
    # and the budget is counted without float drift.
    units = [0] * len(work)
    # Max-heap on finish time; the lower index wins a tie, so the result is deterministic.
    heap = [(-w / grid.minimum, i) for i, w in enumerate(work) if cap_units[i] > 0]
    heapq.heapify(heap)
    spent = 0
    while spent < budget and heap:
        _, i = heapq.heappop(heap)
        units[i] += 1
        spent += 1
        if units[i] < cap_units[i]:
            heapq.heappush(heap, (-work[i] / grid.value(units[i]), i))
    cpu = tuple(grid.value(u) for u in units)
    makespan = predicted_makespan(work, cap_values, cpu)
    reason = (
        f"cpu: work {_fmt([round(w, 3) for w in work])} CPU-s divided over the budget {sum(user):g}: "
        f"{_fmt(cpu)}, predicted makespan {makespan:.3g} s"
    )
    left = budget - spent
    if left > 0:
        reason += f"; {left * grid.step:g} cores unspent (every function at its useful maximum)"
    return WorkDivision(cpu, "divided", reason, makespan)
