"""Peak sizing: the Libra / Freyr baseline. Pure; no I/O.

Every function gets its own normalized predicted peak, with no stage budget:
CPU = A(predicted peak cores), memory = A(predicted peak MB x (1 + margin)).
A function whose user allocation was generous gives cores back; one whose peak
is above it gets more, whatever its siblings need. Values are clamped into the
grid and, when given, to what one invoker can hold: a function larger than an
invoker could never be placed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from predictor.allocation import AllowedValues, Grid, normalize_flagged


@dataclass(frozen=True, slots=True)
class PeakSize:
    cpu: float  # cores, on the CPU grid
    memory_mb: float  # MB, on the memory grid
    notes: tuple[str, ...]  # why a value is not simply the rounded-up prediction


def _clamp(name: str, unit: str, value: float, limit: float, grid: Grid, notes: list[str]) -> float:
    """``value`` lowered to the largest grid value that fits ``limit`` (never below the minimum)."""
    if value <= limit:
        return value
    clamped = grid.value(grid.floor_units(limit))
    notes.append(f"{name} {value:g}{unit} is above the invoker capacity {limit:g}{unit}: {clamped:g}{unit}")
    return clamped


def size_to_peak(
    cpu: float,
    memory_mb: float,
    allowed: AllowedValues,
    *,
    memory_margin: float = 0.0,
    capacity: tuple[float, float] | None = None,
) -> PeakSize:
    """One function sized to its predicted peaks (raw model outputs).

    ``capacity`` is an invoker's (cores, MB). Predictions must be finite: a
    baseline that sized a NaN memory to the minimum would be killed for it, so
    the caller keeps the user allocation instead (ValueError here).
    """
    if not (math.isfinite(cpu) and math.isfinite(memory_mb)):
        raise ValueError(f"predicted peaks must be finite, got {cpu!r} cores and {memory_mb!r} MB")
    if not (math.isfinite(memory_margin) and memory_margin >= 0):
        raise ValueError(f"memory margin must be a finite number >= 0, got {memory_margin!r}")
    if capacity is not None and not all(math.isfinite(v) and v > 0 for v in capacity):
        raise ValueError(f"invoker capacity must be positive numbers, got {capacity!r}")
    n = normalize_flagged(cpu, memory_mb * (1.0 + memory_margin), allowed)
    notes = list(n.notes)
    c, m = n.cpu, n.mem
    if capacity is not None:
        c = _clamp("cpu", " cores", c, capacity[0], allowed.cpu, notes)
        m = _clamp("memory", " MB", m, capacity[1], allowed.mem, notes)
    return PeakSize(c, m, tuple(notes))
