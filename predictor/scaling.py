"""How a function's run time scales with its cores: Amdahl's law, fitted per function. Pure.

Cores are not worth a linear share. Measured here: recognition2 given 1.5 cores
instead of 0.75 ran only x1.42-1.47 faster; recognition1 cut from 1.25 to 0.5 cores
kept x0.58-0.65 of its speed; train4 ran x3.9-4.2 faster on 5x the cores. StepConf
(Eq. 1) makes the same point: multi-core time is "no longer inversely proportional".

The curve is Amdahl's law with ``c`` cores and serial fraction ``s``::

    t(c) = t1 * (s + (1 - s) / c)

``s`` in [0, 1]: 0 is linear (the planner's model without a curve), 1 no speedup at
all. Both bounds keep the curve monotone: more cores never predict a longer run.

Fit (:func:`fit_curve`): samples are (cores, seconds, group); a group is one input
run at several allocations, so inputs of very different sizes share one ``s`` and
each has its own ``t1``. Least squares on log(seconds), i.e. on relative error, so
a 10 s run does not outweigh a 1 s run: for a given ``s`` each group's log ``t1`` is
its mean residual (closed form), and ``s`` is found by a scan of [0, 1] refined by
golden-section search. Repeated runs of one group at one allocation count once, by
their median (a stray slow run moves a median less than a mean). Samples that are
not finite or not positive are dropped and counted. Fewer than
:data:`MIN_ALLOCATIONS` distinct allocations (in groups seen at two or more), or a
fit worse than :data:`MAX_LOG_RMSE`, give no curve, with the reason: the planner
then keeps its linear model.

:func:`fit_curves` turns profile rows into samples: per parallel function, each
input's rows; cores above the function's useful maximum (its peak at the profile
allocation, on the grid: the planner's cap) count as that maximum, since a
single-threaded function at 2 cores runs as at 1. Run time excludes the container
start (``init_ms``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from predictor.allocation import Grid
from predictor.dataset import ProfileRow

Slot = tuple[int, int]  # (stage, index), as in predictor.plan

MIN_ALLOCATIONS = 3  # two points fit any 2-parameter curve exactly: no check on the form
# Typical relative error of the fit, in natural-log units (0.3 ~ +-35 %): noisier
# samples say less about the shape than the linear default does.
MAX_LOG_RMSE = 0.3
_SCAN = 100  # grid points over [0, 1] before the golden-section refinement
_GOLDEN_ITERATIONS = 60  # the bracket shrinks x0.618 each: 1e-12 of a scan step
_CORES_DIGITS = 6  # allocations closer than this are one allocation


@dataclass(frozen=True, slots=True)
class ScalingCurve:
    """Amdahl's law for one function: ``t(c) = t1 * (s + (1 - s) / c)``."""

    serial_fraction: float  # s, in [0, 1]
    t1: float = 1.0  # seconds at one core; the geometric mean over inputs when fitted over several
    samples: int = 0  # (input, allocation) cells the fit used
    allocations: tuple[float, ...] = ()  # the distinct cores it saw, ascending
    rmse_log: float = 0.0  # typical residual of the fit, natural-log units

    def __post_init__(self) -> None:
        s = self.serial_fraction
        if not (math.isfinite(s) and 0.0 <= s <= 1.0):
            raise ValueError(f"serial fraction {s!r} is not in [0, 1]")
        if not (math.isfinite(self.t1) and self.t1 > 0):
            raise ValueError(f"t1 {self.t1!r} is not a positive number")

    def time_at(self, cores: float) -> float:
        """Predicted seconds at ``cores`` (> 0)."""
        if not (cores > 0):
            raise ValueError(f"cores must be positive, got {cores!r}")
        s = self.serial_fraction
        return self.t1 * (s + (1.0 - s) / cores)

    def speedup(self, c_from: float, c_to: float) -> float:
        """How many times faster at ``c_to`` cores than at ``c_from`` (< 1: slower)."""
        return self.time_at(c_from) / self.time_at(c_to)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": "amdahl",
            "serial_fraction": self.serial_fraction,
            "t1": self.t1,
            "samples": self.samples,
            "allocations": list(self.allocations),
            "rmse_log": self.rmse_log,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScalingCurve:
        """ValueError for anything :meth:`to_dict` would not have written."""
        if not isinstance(data, Mapping) or data.get("model", "amdahl") != "amdahl":
            raise ValueError(f"not an Amdahl scaling curve: {data!r}")
        try:
            return cls(
                serial_fraction=float(data["serial_fraction"]),
                t1=float(data.get("t1", 1.0)),
                samples=int(data.get("samples", 0)),
                allocations=tuple(float(c) for c in data.get("allocations", ())),
                rmse_log=float(data.get("rmse_log", 0.0)),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"scaling curve {data!r}: {exc}") from exc


class Sample(NamedTuple):
    cores: float
    seconds: float
    group: Hashable = 0  # samples of one group ran the same input


@dataclass(frozen=True, slots=True)
class CurveFit:
    curve: ScalingCurve | None  # None: keep the linear model, see ``reason``
    reason: str
    dropped: int = 0  # samples left out as not finite or not positive


def _usable(sample: Sample) -> bool:
    return (
        math.isfinite(sample.cores)
        and math.isfinite(sample.seconds)
        and sample.cores > 0
        and sample.seconds > 0
    )


def _log_g(s: float, cores: float) -> float:
    return math.log(s + (1.0 - s) / cores)


def _sse(s: float, groups: Sequence[Sequence[tuple[float, float]]]) -> float:
    """Sum of squared log residuals at ``s``, each group at its best t1."""
    total = 0.0
    for points in groups:
        residuals = [y - _log_g(s, c) for c, y in points]
        mean = sum(residuals) / len(residuals)
        total += sum((r - mean) ** 2 for r in residuals)
    return total


def _best_serial_fraction(groups: Sequence[Sequence[tuple[float, float]]]) -> float:
    """argmin of :func:`_sse` over [0, 1]: a scan, then golden section around its best."""
    scan = [i / _SCAN for i in range(_SCAN + 1)]
    errors = [_sse(s, groups) for s in scan]
    best = min(range(len(scan)), key=lambda i: (errors[i], i))
    lo, hi = scan[max(best - 1, 0)], scan[min(best + 1, _SCAN)]
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = _sse(a, groups), _sse(b, groups)
    for _ in range(_GOLDEN_ITERATIONS):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = _sse(a, groups)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = _sse(b, groups)
    refined = (lo + hi) / 2.0
    # The bounds themselves are candidates: a golden bracket never evaluates its ends.
    candidates = [(errors[best], scan[best]), (_sse(refined, groups), refined)]
    return min(max(min(candidates)[1], 0.0), 1.0)


def fit_curve(samples: Iterable[Sample | tuple[float, float] | tuple[float, float, Hashable]]) -> CurveFit:
    """Fit Amdahl's law to (cores, seconds[, group]) samples; see the module docstring."""
    cells: dict[tuple[Hashable, float], list[float]] = {}
    dropped = 0
    for raw in samples:
        sample = Sample(*raw)
        if not _usable(sample):
            dropped += 1
            continue
        cells.setdefault((sample.group, round(sample.cores, _CORES_DIGITS)), []).append(sample.seconds)
    by_group: dict[Hashable, list[tuple[float, float]]] = {}
    for (group, cores), seconds in cells.items():
        by_group.setdefault(group, []).append((cores, math.log(statistics.median(seconds))))
    # A group seen at one allocation only fixes its own t1: it says nothing about s.
    groups = [sorted(points) for points in by_group.values() if len(points) >= 2]
    allocations = tuple(sorted({c for points in groups for c, _ in points}))
    bad = f"; {dropped} bad samples dropped" if dropped else ""
    if len(allocations) < MIN_ALLOCATIONS:
        seen = ", ".join(f"{c:g}" for c in allocations) or "none"
        return CurveFit(
            None,
            f"{len(allocations)} distinct CPU allocations (cores {seen}) on a common input, "
            f"{MIN_ALLOCATIONS} needed: linear{bad}",
            dropped,
        )
    s = _best_serial_fraction(groups)
    n_cells = sum(len(points) for points in groups)
    freedom = max(n_cells - len(groups) - 1, 1)  # one t1 per group, and s
    rmse = math.sqrt(_sse(s, groups) / freedom)
    if rmse > MAX_LOG_RMSE:
        return CurveFit(
            None, f"samples too noisy to fit (log rmse {rmse:.2f} > {MAX_LOG_RMSE:g}): linear{bad}", dropped
        )
    log_t1 = [sum(y - _log_g(s, c) for c, y in points) / len(points) for points in groups]
    t1 = math.exp(sum(log_t1) / len(log_t1))
    curve = ScalingCurve(s, t1, n_cells, allocations, rmse)
    why = (
        f"Amdahl s={s:.3f} from {n_cells} samples over {len(groups)} inputs at "
        f"{', '.join(f'{c:g}' for c in allocations)} cores (log rmse {rmse:.3f}){bad}"
    )
    return CurveFit(curve, why, dropped)


# ---- from profile rows ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScalingFits:
    """One DAG's curves: per parallel function, a curve or why there is none."""

    curves: dict[Slot, ScalingCurve] = field(default_factory=dict)
    reasons: dict[Slot, str] = field(default_factory=dict)  # every function's, fitted or not


def _useful_cores(rows: Sequence[ProfileRow], grid: Grid) -> float:
    """The grid's A(peak) of the input's largest measured peak: the cores it can use."""
    peaks = [r.peak_cpu for r in rows if math.isfinite(r.peak_cpu) and r.peak_cpu > 0]
    return grid.at_least(max(peaks)) if peaks else math.inf


def curve_samples(rows: Sequence[ProfileRow], grid: Grid) -> list[Sample]:
    """One function's rows as samples: grouped by input, cores capped at its useful maximum."""
    by_input: dict[tuple[int, int], list[ProfileRow]] = {}
    for r in rows:
        by_input.setdefault((r.dag_input_size, r.input_size), []).append(r)
    samples: list[Sample] = []
    for key, group in by_input.items():
        useful = _useful_cores(group, grid)
        for r in group:
            seconds = (r.duration_ms - r.init_ms) / 1000.0
            samples.append(Sample(min(r.alloc_cpu, useful), seconds, key))
    return samples


def fit_curves(rows: Iterable[ProfileRow], grid: Grid) -> ScalingFits:
    """A curve for every parallel function of the rows (successful runs only)."""
    by_slot: dict[Slot, list[ProfileRow]] = {}
    for r in rows:
        if r.parallel and r.success:
            by_slot.setdefault((r.stage, r.index), []).append(r)
    fits = ScalingFits()
    for slot in sorted(by_slot):
        fit = fit_curve(curve_samples(by_slot[slot], grid))
        fits.reasons[slot] = fit.reason
        if fit.curve is not None:
            fits.curves[slot] = fit.curve
    return fits


def slot_key(slot: Slot) -> str:
    """``"stage.index"``, as plans key functions."""
    return f"{slot[0]}.{slot[1]}"


def parse_slot_key(key: str) -> Slot:
    """ValueError unless ``key`` is ``"stage.index"``."""
    stage, sep, index = key.partition(".")
    if not sep:
        raise ValueError(f"{key!r} is not stage.index")
    return int(stage), int(index)
