"""Arithmetic of the evaluation report (thesis chapter 4), kept free of I/O.

Speedup per request (§4.1.3) is ``(L_off - L_on) / L_off``: positive when the
request finished sooner with harvesting on, negative when it was slower. Node
utilisation (§4.1.4) is what the function containers used over the invoker's
capacity, averaged over time. The thesis's own figures are here too, so a
report can print them next to ours.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

NAN = float("nan")

# Table 4.2: speedup (max, min, mean, median) per load.
THESIS_SPEEDUP: Final[dict[str, tuple[float, float, float, float]]] = {
    "low": (0.59, -0.13, 0.44, 0.46),
    "medium": (0.78, 0.07, 0.50, 0.50),
    "high": (0.88, -1.63, 0.35, 0.44),
}
# Table 4.3: (mean CPU, mean memory) utilisation with harvesting off and on.
THESIS_UTILISATION: Final[dict[str, tuple[float, float]]] = {"off": (0.196, 0.387), "on": (0.599, 0.490)}


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (q in [0, 100]) by linear interpolation between the closest
    ranks, as numpy's default; used for the P50/P99 latencies of §4.2. NaN values are
    ignored (they would make the sort order meaningless); NaN when nothing is left."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return NAN
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def speedup(latency_off: float, latency_on: float) -> float:
    """``(L_off - L_on) / L_off`` of one request (§4.1.3); below 0 means slower with
    harvesting on. ``latency_off`` must be positive."""
    if not latency_off > 0:
        raise ValueError(f"speedup needs a positive baseline latency, got {latency_off}")
    return (latency_off - latency_on) / latency_off


def paired_speedups(off: Mapping[str, float | None], on: Mapping[str, float | None]) -> dict[str, float]:
    """Speedup per request id present in both runs (§4.1.3), in the order of ``off``.
    A request is skipped when either latency is missing, None or not finite (it
    failed) or its baseline latency is not positive."""
    pairs: dict[str, float] = {}
    for key, l_off in off.items():
        l_on = on.get(key)
        if l_off is not None and l_on is not None and _finite(l_off) and _finite(l_on) and l_off > 0:
            pairs[key] = speedup(l_off, l_on)
    return pairs


def ecdf(values: Sequence[float]) -> tuple[list[float], list[float]]:
    """Empirical CDF for the CDF plots of Figs 4.5-4.7: sorted values and ``i / n`` for
    ``i = 1..n``. NaN values are dropped before counting n."""
    xs = sorted(v for v in values if not math.isnan(v))
    n = len(xs)
    return xs, [i / n for i in range(1, n + 1)]


@dataclass(frozen=True, slots=True)
class SpeedupSummary:
    """One row of Table 4.2 (§4.2.1): speedup statistics over n requests."""

    n: int
    max: float
    min: float
    mean: float
    median: float
    slower: int  # requests with speedup < 0 (slower with harvesting on)
    slower_fraction: float  # slower / n

    @classmethod
    def from_speedups(cls, values: Sequence[float]) -> SpeedupSummary:
        """Summary of per-request speedups; NaN values are dropped. With none left,
        the statistics are NaN and the counts 0."""
        xs = [v for v in values if not math.isnan(v)]
        if not xs:
            return cls(0, NAN, NAN, NAN, NAN, 0, NAN)
        slower = sum(v < 0 for v in xs)
        return cls(
            n=len(xs),
            max=max(xs),
            min=min(xs),
            mean=statistics.fmean(xs),
            median=statistics.median(xs),
            slower=slower,
            slower_fraction=slower / len(xs),
        )


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """End-to-end latency of one run (§4.2.2, Figs 4.9-4.10). ``n`` counts the finished
    requests the statistics are over; ``failed`` those that did not finish."""

    n: int
    failed: int
    p50: float
    p99: float
    mean: float
    max: float

    @classmethod
    def of(cls, latencies: Sequence[float | None]) -> LatencySummary:
        """None or non-finite (NaN) latencies count as failed and are left out of the
        statistics, which are NaN when no request finished."""
        done = [v for v in latencies if v is not None and _finite(v)]
        failed = len(latencies) - len(done)
        if not done:
            return cls(0, failed, NAN, NAN, NAN, NAN)
        return cls(
            len(done), failed, percentile(done, 50), percentile(done, 99), statistics.fmean(done), max(done)
        )


def mean_utilisation(
    timeline: Sequence[tuple[float, float, float]], cpu_capacity: float, memory_capacity_mb: float
) -> tuple[float, float]:
    """Time-weighted mean (CPU, memory) utilisation of a node (§4.1.4, Table 4.3) over a
    ``(seconds, cores, MB)`` series as ``NodeUtilisation`` records it: seconds since
    sampling began, each sample standing for the interval since the previous one (the
    first for the interval since 0 s). So uneven sampling does not bias the mean, and
    the CPU mean equals used core-seconds over elapsed seconds. Samples not later than
    their predecessor get no weight; if none has weight, the plain mean is used.
    (NaN, NaN) for an empty series."""
    if not (cpu_capacity > 0 and memory_capacity_mb > 0):
        raise ValueError(f"capacities must be positive, got {cpu_capacity} cores, {memory_capacity_mb} MB")
    if not timeline:
        return NAN, NAN
    weights: list[float] = []
    previous = 0.0
    for t, _, _ in timeline:
        weights.append(max(t - previous, 0.0))
        previous = max(previous, t)
    total = sum(weights)
    if total <= 0:  # e.g. one sample at 0 s: nothing to weight by
        weights, total = [1.0] * len(timeline), float(len(timeline))
    cores = sum(w * c for w, (_, c, _) in zip(weights, timeline, strict=True)) / total
    mb = sum(w * m for w, (_, _, m) in zip(weights, timeline, strict=True)) / total
    return cores / cpu_capacity, mb / memory_capacity_mb
