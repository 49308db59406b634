"""cgroup v1/v2 usage sampling for one container (thesis Algorithm 1).

The container's cgroup directories come from ``/proc/<pid>/cgroup`` of its init process,
which works for Docker's cgroupfs driver (``/docker/<id>``) and the systemd driver
(``/system.slice/docker-<id>.scope``) alike. Memory busy is usage minus page cache, as
in the thesis. The window math lives in :mod:`monitor.usage`.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from monitor.usage import Sample, UsageSummary, summarize

__all__ = [
    "CgroupNotFound",
    "CgroupPaths",
    "CgroupSampler",
    "UsageSummary",
    "cgroup_version",
    "find_cgroup",
    "parse_proc_cgroup",
    "stat_value",
]

SYSFS = Path("/sys/fs/cgroup")
PROC = Path("/proc")
_READ_SIZE = 16384
_MAX_READ_NS = 1_000_000  # a CPU-usage read slower than this was preempted
_LIMIT_EVERY = 10  # re-read the CPU limit every this many samples


class CgroupNotFound(LookupError):
    pass


def cgroup_version(root: Path = SYSFS) -> int:
    """2 on a unified hierarchy, 1 otherwise (including the v1+v2 "hybrid" layout)."""
    return 2 if (root / "cgroup.controllers").exists() else 1


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/<pid>/cgroup`` as controller -> path; the v2 entry (``0::/path``) is key ``""``."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            out[controller] = path
    return out


def stat_value(text: bytes | str, key: str) -> int:
    """The value of ``key`` in a flat-keyed file (``memory.stat``, ``cpu.stat``, ...); 0 if absent."""
    raw = text.encode() if isinstance(text, str) else text
    needle = key.encode() + b" "
    if raw.startswith(needle):
        start = len(needle)
    else:
        pos = raw.find(b"\n" + needle)
        if pos < 0:
            return 0
        start = pos + 1 + len(needle)
    end = raw.find(b"\n", start)
    return int(raw[start : end if end >= 0 else len(raw)])


@dataclass(frozen=True, slots=True)
class CgroupPaths:
    version: int
    cpuacct_dir: Path  # v1 cpuacct (usage); v2 the unified dir
    cpu_dir: Path  # v1 cpu (quota); v2 the unified dir
    memory_dir: Path  # v1 memory; v2 the unified dir

    @property
    def cpu_usage_file(self) -> Path:
        return self.cpuacct_dir / ("cpuacct.usage" if self.version == 1 else "cpu.stat")

    @property
    def memory_usage_file(self) -> Path:
        return self.memory_dir / ("memory.usage_in_bytes" if self.version == 1 else "memory.current")

    @property
    def memory_stat_file(self) -> Path:
        return self.memory_dir / "memory.stat"

    @property
    def cache_key(self) -> str:
        return "total_cache" if self.version == 1 else "file"

    def parse_cpu_usage_ns(self, raw: bytes) -> int:
        return int(raw) if self.version == 1 else stat_value(raw, "usage_usec") * 1000

    def read_cpu_usage_ns(self) -> int:
        return self.parse_cpu_usage_ns(self.cpu_usage_file.read_bytes())

    def read_memory_bytes(self) -> int:
        usage = int(self.memory_usage_file.read_bytes())
        return max(0, usage - stat_value(self.memory_stat_file.read_bytes(), self.cache_key))

    def cpu_limit(self) -> float | None:
        """The CFS bandwidth limit in cores, or None when unlimited."""
        if self.version == 1:
            quota = int((self.cpu_dir / "cpu.cfs_quota_us").read_text())
            period = int((self.cpu_dir / "cpu.cfs_period_us").read_text())
            return None if quota < 0 else quota / period
        quota_s, period_s = (self.cpu_dir / "cpu.max").read_text().split()
        return None if quota_s == "max" else int(quota_s) / int(period_s)

    def memory_limit_bytes(self) -> int | None:
        name = "memory.limit_in_bytes" if self.version == 1 else "memory.max"
        raw = (self.memory_dir / name).read_text().strip()
        if raw == "max" or int(raw) >= 2**62:
            return None
        return int(raw)

    def oom_kills(self) -> int:
        """How many processes the kernel OOM-killed in this cgroup."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        return stat_value((self.memory_dir / name).read_bytes(), "oom_kill")


def _v1_mount(root: Path, controller: str) -> list[Path]:
    names = [controller, "cpu,cpuacct", "cpuacct,cpu"] if controller in ("cpu", "cpuacct") else [controller]
    return [root / name for name in names if (root / name).is_dir()]


def _join(base: Path, cgroup_path: str) -> Path:
    return base / cgroup_path.lstrip("/")


def find_cgroup(
    pid: int, *, container_id: str | None = None, root: Path = SYSFS, proc: Path = PROC
) -> CgroupPaths:
    """The cgroup directories of process ``pid`` (a container's init process).

    When ``/proc`` shows a namespaced path (``/``, the reader itself in a cgroup
    namespace) the Docker layouts for ``container_id`` are tried instead.
    """
    try:
        entries = parse_proc_cgroup((proc / str(pid) / "cgroup").read_text())
    except OSError as exc:
        raise CgroupNotFound(f"process {pid} has no readable /proc/{pid}/cgroup: {exc}") from exc
    version = cgroup_version(root)
    fallbacks = (
        [f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"] if container_id else []
    )

    def locate(controller: str, probe: str) -> Path:
        bases = [root] if version == 2 else _v1_mount(root, controller)
        path = entries.get("" if version == 2 else controller)
        candidates = ([path] if path and path != "/" else []) + fallbacks
        for base in bases:
            for candidate in candidates:
                directory = _join(base, candidate)
                if (directory / probe).exists():
                    return directory
        raise CgroupNotFound(f"no {controller or 'unified'} cgroup with {probe} for pid {pid}")

    if version == 2:
        unified = locate("", "memory.current")
        return CgroupPaths(2, unified, unified, unified)
    return CgroupPaths(
        1,
        cpuacct_dir=locate("cpuacct", "cpuacct.usage"),
        cpu_dir=locate("cpu", "cpu.cfs_quota_us"),
        memory_dir=locate("memory", "memory.usage_in_bytes"),
    )


class CgroupSampler:
    """Samples (monotonic ns, CPU usage ns, memory bytes) of one container on a thread.

    Files are opened once and re-read with ``pread`` (about 3 syscalls per sample). When
    the cgroup disappears (the container died) sampling ends quietly with what it has.
    """

    def __init__(
        self,
        pid: int,
        interval_ms: int,
        window_ms: int,
        *,
        container_id: str | None = None,
        paths: CgroupPaths | None = None,
    ) -> None:
        self.paths = paths or find_cgroup(pid, container_id=container_id)
        self.interval_s = max(1, interval_ms) / 1000.0
        self.window_ns = max(window_ms, 1) * 1_000_000
        self.samples: list[Sample] = []
        self.ended = False  # the cgroup went away
        self.cpu_limit: float | None = None  # highest CFS limit seen, in cores
        self._unlimited = False
        self._fds: list[int] = []
        self._oom_kills_at_start: int | None = None

    def _oom_kills(self) -> int | None:
        try:
            return self.paths.oom_kills()
        except (OSError, ValueError):
            return None

    def start(self) -> CgroupSampler:
        p = self.paths
        self._fds = [
            os.open(f, os.O_RDONLY) for f in (p.cpu_usage_file, p.memory_usage_file, p.memory_stat_file)
        ]
        # The counter is the container's, across runs: only its growth belongs to this run.
        self._oom_kills_at_start = self._oom_kills()
        self.sample()  # a first sample before returning: a run of any length has two
        _TICKER.add(self)
        return self

    def sample(self) -> bool:
        """Take one sample now; False once the cgroup is gone."""
        if self.ended or not self._fds:
            return False
        cpu_fd, mem_fd, stat_fd = self._fds
        try:
            for _ in range(3):
                # Bracket the CPU read with the clock: a read that was preempted would
                # pair a usage with the wrong time, so it is taken again.
                before = time.monotonic_ns()
                cpu = self.paths.parse_cpu_usage_ns(os.pread(cpu_fd, _READ_SIZE, 0))
                after = time.monotonic_ns()
                if after - before < _MAX_READ_NS:
                    break
            usage = int(os.pread(mem_fd, _READ_SIZE, 0))
            cache = stat_value(os.pread(stat_fd, _READ_SIZE, 0), self.paths.cache_key)
        except (OSError, ValueError):
            self.ended = True
            return False
        self.samples.append(((before + after) // 2, cpu, max(0, usage - cache)))
        if len(self.samples) % _LIMIT_EVERY == 1:
            self._note_limit()
        return True

    def _note_limit(self) -> None:
        """Track the highest CPU limit of the run (a live resize may change it)."""
        try:
            limit = self.paths.cpu_limit()
        except (OSError, ValueError):
            return
        if limit is None:
            self._unlimited = True
        elif self.cpu_limit is None or limit > self.cpu_limit:
            self.cpu_limit = limit

    def stop(self) -> UsageSummary:
        _TICKER.remove(self)  # after this the ticker never touches it again
        self.sample()  # the end of the run
        for fd in self._fds:
            os.close(fd)
        self._fds = []
        self._note_limit()
        limit = None if self._unlimited else self.cpu_limit
        summary = summarize(self.samples, self.window_ns, cpu_limit=limit)
        now, then = self._oom_kills(), self._oom_kills_at_start
        if now is not None and then is not None and now > then:
            summary = dataclasses.replace(summary, oom_kills=now - then)
        return summary

    def __enter__(self) -> CgroupSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._fds:
            self.stop()


class _Ticker:
    """One thread samples every running container at its interval: a thread per
    activation cost a warm invoke more than its own /run (py-spy)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._due: dict[CgroupSampler, float] = {}  # sampler -> monotonic time of its next sample
        self._changed = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, sampler: CgroupSampler) -> None:
        with self._lock:
            self._due[sampler] = time.monotonic() + sampler.interval_s
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="cgroup-sampler", daemon=True)
                self._thread.start()
        self._changed.set()

    def remove(self, sampler: CgroupSampler) -> None:
        with self._lock:  # waits for a sample in progress: stop() then owns the files
            self._due.pop(sampler, None)

    def _loop(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                for sampler, at in list(self._due.items()):
                    if at > now:
                        continue
                    if not sampler.sample():
                        del self._due[sampler]  # the cgroup is gone
                        continue
                    # fell behind (a busy host): do not burst to catch up
                    nxt = at + sampler.interval_s
                    self._due[sampler] = nxt if nxt > now else now + sampler.interval_s
                wait = min(self._due.values(), default=now + 1.0) - now
            self._changed.wait(max(0.0, wait))
            self._changed.clear()


_TICKER = _Ticker()
