"""Allowed allocations and the utilization normalizer (thesis §3.5.2, §4.1.2). Pure.

An allocation dimension (CPU cores or memory MB) is a *grid*: ``minimum``,
``minimum + step``, ... up to the largest such value not above ``maximum``. The
grid is anchored at the minimum (Table 3.2: 1..8 cores step 1, 128..8192 MB
step 128; our 2-core machine: 0.25..2 cores step 0.25).

``A(P)`` is the smallest allowed allocation >= P; the normalizer rounds every
prediction *up* with it (2.78 cores -> 3, 234.32 MB -> 256 MB).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from gleaner.errors import SettingsError

# Float slack, in grid steps: 0.75000000001 with step 0.25 is 0.75, not 1.0.
EPS_STEPS = 1e-6
# Grids up to this many steps keep their values in a table (the planner reads them per
# function); a finer grid computes each value when asked.
TABLE_UNITS = 4096


@dataclass(frozen=True, slots=True)
class Grid:
    """One dimension's allowed values: ``minimum + k * step`` for k = 0..``units``."""

    minimum: float
    maximum: float
    step: float
    # Derived once (the grid is immutable): the planner asks for them per function.
    units: int = field(init=False, repr=False, compare=False)  # steps from the minimum to the top
    top: float = field(init=False, repr=False, compare=False)  # the largest allowed value
    _values: tuple[float, ...] = field(init=False, repr=False, compare=False)  # value(k), k <= units

    def __post_init__(self) -> None:
        values = (self.minimum, self.maximum, self.step)
        if not all(math.isfinite(v) for v in values):
            raise SettingsError(f"allocation grid {values} has a non-finite value")
        if not 0 < self.minimum <= self.maximum or self.step <= 0:
            raise SettingsError(
                f"allocation grid needs 0 < min <= max and step > 0, got "
                f"min={self.minimum} max={self.maximum} step={self.step}"
            )
        units = math.floor((self.maximum - self.minimum) / self.step + EPS_STEPS)
        object.__setattr__(self, "units", units)
        table = tuple(self._computed(k) for k in range(units + 1)) if units <= TABLE_UNITS else ()
        object.__setattr__(self, "_values", table)
        object.__setattr__(self, "top", self.value(units))

    def _computed(self, units: int) -> float:
        # Rounded so that 0.25 * 3 prints as 0.75, not 0.7500000000000001.
        return round(self.minimum + units * self.step, 9)

    def value(self, units: int) -> float:
        if type(units) is int and 0 <= units < len(self._values):
            return self._values[units]
        return self._computed(units)

    def ceil_units(self, value: float) -> int:
        """Units of A(value), clamped into the grid; NaN counts as the minimum."""
        if value != value:  # NaN
            return 0
        if value <= self.minimum:
            return 0
        if value >= self.top:  # also keeps a huge probe from overflowing the division to inf
            return self.units
        raw = math.ceil((value - self.minimum) / self.step - EPS_STEPS)
        return raw if 0 <= raw <= self.units else min(max(raw, 0), self.units)

    def floor_units(self, value: float) -> int:
        """Units of the largest allowed value <= value, clamped into the grid."""
        if math.isnan(value) or value <= self.minimum:
            return 0
        if value >= self.top:  # also keeps a huge probe from overflowing the division to inf
            return self.units
        return min(math.floor((value - self.minimum) / self.step + EPS_STEPS), self.units)

    def at_least(self, value: float) -> float:
        """A(value): the smallest allowed value >= ``value``, clamped into the grid."""
        return self.value(self.ceil_units(value))

    def contains(self, value: float) -> bool:
        """Whether ``value`` is an allowed value (up to float noise)."""
        if not math.isfinite(value):
            return False
        units = (value - self.minimum) / self.step
        return -EPS_STEPS <= units <= self.units + EPS_STEPS and abs(units - round(units)) <= EPS_STEPS


class _ResourceSettings(Protocol):
    """The part of ``gleaner.settings.Settings`` that defines the grids."""

    @property
    def cpu_min(self) -> float: ...
    @property
    def cpu_max(self) -> float: ...
    @property
    def cpu_step(self) -> float: ...
    @property
    def memory_min_mb(self) -> int: ...
    @property
    def memory_max_mb(self) -> int: ...
    @property
    def memory_step_mb(self) -> int: ...


@dataclass(frozen=True, slots=True)
class AllowedValues:
    """The allowed allocation grids of one deployment (``gleaner.settings``)."""

    cpu_min: float
    cpu_max: float
    cpu_step: float
    mem_min: float
    mem_max: float
    mem_step: float
    # Built once, so bad settings fail here and the planner's hot path reads them as they are.
    cpu: Grid = field(init=False, repr=False, compare=False)
    mem: Grid = field(init=False, repr=False, compare=False)
    # (cpu units, memory units) -> its NormalizedDemand without notes (normalize_many's).
    demands: dict[tuple[int, int], NormalizedDemand] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for f in fields(self):  # floats, as from settings: 1 and 1.0 would print apart in a plan
            if f.init:
                object.__setattr__(self, f.name, float(getattr(self, f.name)))
        object.__setattr__(self, "cpu", Grid(self.cpu_min, self.cpu_max, self.cpu_step))
        object.__setattr__(self, "mem", Grid(self.mem_min, self.mem_max, self.mem_step))
        object.__setattr__(self, "demands", {})

    @classmethod
    def from_settings(cls, settings: _ResourceSettings) -> AllowedValues:
        return cls(
            float(settings.cpu_min),
            float(settings.cpu_max),
            float(settings.cpu_step),
            float(settings.memory_min_mb),
            float(settings.memory_max_mb),
            float(settings.memory_step_mb),
        )

    def as_dict(self) -> dict[str, float]:
        return {
            "cpu_min": self.cpu_min,
            "cpu_max": self.cpu_max,
            "cpu_step": self.cpu_step,
            "mem_min": self.mem_min,
            "mem_max": self.mem_max,
            "mem_step": self.mem_step,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AllowedValues:
        return cls(**{f.name: float(data[f.name]) for f in fields(cls) if f.init})


# Thesis Table 3.2.
THESIS_TABLE_3_2 = AllowedValues(1.0, 8.0, 1.0, 128.0, 8192.0, 128.0)


def allowed_at_least(value: float, minimum: float, maximum: float, step: float) -> float:
    """A(P): the smallest allowed allocation >= ``value``, clamped into [min, max]."""
    return Grid(minimum, maximum, step).at_least(value)


@dataclass(frozen=True, slots=True)
class NormalizedDemand:
    cpu: float
    mem: float
    notes: tuple[str, ...]  # why a prediction was not simply rounded up (NaN, negative, above max)


def _normalize_one(name: str, unit: str, value: float, grid: Grid, notes: list[str]) -> float:
    if math.isnan(value):
        notes.append(f"{name} prediction is NaN: using the minimum {grid.minimum:g}{unit}")
    elif value < 0:
        notes.append(f"{name} prediction {value:.4g}{unit} is negative: the minimum {grid.minimum:g}{unit}")
    elif value > grid.top + EPS_STEPS * grid.step:
        notes.append(f"{name} prediction {value:.4g}{unit} is above the maximum: {grid.top:g}{unit}")
    # Positive values below the minimum are not flagged: A(P) is the minimum there.
    return grid.at_least(value)


def normalize_flagged(cpu: float, mem: float, allowed: AllowedValues) -> NormalizedDemand:
    """Round both predictions up to allowed values and say which ones were forced."""
    notes: list[str] = []
    c = _normalize_one("cpu", " cores", cpu, allowed.cpu, notes)
    m = _normalize_one("memory", " MB", mem, allowed.mem, notes)
    return NormalizedDemand(c, m, tuple(notes))


# Below this many pairs numpy's fixed cost per call is more than the scalar normalizer's
# (measured: ~100 us against ~3.5 us a pair on this box), so a small batch goes pair by pair.
VECTOR_MIN_PAIRS = 24
DEMANDS_KEPT = 1 << 16  # grid points whose demand an AllowedValues keeps (a fine grid has more)


def _plain_units(values: Sequence[float], grid: Grid) -> tuple[list[int], list[bool]]:
    """``grid.ceil_units`` of each value, and whether :func:`_normalize_one` would add no
    note for it (not NaN, not negative, not above the maximum): the scalar path's float64
    operations, for a whole batch at once (units of a noted value are not used)."""
    v: NDArray[np.float64] = np.array(values, dtype=np.float64)
    plain = (v >= 0) & (v <= grid.top + EPS_STEPS * grid.step)  # NaN compares False
    v[~plain] = 0.0  # noted values go through normalize_flagged: keep them out of the arithmetic
    above = v > grid.minimum
    raw = np.ceil((v - grid.minimum) / grid.step - EPS_STEPS)
    np.maximum(raw, 0.0, out=raw)
    np.minimum(raw, grid.units, out=raw)
    raw *= above  # at or below the minimum: unit 0
    return raw.astype(np.int64).tolist(), plain.tolist()


def normalize_many(
    cpu: Sequence[float], mem: Sequence[float], allowed: AllowedValues
) -> list[NormalizedDemand]:
    """:func:`normalize_flagged` of each (cpu, mem) pair, the rounding done with numpy for
    all pairs at once: the same numbers (the same float64 operations, the grid's own
    values); a pair with a note goes through :func:`normalize_flagged` itself, and so
    does every pair of a batch too small for numpy to pay."""
    if len(cpu) != len(mem):
        raise ValueError(f"{len(cpu)} cpu predictions for {len(mem)} memory predictions")
    if len(cpu) < VECTOR_MIN_PAIRS:
        return [normalize_flagged(c, m, allowed) for c, m in zip(cpu, mem, strict=True)]
    cpu_grid, mem_grid = allowed.cpu, allowed.mem
    cpu_units, cpu_plain = _plain_units(cpu, cpu_grid)
    mem_units, mem_plain = _plain_units(mem, mem_grid)
    made = allowed.demands  # one immutable demand per grid point, shared: building one costs ~2 us
    out: list[NormalizedDemand] = []
    for c, m, cu, mu, cp, mp in zip(cpu, mem, cpu_units, mem_units, cpu_plain, mem_plain, strict=True):
        if not (cp and mp):
            out.append(normalize_flagged(c, m, allowed))
            continue
        demand = made.get((cu, mu))
        if demand is None:
            demand = NormalizedDemand(cpu_grid.value(cu), mem_grid.value(mu), ())
            if len(made) < DEMANDS_KEPT:
                made[(cu, mu)] = demand
        out.append(demand)
    return out


def normalize(cpu: float, mem: float, allowed: AllowedValues) -> tuple[float, float]:
    """The utilization normalizer: each prediction rounded UP to the next allowed value."""
    n = normalize_flagged(cpu, mem, allowed)
    return n.cpu, n.mem


def is_accurate(predicted: float, actual: float, grid: Grid) -> bool:
    """Thesis §4.1.2: P with error dP = |P - actual| is accurate when P + dP < A(P).

    Equality (within float noise) counts as accurate: under a strict ``<`` a
    perfect prediction that lands on an allowed value (a straggler saturated at
    the maximum allocation) would count as inaccurate.
    """
    if not (math.isfinite(predicted) and math.isfinite(actual)):
        return False
    error = abs(predicted - actual)
    return predicted + error <= grid.at_least(predicted) + EPS_STEPS * grid.step
