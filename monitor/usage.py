"""Pure window math over cgroup usage samples (thesis Algorithm 1, CPU and memory busy).

A sample is ``(t_ns, cpu_usage_ns, mem_bytes)``: a monotonic timestamp, the cgroup's
cumulative CPU time and its memory use without page cache.

CPU busy cores are Δusage / Δwall over windows **no shorter than** ``window_ns``. The
CFS bandwidth controller hands out quota per 100 ms period: a container capped at 0.5
core runs flat out for 50 ms and is throttled for 50 ms. A 10 ms window would report
1 core; any window of at least one period reports 0.5.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

Sample = tuple[int, int, int]  # (t_ns, cpu_usage_ns, mem_bytes)

MIB = 2**20
DEFAULT_MAX_POINTS = 100


@dataclass(frozen=True, slots=True)
class UsageSummary:
    peak_cpu: float  # cores, over windows >= window_ns
    peak_memory_mb: float
    mean_cpu: float  # cores, over the whole run
    samples: int
    trajectory: list[tuple[float, float, float]] = field(default_factory=list)  # (t_ms, cores, MB)
    duration_ms: float = 0.0
    cpu_limit: float | None = None  # the highest CFS limit seen during the run (None: unlimited)
    peak_cpu_raw: float = 0.0  # the peak before clamping to cpu_limit, kept so the clamp stays visible
    oom_kills: int = 0  # processes the kernel killed for memory during the run (a child, say)


def _rate(a: Sample, b: Sample) -> float:
    dt = b[0] - a[0]
    return max(0, b[1] - a[1]) / dt if dt > 0 else 0.0


def window_rates(samples: Sequence[Sample], window_ns: int) -> list[float]:
    """CPU cores at each sample, over the shortest trailing window of at least ``window_ns``.

    Samples before the first full window get the first full window's rate; when the whole
    run is shorter than one window, every sample gets the whole run's rate.
    """
    n = len(samples)
    if n < 2:
        return [0.0] * n
    t0 = samples[0][0]
    first_full = next((k for k in range(n) if samples[k][0] - t0 >= window_ns), n - 1)
    head = _rate(samples[0], samples[first_full])
    rates: list[float] = []
    i = -1  # the latest sample at least window_ns before sample k
    for k in range(n):
        limit = samples[k][0] - window_ns
        while i + 1 < k and samples[i + 1][0] <= limit:
            i += 1
        rates.append(_rate(samples[i], samples[k]) if i >= 0 else head)
    return rates


def peak_cpu(samples: Sequence[Sample], window_ns: int) -> float:
    """The highest CPU busy cores over the shortest trailing windows of at least ``window_ns``."""
    return max(window_rates(samples, window_ns), default=0.0)


def mean_cpu(samples: Sequence[Sample]) -> float:
    return _rate(samples[0], samples[-1]) if len(samples) >= 2 else 0.0


def max_slope(samples: Sequence[Sample]) -> float:
    """The highest rate between consecutive samples: an upper bound for :func:`peak_cpu`."""
    return max((_rate(a, b) for a, b in itertools.pairwise(samples)), default=0.0)


def peak_memory_mb(samples: Sequence[Sample]) -> float:
    return max((s[2] for s in samples), default=0) / MIB


def trajectory(
    samples: Sequence[Sample], window_ns: int, max_points: int = DEFAULT_MAX_POINTS
) -> list[tuple[float, float, float]]:
    """``(t_ms since the first sample, cores, MB)`` at no more than ``max_points`` points.

    Memory is the maximum since the previous point, so downsampling never hides a peak;
    CPU uses the same windows as :func:`peak_cpu`, so no point exceeds the peak.
    """
    n = len(samples)
    if n == 0:
        return []
    rates = window_rates(samples, window_ns)
    if n <= max_points:
        picks = list(range(n))
    else:
        step = (n - 1) / (max(max_points, 2) - 1)
        picks = sorted({round(j * step) for j in range(max(max_points, 2))})
    t0 = samples[0][0]
    out: list[tuple[float, float, float]] = []
    prev = -1
    for k in picks:
        mem = max(s[2] for s in samples[prev + 1 : k + 1])
        out.append(((samples[k][0] - t0) / 1e6, rates[k], mem / MIB))
        prev = k
    return out


def summarize(
    samples: Sequence[Sample],
    window_ns: int,
    max_points: int = DEFAULT_MAX_POINTS,
    cpu_limit: float | None = None,
) -> UsageSummary:
    """Peak, mean and trajectory of a run.

    With ``cpu_limit`` (cores), CPU figures are clamped to it. Even a window of one full
    CFS period can exceed the quota when it straddles two periods whose runtime landed
    at the end of one and the start of the next (it happens on a contended host); usage
    above the limit is that alignment artefact, never real demand.
    """

    def clamp(x: float) -> float:
        return min(x, cpu_limit) if cpu_limit is not None else x

    raw_peak = peak_cpu(samples, window_ns)
    return UsageSummary(
        peak_cpu=clamp(raw_peak),
        peak_memory_mb=peak_memory_mb(samples),
        mean_cpu=clamp(mean_cpu(samples)),
        samples=len(samples),
        trajectory=[(t, clamp(c), m) for t, c, m in trajectory(samples, window_ns, max_points)],
        duration_ms=(samples[-1][0] - samples[0][0]) / 1e6 if samples else 0.0,
        cpu_limit=cpu_limit,
        peak_cpu_raw=raw_peak,
    )
