"""The profiler's CPU sweep, planned: which lower allocations and which inputs.
Pure; :mod:`predictor.profiler` runs it (each swept input as a profile request with
``profile_cpu`` set to the lower allocation, after every input ran at the maximum).

A scaling curve (:mod:`predictor.scaling`) needs each function timed at three or
more allocations. The profile runs every input at the maximum; the sweep adds a
few inputs at each lower allocation (by default about a half and a quarter of the
maximum, on the grid: 1 and 0.5 core on a 2-core invoker). A few inputs suffice:
a curve is one shape per function, and each swept input is compared with its own
run at the maximum. They are taken from the larger half of the inputs, where the
function's own work, not the per-request overhead, sets the time.

Every function of a sweep request runs at the lower allocation, the sequential
stages' too (only the parallel functions' rows fit curves; every function's rows
below its largest allocation are kept out of the models' training,
:func:`predictor.dataset.at_profile_allocation`).

Cost: about a tenth of the inputs (at least 1, at most 10) at each of two lower
allocations. A parallel stage of a sweep request costs at most ~2x its run at the
maximum (its functions then run side by side at their share of the invoker); a
sequential stage takes up to maximum/allocation times as long (4x at a quarter) when
it uses every core of the maximum, and no longer when it never uses more than the
allocation. The profile takes about 1.2-1.4x as long, at worst (CPU-bound sequential
stages) about 1.6x.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gleaner.errors import GleanerError
from predictor.allocation import Grid

DEFAULT_FRACTIONS = (0.5, 0.25)  # of the profile allocation: the default lower allocations
SWEEP_SHARE = 0.1  # of the profile's inputs, run at each lower allocation
MAX_SWEEP_INPUTS = 10
OFF = ("", "off", "none")


@dataclass(frozen=True, slots=True)
class CpuSweep:
    cpus: tuple[float, ...]  # lower allocations, in cores, highest first; empty: no sweep
    inputs: int  # inputs run at each of them

    def __post_init__(self) -> None:
        if self.inputs < 0:
            raise ValueError(f"a sweep needs inputs >= 0, got {self.inputs}")

    @property
    def requests(self) -> int:
        return len(self.cpus) * self.inputs if self.inputs else 0

    def describe(self) -> str:
        if not self.requests:
            return "no CPU sweep"
        cores = ", ".join(f"{c:g}" for c in self.cpus)
        return f"CPU sweep at {cores} cores, {self.inputs} inputs each ({self.requests} requests)"


def default_cpus(top: float, grid: Grid) -> tuple[float, ...]:
    """About a half and a quarter of ``top`` (the profile allocation), on the grid, below it."""
    out: list[float] = []
    for fraction in DEFAULT_FRACTIONS:
        cores = grid.value(grid.floor_units(top * fraction))
        if cores < top - 1e-9 and cores not in out:
            out.append(cores)
    return tuple(out)


def parse_cpus(text: str, top: float, grid: Grid) -> tuple[float, ...]:
    """``--cpu-sweep`` (``"2,1,0.5"``): the lower allocations, highest first. The
    profile allocation ``top`` itself may be named (every input runs there anyway);
    ``off``, ``none`` or nothing: no sweep. GleanerError names a bad value."""
    if text.strip().lower() in OFF:
        return ()
    out: set[float] = set()
    for part in text.split(","):
        try:
            cores = float(part)
        except ValueError:
            raise GleanerError(f"--cpu-sweep: {part.strip()!r} is not a number of cores") from None
        if not (math.isfinite(cores) and grid.minimum - 1e-9 <= cores <= top + 1e-9 and grid.contains(cores)):
            raise GleanerError(
                f"--cpu-sweep: {cores:g} is not an allowed allocation up to the profile's {top:g} cores "
                f"({grid.minimum:g} to {grid.top:g} in steps of {grid.step:g})"
            )
        if cores < top - 1e-9:
            out.add(grid.value(grid.floor_units(cores)))
    return tuple(sorted(out, reverse=True))


def default_inputs(n_inputs: int) -> int:
    """Inputs to run at each lower allocation: a tenth of the profile's, 1 to 10."""
    if n_inputs <= 0:
        return 0
    return max(1, min(MAX_SWEEP_INPUTS, round(n_inputs * SWEEP_SHARE)))


def pick_inputs(sizes: Sequence[int], k: int) -> list[int]:
    """Indices of ``k`` inputs spread evenly over the larger half by size (ascending
    by size; fewer when there are fewer inputs)."""
    n = len(sizes)
    k = min(k, n)
    if k <= 0:
        return []
    order = sorted(range(n), key=lambda i: (sizes[i], i))
    picked: list[int] = []
    for j in range(k):
        position = round((n - 1) * (0.5 + 0.5 * (j + 0.5) / k))
        if order[position] not in picked:
            picked.append(order[position])
    # Rounding can land two picks on one input: fill from the largest down.
    for i in reversed(order):
        if len(picked) >= k:
            break
        if i not in picked:
            picked.append(i)
    return sorted(picked, key=lambda i: (sizes[i], i))
