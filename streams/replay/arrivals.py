"""Open-loop arrivals: seeded Poisson arrival times and the request rates per load level.

The thesis (Table 4.1) replays requests at 15, 30 and 60 per minute on two 8-core
invokers. On other hardware or workloads a fixed rate means a different load, so
here the rates follow from the offered load instead: ``rate * cpu_seconds =
fraction * capacity``, with the thesis's 1:2:4 ratio between low, medium and high.

One seed gives one arrival pattern at every rate: the gaps are drawn with mean 1
and divided by the rate, so medium is low compressed two times in time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gleaner.actions import is_entity_name
from streams.replay.trace import TraceEntry

THESIS_RATES_PER_MIN = {"low": 15.0, "medium": 30.0, "high": 60.0}  # thesis Table 4.1, on 2 x 8 cores
LOAD_FRACTIONS = {"low": 0.25, "medium": 0.5, "high": 1.0}  # offered load / invoker CPU capacity (1:2:4)


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value}")


def unit_gaps(n: int, seed: int) -> list[float]:
    """``n`` exponential inter-arrival gaps of mean 1, the same for the same seed."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    gaps: list[float] = np.random.default_rng(seed).exponential(1.0, n).tolist()
    return gaps


def poisson_offsets(n: int, rate_per_s: float, seed: int) -> list[float]:
    """Arrival times (s, rounded to ms) of ``n`` Poisson arrivals at ``rate_per_s``.

    The first arrival is at 0.0, so a replay does not start with an idle wait.
    The same seed at another rate gives the same pattern scaled in time.
    """
    _positive("rate_per_s", rate_per_s)
    times = np.cumsum(unit_gaps(n, seed))
    return [round(float(t), 3) for t in (times - times[0]) / rate_per_s]


def rates_for_load(
    cpu_seconds_per_request: float, capacity_cores: float, fractions: Mapping[str, float] = LOAD_FRACTIONS
) -> dict[str, float]:
    """Requests per second per load level, so that ``rate * cpu_seconds = fraction * capacity``."""
    _positive("cpu_seconds_per_request", cpu_seconds_per_request)
    _positive("capacity_cores", capacity_cores)
    for load, fraction in fractions.items():
        _positive(f"load fraction {load!r}", fraction)
    return {load: fraction * capacity_cores / cpu_seconds_per_request for load, fraction in fractions.items()}


def synthesise(
    dag: str, inputs: Sequence[Path], n: int, rate_per_s: float, seed: int, policy: str | None = None
) -> list[TraceEntry]:
    """A trace of ``n`` requests at Poisson arrivals; entry ``i`` gets ``inputs[i % len(inputs)]``."""
    if not inputs:
        raise ValueError("synthesise needs at least one input file")
    if not is_entity_name(dag):
        raise ValueError(f"dag is not a valid name: {dag!r}")
    offsets = poisson_offsets(n, rate_per_s, seed)
    return [
        TraceEntry(offset_s=offset, dag=dag, input_path=Path(inputs[i % len(inputs)]), policy=policy)
        for i, offset in enumerate(offsets)
    ]


@dataclass(frozen=True, slots=True)
class LoadRow:
    load: str  # "low" | "medium" | "high"
    rate_per_s: float
    rate_per_min: float
    offered_load: float  # fraction of the invokers' CPU capacity
    thesis_per_min: float  # the thesis's rate for this load, for comparison
    expected_duration_s: float  # n / rate: how long sending n requests takes


def rate_table(cpu_seconds_per_request: float, capacity_cores: float, n: int) -> list[LoadRow]:
    """Table 4.1's analogue for this workload and cluster, in low, medium, high order."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rates = rates_for_load(cpu_seconds_per_request, capacity_cores)
    return [
        LoadRow(
            load=load,
            rate_per_s=rate,
            rate_per_min=rate * 60.0,
            offered_load=LOAD_FRACTIONS[load],
            thesis_per_min=THESIS_RATES_PER_MIN[load],
            expected_duration_s=n / rate,
        )
        for load, rate in rates.items()
    ]
