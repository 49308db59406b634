"""Measure each workload's parallel stage: skew at the user allocations, and how the
straggler speeds up with more cores. Needs Docker and the workload image.

    python -m workloads.measure [--size small|large|both] [--repeat 3] [NAME ...]

The steps before the parallel stage run on the host (``workloads.local``) to make the
stage's input; every function of the stage then runs in its own container of the
workload image at its user allocation (``--cpus``/``--memory`` from the catalog), one
after the other so they do not compete; the straggler (the slowest) is then run again
at 0.5, 1 and 2 cores. A time is the best of ``repeat`` runs of ``main`` in one
container (the proxy's ``/run``; the container's start and the code's imports are
not in it): the minimum, because other load on the machine only ever adds time. The
CPU time of that run (worker processes included) divided by its wall time shows how
many cores the function really kept busy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from composer.dsl import normalize
from composer.model import Action, Parallel
from gleaner.settings import Settings, load_settings
from workloads.catalog import WORKLOADS, Workload
from workloads.image import ensure_workload_image
from workloads.local import run_function, run_in_container

CORES = (0.5, 1.0, 2.0)


def large_input(workload: Workload) -> dict[str, Any]:
    """The largest input the generators make (the top of each size range)."""
    if workload.name == "video-analytics":
        from workloads.video_analytics import inputs as video

        return video.video_input(np.random.default_rng(1), video.MAX_FRAMES, 640, 480)
    if workload.name == "parallel-aes":
        from workloads.parallel_aes import inputs as aes

        return aes.text_input(np.random.default_rng(1), aes.MAX_BYTES)
    from workloads.ml_pipeline import inputs as ml

    return ml.table_input(np.random.default_rng(1), ml.MAX_ROWS)


def stage_input(workload: Workload, args: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The parallel stage's input and its functions, running the steps before it on the host."""
    value = args
    for step in normalize(workload.dag).steps:
        if isinstance(step, Parallel):
            names = tuple(b.name for b in step.branches if isinstance(b, Action))
            return value, names
        if not isinstance(step, Action):
            raise ValueError(f"{workload.name}: only action steps may precede the parallel stage")
        value = run_function(workload.function(step.name), value)[0].result
    raise ValueError(f"{workload.name} has no parallel stage")


@dataclass
class StageReport:
    workload: str
    size: str
    input_bytes: int
    at_user: dict[str, tuple[float, float]]  # name -> (cores, seconds)
    straggler: str
    scaling: dict[float, tuple[float, float]]  # cores -> (seconds, CPU seconds) of the straggler

    @property
    def skew(self) -> float:
        times = [s for _, s in self.at_user.values()]
        return max(times) / min(times)

    def lines(self) -> list[str]:
        out = [f"{self.workload} [{self.size} input, {self.input_bytes / 1e6:.2f} MB]"]
        for name, (cpu, seconds) in self.at_user.items():
            out.append(f"  {name:<13} {cpu:>4} cores  {seconds:8.2f} s")
        out.append(f"  skew (max/min) {self.skew:.1f}x; straggler {self.straggler}")
        base = self.scaling[min(self.scaling)][0]
        for cores, (seconds, cpu) in self.scaling.items():
            out.append(
                f"  {self.straggler} at {cores} cores: {seconds:8.2f} s  (x{base / seconds:.2f}, "
                f"{cpu / seconds:.2f} cores busy)"
            )
        return out


def _best(
    settings: Settings,
    image: str,
    workload: Workload,
    name: str,
    args: dict[str, Any],
    cpus: float,
    repeat: int,
) -> tuple[float, float]:
    spec = workload.function(name)
    runs = run_in_container(settings, image, spec, args, cpus=cpus, repeat=repeat)
    best = min(runs, key=lambda r: r.seconds)
    return best.seconds, best.cpu_seconds


def measure(settings: Settings, image: str, workload: Workload, size: str, *, repeat: int = 3) -> StageReport:
    args = workload.small_input() if size == "small" else large_input(workload)
    value, names = stage_input(workload, args)
    at_user = {}
    for name in names:
        cpu = workload.function(name).cpu
        at_user[name] = (cpu, _best(settings, image, workload, name, value, cpu, repeat)[0])
    straggler = max(at_user, key=lambda n: at_user[n][1])
    scaling = {c: _best(settings, image, workload, straggler, value, c, repeat) for c in CORES}
    size_bytes = len(json.dumps(args))
    return StageReport(workload.name, size, size_bytes, at_user, straggler, scaling)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workloads.measure", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", default=list(WORKLOADS))
    parser.add_argument("--size", choices=("small", "large", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args(argv)
    settings = load_settings()
    image = ensure_workload_image(settings)
    sizes = ("small", "large") if opts.size == "both" else (opts.size,)
    print(f"image {image}; load average {os.getloadavg()[0]:.2f}", flush=True)
    for name in opts.names:
        for size in sizes:
            report = measure(settings, image, WORKLOADS[name], size, repeat=opts.repeat)
            print("\n".join(report.lines()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
