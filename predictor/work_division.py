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

Scaling curves (:mod:`predictor.scaling`). A function with a fitted curve is not
linear below its cap: its time at c cores is ``W_i / cap_i`` (the linear model's
time at the cap) times ``t(c) / t(cap_i)`` of its curve. The greedy then also
stops feeding it above its user allocation when a step's marginal speedup falls
below :data:`MIN_MARGINAL_SPEEDUP` (below it, a step only gives back the user's
own cores); and once every function still fed would finish before one that is
not, it stops: more cores would shorten nothing and cost core-seconds, so they
stay unspent. A function without a curve keeps the linear model, and a stage
without curves divides exactly as before.

Core-second budget (DESIGN, "Scheduling under load"): a division never reserves
more core-seconds (sum of cores x predicted time) than the user allocations would.
A step that would pass that budget is not taken. With the linear model it never
binds: c x W / c = W below the cap, and a user allocation reserves at least W, so
it is checked only when a curve is present. With these two limits the greedy is
no longer optimal, but it still never plans a longer makespan than user
allocations on the grid: they pass both limits, and a function above its own was
fed there only while it finished after the final bottleneck, so that bottleneck,
below its own, can always grow back to it.

Unlike the peak-ratio validator (:mod:`predictor.validator`), which scales peaks
and so gives two functions with equal peaks equal cores however different their
work, this gives the longer one more, and never predicts a longer makespan.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from predictor.allocation import Grid
from predictor.scaling import ScalingCurve
from predictor.validator import budget_units

DivisionMode = Literal["divided", "rejected"]
Curves = Sequence[ScalingCurve | None]

# A step's marginal speedup: the speedup it gives as a fraction of what linear
# scaling would give for the same step, (t(c) / t(c + d) - 1) / (d / c); 1 for a
# linear function, 0 for one that does not speed up. For Amdahl's law it is
# 1 / (1 + r (c + d)), r = s / (1 - s). 0.5: a step must turn at least half of its
# cores into speed. From what was measured on this box: recognition2 x1.42-1.47 on
# 0.75 -> 1.5 cores and recognition1 x0.58-0.65 on 1.25 -> 0.5 fit s = 0.43-0.59
# (r = 0.75-1.4), so their steps fall below 0.5 between 0.75 and 1.25 cores:
# beyond, more than half of each added core would idle while another request
# waits. train4 (x3.9-4.2 on 5x the cores, s = 0.17-0.23) stays above 0.5 up to
# 3.3-5 cores, i.e. the whole 2-core box. And a function near its user allocation
# (0.25-1.25 cores here) turns 0.6-0.95 of a core into speed: cores past 0.5 serve
# a waiting request better.
MIN_MARGINAL_SPEEDUP = 0.5
# Float slack on the core-second budget: c x (W / c) is W only up to rounding.
_BUDGET_RTOL = 1e-9


@dataclass(frozen=True, slots=True)
class WorkDivision:
    cpu: tuple[float, ...]  # cores per function, in the order given; the user CPUs when rejected
    mode: DivisionMode
    reason: str
    makespan_s: float  # predicted, with ``cpu``; NaN when the work cannot be predicted
    # Predicted core-seconds reserved with ``cpu``, and with the user allocations (the
    # budget): core_s <= user_core_s whenever divided. NaN when not predictable.
    core_s: float = field(default=math.nan, compare=False)
    user_core_s: float = field(default=math.nan, compare=False)


def function_time(work: float, cap: float, cores: float, curve: ScalingCurve | None = None) -> float:
    """Predicted seconds of one function with ``cores``: ``work / min(cores, cap)``,
    or with a curve, ``work / cap`` times the curve's ``t(min(cores, cap)) / t(cap)``."""
    c = min(cores, cap)
    if curve is None:
        return work / c
    return work / cap * (curve.time_at(c) / curve.time_at(cap))


def _curve(curves: Curves | None, i: int) -> ScalingCurve | None:
    return None if curves is None else curves[i]


def _check_lengths(
    work: Sequence[float], caps: Sequence[float], cpu: Sequence[float], curves: Curves | None
) -> None:
    if not len(work) == len(caps) == len(cpu):
        raise ValueError(f"{len(work)} works, {len(caps)} caps and {len(cpu)} allocations")
    if curves is not None and len(curves) != len(work):
        raise ValueError(f"{len(curves)} curves for {len(work)} works")


def _usable(w: float, cores: float) -> bool:
    return math.isfinite(w) and math.isfinite(cores) and cores > 0


def predicted_makespan(
    work: Sequence[float], caps: Sequence[float], cpu: Sequence[float], curves: Curves | None = None
) -> float:
    """max_i of each function's predicted time (:func:`function_time`), in seconds for
    work in CPU-seconds; 0 for an empty stage, NaN when a term is not a finite,
    positive number."""
    _check_lengths(work, caps, cpu, curves)
    worst = 0.0
    for i, (w, cap, c) in enumerate(zip(work, caps, cpu, strict=True)):
        if not _usable(w, min(c, cap)):
            return math.nan
        worst = max(worst, function_time(w, cap, c, _curve(curves, i)))
    return worst


def predicted_core_seconds(
    work: Sequence[float], caps: Sequence[float], cpu: Sequence[float], curves: Curves | None = None
) -> float:
    """sum_i cores_i x predicted time_i: what the allocations reserve. NaN when a
    term is not a finite, positive number."""
    _check_lengths(work, caps, cpu, curves)
    total = 0.0
    for i, (w, cap, c) in enumerate(zip(work, caps, cpu, strict=True)):
        if not _usable(w, min(c, cap)):
            return math.nan
        total += c * function_time(w, cap, c, _curve(curves, i))
    return total


def marginal_speedup(curve: ScalingCurve | None, cores: float, step: float) -> float:
    """The speedup of going from ``cores`` to ``cores + step`` as a fraction of the
    linear one (see :data:`MIN_MARGINAL_SPEEDUP`); 1 without a curve."""
    if curve is None:
        return 1.0
    return (curve.speedup(cores, cores + step) - 1.0) * cores / step


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


def _curves_note(curves: Curves) -> str:
    shapes = "/".join("linear" if c is None else f"s={c.serial_fraction:.2f}" for c in curves)
    return f"scaling {shapes}"


def divide_work(
    work: Sequence[float],
    caps: Sequence[float],
    user_cpu: Sequence[float],
    grid: Grid,
    curves: Curves | None = None,
) -> WorkDivision:
    """Divide the stage's CPU budget (the sum of ``user_cpu``) to equalise predicted
    finish times. ``work`` in CPU-seconds and ``caps`` in cores, one per function,
    same order; caps are snapped up onto ``grid`` (never above its top). ``curves``,
    one per function or None, are their scaling curves (None: linear)."""
    if not len(work) == len(caps) == len(user_cpu):
        raise ValueError(f"{len(work)} works, {len(caps)} caps for {len(user_cpu)} user allocations")
    if curves is not None and len(curves) != len(work):
        raise ValueError(f"{len(curves)} curves for {len(work)} works")
    shaped = curves is not None and any(c is not None for c in curves)
    curves = curves if shaped else None
    user = tuple(float(u) for u in user_cpu)
    why_not = _invalid(work, caps)
    if why_not is not None:
        return WorkDivision(user, "rejected", f"cpu: {why_not}, user cpu kept", math.nan)
    cap_units = [grid.ceil_units(cap) for cap in caps]
    cap_values = [grid.value(u) for u in cap_units]
    user_core_s = predicted_core_seconds(work, cap_values, user, curves)
    budget = budget_units(user, grid)
    if budget is None:
        return WorkDivision(
            user,
            "rejected",
            f"cpu: user allocations {_fmt(user)} do not cover the minimums, user cpu kept",
            predicted_makespan(work, cap_values, user, curves),
            user_core_s,
            user_core_s,
        )

    def time(i: int, cores: float) -> float:
        return function_time(work[i], cap_values[i], cores, _curve(curves, i))

    # Whole steps above the minimum: every allocation is on the grid by construction,
    # and the budget is counted without float drift.
    units = [0] * len(work)
    # Linear functions cannot pass the core-second budget (module docstring): checked
    # only with curves, so a stage without any divides exactly as it always did.
    core_s = sum(grid.minimum * time(i, grid.minimum) for i in range(len(work)))
    limit = user_core_s * (1.0 + _BUDGET_RTOL) if curves is not None else math.inf
    if not core_s <= limit:  # also NaN: a budget that cannot be checked is not held
        return WorkDivision(
            user,
            "rejected",
            f"cpu: the minimums alone would reserve {core_s:.3g} core-s, above the user "
            f"allocations' {user_core_s:.3g}, user cpu kept",
            predicted_makespan(work, cap_values, user, curves),
            user_core_s,
            user_core_s,
        )
    stopped: list[str] = []
    # Max-heap on finish time; the lower index wins a tie, so the result is deterministic.
    heap = [(-time(i, grid.minimum), i) for i in range(len(work)) if cap_units[i] > 0]
    heapq.heapify(heap)
    # With curves, the longest time among functions that get no more cores: once the
    # others finish sooner, a step to them shortens nothing and costs core-seconds.
    floor = max((time(i, grid.minimum) for i in range(len(work)) if cap_units[i] == 0), default=0.0)
    spent = 0
    while spent < budget and heap:
        key, i = heapq.heappop(heap)
        if curves is not None and -key <= floor:
            break
        now, then = grid.value(units[i]), grid.value(units[i] + 1)
        curve = _curve(curves, i)
        # Below its user allocation a step only gives back the user's own cores: stopping
        # there would plan the request slower than without harvesting.
        if curve is not None and then > user[i] + 1e-9:
            gain = marginal_speedup(curve, min(now, cap_values[i]), then - now)
            if gain < MIN_MARGINAL_SPEEDUP:
                stopped.append(f"{i} at {now:g} (marginal speedup {gain:.2f})")
                floor = max(floor, -key)
                continue
        extra = then * time(i, then) - now * time(i, now)
        if core_s + extra > limit:
            stopped.append(f"{i} at {now:g} (core-second budget)")
            floor = max(floor, -key)
            continue
        core_s += extra
        units[i] += 1
        spent += 1
        if units[i] < cap_units[i]:
            heapq.heappush(heap, (-time(i, then), i))
        else:
            floor = max(floor, time(i, then))
    cpu = tuple(grid.value(u) for u in units)
    makespan = predicted_makespan(work, cap_values, cpu, curves)
    core_s = predicted_core_seconds(work, cap_values, cpu, curves)
    reason = (
        f"cpu: work {_fmt([round(w, 3) for w in work])} CPU-s divided over the budget {sum(user):g}: "
        f"{_fmt(cpu)}, predicted makespan {makespan:.3g} s"
    )
    if curves is not None:
        reason += f"; {_curves_note(curves)}, {core_s:.3g} of the user allocations' {user_core_s:.3g} core-s"
    if stopped:
        reason += f"; stopped: {', '.join(stopped)}"
    left = budget - spent
    if left > 0:
        if curves is not None:
            reason += f"; {left * grid.step:g} cores unspent (more would not shorten the stage)"
        else:
            reason += f"; {left * grid.step:g} cores unspent (every function at its useful maximum)"
    return WorkDivision(cpu, "divided", reason, makespan, core_s, user_core_s)
