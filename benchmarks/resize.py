"""``gleaner bench resize``: resizing a running container's CPU limit, two ways.

One container from the runtime image (started like the pool starts it: 1 core,
128 MB, ``cpu_period``/``cpu_quota``), then N alternating resizes 0.5 <-> 1.0 core by
- ``docker update`` through the SDK (``update_container(cpu_period, cpu_quota)``,
  dockerd -> containerd -> runc), and
- a direct cgroup write (``DockerEngine.set_cpu``: ``cpu.cfs_quota_us`` / ``cpu.max``),
first on the idle container, then while two busy loops inside (``docker exec``) keep
it at its quota. Every resize is read back from the cgroup file (outside the timed
call); a value other than the one asked is a mismatch. Needs a running dockerd and
the runtime image (``gleaner up``), not the rest of the stack.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmarks.report import percentile, write_section
from deploy.images import ensure_runtime_image
from gleaner.container_labels import INVOKER_LABEL
from gleaner.settings import load_settings
from invoker_agent.cgroup_resize import CPU_PERIOD_US, cpu_quota_us
from invoker_agent.docker_engine import ContainerInfo, DockerEngine
from monitor.cgroups import CgroupPaths, stat_value

BENCH_INVOKER = "bench-resize"  # the invoker label of the benchmark's container
LOW, HIGH = 0.5, 1.0
WARMUP = 5
BURN = ["python3", "-c", "while True: pass"]
BURNERS = 2
STALE_PROBE = 0.75  # a last direct write, to show what `docker inspect` says afterwards


@dataclass(frozen=True, slots=True)
class Run:
    state: str  # idle | busy
    method: str
    times_us: list[float]
    mismatches: int
    container_cores: float  # mean CPU the container used during the run
    throttled: float  # share of CFS periods in which it was throttled

    def p(self, q: float) -> float:
        return percentile(self.times_us, q)


def read_quota_us(paths: CgroupPaths) -> int:
    """The quota in force now, from the cgroup file (-1 / "max" = unlimited -> -1)."""
    if paths.version == 1:
        return int((paths.cpu_dir / "cpu.cfs_quota_us").read_text())
    quota = (paths.cpu_dir / "cpu.max").read_text().split()[0]
    return -1 if quota == "max" else int(quota)


def _throttling(paths: CgroupPaths) -> tuple[int, int]:
    raw = (paths.cpu_dir / "cpu.stat").read_bytes()
    return stat_value(raw, "nr_periods"), stat_value(raw, "nr_throttled")


def measure(
    state: str,
    method: str,
    resize: Callable[[float], None],
    paths: CgroupPaths,
    n: int,
    *,
    progress: bool = True,
) -> Run:
    """N alternating resizes by ``resize``, each timed and then read back from the cgroup."""
    current = LOW if read_quota_us(paths) == cpu_quota_us(HIGH) else HIGH
    for _ in range(WARMUP):  # connections, caches, the cgroup lookup
        current = LOW if current == HIGH else HIGH
        resize(current)
    times: list[float] = []
    mismatches = 0
    periods0, throttled0 = _throttling(paths)
    usage0, t0 = paths.read_cpu_usage_ns(), time.monotonic_ns()
    for _ in tqdm(range(n), desc=f"{state:4} {method}", unit="resize", disable=not progress):
        current = LOW if current == HIGH else HIGH
        started = time.perf_counter_ns()
        resize(current)
        times.append((time.perf_counter_ns() - started) / 1000)
        if read_quota_us(paths) != cpu_quota_us(current):
            mismatches += 1
    usage1, t1 = paths.read_cpu_usage_ns(), time.monotonic_ns()
    periods1, throttled1 = _throttling(paths)
    return Run(
        state,
        method,
        times,
        mismatches,
        container_cores=(usage1 - usage0) / max(1, t1 - t0),
        throttled=(throttled1 - throttled0) / max(1, periods1 - periods0),
    )


def _burn(engine: DockerEngine, info: ContainerInfo) -> None:
    """Start CPU-burning processes inside the container (they die with it)."""
    for _ in range(BURNERS):
        exec_id = engine.api.exec_create(info.id, BURN)["Id"]
        engine.api.exec_start(exec_id, detach=True)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM unwinds like Ctrl-C, so the container is removed either way."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fmt(us: float) -> str:
    return f"{us / 1000:.1f} ms" if us >= 1000 else f"{us:.0f} µs"


def run_all(
    engine: DockerEngine, image: str, n: int, progress: bool = True
) -> tuple[list[Run], dict[str, Any]]:
    engine.remove_managed(BENCH_INVOKER)  # leftovers of an interrupted run
    load_before = os.getloadavg()[0]
    info = engine.start(
        image=image,
        name=f"gleaner-{BENCH_INVOKER}-{uuid.uuid4().hex[:8]}",
        cpu=HIGH,
        memory_mb=128,
        labels={INVOKER_LABEL: BENCH_INVOKER},
    )
    try:
        paths = engine.resizer.paths(info.id, info.pid)

        def sdk(cpu: float) -> None:
            engine.api.update_container(info.id, cpu_period=CPU_PERIOD_US, cpu_quota=cpu_quota_us(cpu))

        def cgroup(cpu: float) -> None:
            engine.set_cpu(info, cpu)

        def cgroup_uncached(cpu: float) -> None:
            engine.resizer.forget(info.id)
            engine.set_cpu(info, cpu)  # /proc/<pid>/cgroup, the directory probes, the period, the write

        methods = (
            ("docker update (SDK)", sdk),
            ("cgroup write", cgroup),
            ("cgroup write, uncached", cgroup_uncached),
        )
        runs = []
        for state in ("idle", "busy"):
            if state == "busy":
                _burn(engine, info)
                time.sleep(0.5)  # the burners are up and at the quota
            for method, fn in methods:
                runs.append(measure(state, method, fn, paths, n, progress=progress))
        engine.set_cpu(info, STALE_PROBE)  # Docker's stored quota is now stale
        extra = {
            "cgroup_version": paths.version,
            "inspect_quota": engine.inspect(info.id)["HostConfig"]["CpuQuota"],
            "cgroup_quota": read_quota_us(paths),
            "load_before": load_before,
        }
        return runs, extra
    finally:
        engine.remove(info.id)


def render(runs: list[Run], extra: dict[str, Any], n: int, image: str) -> str:
    by = {(r.state, r.method): r for r in runs}
    lines = [
        "## Live CPU resize: docker update vs cgroup write",
        "",
        f"One container from `{image}` (started at {HIGH} core, 128 MB, `cpu_period`/`cpu_quota` "
        f"as the pool starts it), {n} alternating resizes {LOW} <-> {HIGH} core per method, after "
        f"{WARMUP} warm-up resizes; cgroup v{extra['cgroup_version']}. "
        "*docker update (SDK)*: `update_container(cpu_period, cpu_quota)` through dockerd, "
        "containerd and runc; *cgroup write*: `DockerEngine.set_cpu` (one write to "
        "`cpu.cfs_quota_us` / `cpu.max`, the cgroup located once per container). "
        "*uncached*: the cgroup located again before every write (the first resize of a container). "
        f"*busy*: {BURNERS} Python busy loops inside (`docker exec`) keep the container runnable; "
        "it reaches its quota only when the host has the cores to spare (see its CPU and "
        "throttled share). Each resize is read back from the cgroup file after the timed call; "
        "a mismatch is a value other than the one asked. "
        f"Host load average before the run: {extra['load_before']:.1f} on {os.cpu_count()} cores "
        "(the embedded stack and other work were running).",
        "",
        "| container | method | p50 | p90 | p99 | max | mismatches | container CPU | throttled periods |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r.state} | {r.method} | {_fmt(r.p(50))} | {_fmt(r.p(90))} | {_fmt(r.p(99))} "
            f"| {_fmt(max(r.times_us))} | {r.mismatches}/{len(r.times_us)} "
            f"| {r.container_cores:.2f} cores | {r.throttled:.0%} |"
        )
    lines.append("")
    for state in ("idle", "busy"):
        sdk, direct = by[(state, "docker update (SDK)")], by[(state, "cgroup write")]
        lines.append(
            f"- {state}: docker update / cgroup write = {sdk.p(50) / direct.p(50):.0f}x at p50, "
            f"{sdk.p(99) / direct.p(99):.0f}x at p99."
        )
    lines.append(
        f"- After a last direct write of {STALE_PROBE} core `docker inspect` still shows CpuQuota "
        f"{extra['inspect_quota']} while the cgroup holds {extra['cgroup_quota']}: "
        "Docker's view is stale until the next "
        "`docker update` (which rewrites cpu and memory wholesale); Gleaner tracks the allocation "
        "in `Lease.cpu`."
    )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    if args.resizes < 1:
        raise SystemExit("-n must be at least 1")
    settings = load_settings()
    engine = DockerEngine(settings)
    try:
        engine.ping()
        image = ensure_runtime_image(settings, progress=True)
        with _sigterm_as_interrupt():
            runs, extra = run_all(engine, image, args.resizes)
    finally:
        engine.close()
    text = render(runs, extra, args.resizes, image)
    print(text)
    write_section(Path(args.out), "resize", text)
    print(f"\nwritten to {args.out}")
    return 0
