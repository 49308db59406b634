"""Calibration: how much CPU one request of a DAG uses at the user allocations.

Requests run one at a time with harvesting off; the CPU that all function
containers used together (Docker's parent cgroup) is read around each one.
CPU-seconds grow with the input, and inputs vary by orders of magnitude, so a
few samples are fitted against input size (least squares, clipped at the
smallest sample) and the fit is averaged over the trace's own inputs: the
rate then matches the trace that will be replayed, not the few samples.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from gleaner.harvest_policies import OFF
from monitor.utilisation import UtilisationSummary
from streams.replay.runner import Replayer
from streams.replay.trace import TraceEntry

SAMPLE_DEADLINE_S = 300.0


@dataclass(frozen=True, slots=True)
class Calibration:
    samples: int  # requests that succeeded
    sample_cpu_seconds: tuple[float, ...]  # per sampled request
    sample_sizes: tuple[int, ...]  # their input sizes (bytes)
    sample_latency_s: tuple[float, ...]
    cpu_seconds: float  # mean per request over the trace's inputs (the fit)
    seconds: float  # how long calibration took

    @property
    def mean_latency_s(self) -> float:
        return statistics.fmean(self.sample_latency_s) if self.sample_latency_s else float("nan")


def fit_cpu_seconds(sizes: Sequence[float], cpu: Sequence[float], trace_sizes: Sequence[float]) -> float:
    """Mean CPU-seconds per request over ``trace_sizes``, from samples (size, cpu). Pure."""
    if not cpu:
        raise ValueError("no calibration sample succeeded")
    if len(set(sizes)) < 2:
        return statistics.fmean(cpu)
    slope, intercept = statistics.linear_regression(sizes, cpu)
    floor = min(cpu)
    return statistics.fmean(max(floor, intercept + slope * s) for s in trace_sizes)


def spread(items: Sequence[Path], k: int) -> list[Path]:
    """``k`` items evenly spaced over ``items`` (all of them when there are fewer). Pure."""
    if k <= 0:
        return []
    if k >= len(items):
        return list(items)
    step = len(items) / k
    return [items[int(i * step)] for i in range(k)]


def calibrate(
    replayer: Replayer,
    dag: str,
    samples: Sequence[Path],
    trace_sizes: Sequence[int],  # the trace's input file sizes
    node: Callable[[], Callable[[], UtilisationSummary]],
    *,
    progress: bool = True,
) -> Calibration:
    """``node()`` starts a utilisation sampler and returns its stop function."""
    start = time.monotonic()
    entries = [TraceEntry(offset_s=0.0, dag=dag, input_path=p) for p in samples]
    # One request first, unmeasured: cold starts are not what a loaded system pays.
    replayer.run(entries[:1], policy=OFF, progress=False, deadline_s=SAMPLE_DEADLINE_S)
    sizes: list[int] = []
    cpu: list[float] = []
    latency: list[float] = []
    for entry in tqdm(entries, desc=f"calibrate {dag}", unit="req", disable=not progress):
        stop = node()
        run = replayer.run([entry], policy=OFF, progress=False, deadline_s=SAMPLE_DEADLINE_S)
        used = stop()
        outcome = run.outcomes[0]
        if not outcome.succeeded:
            continue
        assert entry.input_path is not None
        sizes.append(entry.input_path.stat().st_size)  # file sizes on both sides of the fit
        cpu.append(used.mean_cpu * used.seconds)
        latency.append(outcome.latency_ms / 1000)
    mean = fit_cpu_seconds(sizes, cpu, trace_sizes)
    return Calibration(len(cpu), tuple(cpu), tuple(sizes), tuple(latency), mean, time.monotonic() - start)
