"""Node utilisation from the Docker parent cgroup: what all function
containers of this node use together, sampled like thesis Algorithm 1.

cgroup v1 (cgroupfs driver): ``/sys/fs/cgroup/{cpuacct,memory}/docker``;
cgroup v2: ``/sys/fs/cgroup/docker`` or ``/sys/fs/cgroup/system.slice``.
On a Docker host shared with other work this counts every container.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from monitor.cgroups import stat_value

ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True, slots=True)
class UtilisationSummary:
    seconds: float
    mean_cpu: float  # cores
    mean_memory_mb: float
    peak_cpu: float
    cpu_capacity: float
    memory_capacity_mb: float
    timeline: list[tuple[float, float, float]] = field(default_factory=list)  # (s, cores, MB)

    @property
    def cpu_utilisation(self) -> float:
        return self.mean_cpu / self.cpu_capacity if self.cpu_capacity else 0.0

    @property
    def memory_utilisation(self) -> float:
        return self.mean_memory_mb / self.memory_capacity_mb if self.memory_capacity_mb else 0.0


def _paths(root: Path) -> tuple[Path, Path, Path, bool]:
    """(cpu usage file, memory usage file, memory.stat, is v2)."""
    if (root / "cgroup.controllers").exists():
        for parent in (root / "docker", root / "system.slice"):
            if (parent / "cpu.stat").exists():
                return parent / "cpu.stat", parent / "memory.current", parent / "memory.stat", True
        raise FileNotFoundError("no Docker parent cgroup found under a cgroup v2 hierarchy")
    cpu = root / "cpuacct" / "docker" / "cpuacct.usage"
    mem = root / "memory" / "docker"
    if not cpu.exists():
        raise FileNotFoundError(f"{cpu} does not exist (no container started yet?)")
    return cpu, mem / "memory.usage_in_bytes", mem / "memory.stat", False


class NodeUtilisation:
    def __init__(
        self, cpu_capacity: float, memory_capacity_mb: float, interval_s: float = 0.1, root: Path = ROOT
    ) -> None:
        self.cpu_capacity = cpu_capacity
        self.memory_capacity_mb = memory_capacity_mb
        self.interval_s = interval_s
        self._cpu, self._mem, self._stat, self._v2 = _paths(root)
        self._samples: list[tuple[float, int, float]] = []  # (t, cpu ns, memory MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="node-utilisation", daemon=True)

    def _read(self) -> tuple[float, int, float]:
        if self._v2:
            cpu_ns = int(stat_value(self._cpu.read_text(), "usage_usec") or 0) * 1000
            cache = stat_value(self._stat.read_text(), "file") or 0
        else:
            cpu_ns = int(self._cpu.read_text())
            cache = stat_value(self._stat.read_text(), "total_cache") or 0
        used = int(self._mem.read_text()) - int(cache)
        return time.monotonic(), cpu_ns, max(0, used) / 2**20

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._samples.append(self._read())

    def start(self) -> NodeUtilisation:
        self._samples = [self._read()]
        self._thread.start()
        return self

    def stop(self) -> UtilisationSummary:
        self._stop.set()
        self._thread.join(2)
        self._samples.append(self._read())
        s = self._samples
        t0 = s[0][0]
        timeline = [
            (b[0] - t0, (b[1] - a[1]) / 1e9 / (b[0] - a[0]), b[2])
            for a, b in itertools.pairwise(s)
            if b[0] > a[0]
        ]
        seconds = s[-1][0] - t0
        mean_cpu = (s[-1][1] - s[0][1]) / 1e9 / seconds if seconds > 0 else 0.0
        mean_mem = sum(x[2] for x in s) / len(s)
        peak = max((c for _, c, _ in timeline), default=0.0)
        return UtilisationSummary(
            seconds, mean_cpu, mean_mem, peak, self.cpu_capacity, self.memory_capacity_mb, timeline
        )
