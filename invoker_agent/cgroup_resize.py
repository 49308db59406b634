"""Resize a running container by writing its cgroup directly (the harvesting fast path).

``docker update`` costs a round trip through dockerd, containerd and a ``runc update``
process (p50 34 ms on this 2-core host under load); the same CPU resize is one ``write(2)``
to the container's cgroup (p50 under 60 µs; ``gleaner bench resize``, docs/benchmarks.md).
What is written matches what Docker writes for a container started
with ``cpu_period=100000, cpu_quota=Q`` and ``mem_limit = memswap_limit = M``:

- cgroup v1: ``cpu.cfs_quota_us`` = cores x period (the period, read once, stays
  100000); ``memory.limit_in_bytes`` and ``memory.memsw.limit_in_bytes`` (memory+swap
  = memory: no swap). The kernel keeps memsw >= limit at every instant, so a grow
  writes memsw first and a shrink writes the limit first.
- cgroup v2: ``cpu.max`` = ``"<quota> 100000"``; ``memory.max`` and
  ``memory.swap.max`` = 0.

The container's cgroup directories come from its init pid (:func:`monitor.cgroups.find_cgroup`)
and are cached per container id; a directory that does not name the container id is
refused (a reused pid of a dead container must never resize someone else).

**Docker's view goes stale, on purpose.** After a direct write ``docker inspect`` still
shows the CpuQuota of the last ``docker update`` (or of the start). Nothing in Gleaner
reads it: the pool tracks the true current allocation in ``Lease.cpu``, monitoring reads
the cgroup itself, and every ``DockerEngine.update`` passes cpu *and* memory, so the
next ``docker update`` (dockerd hands runc the whole resource set) rewrites both the
stored config and the cgroup wholesale. Keeping Docker consistent would cost the very
``docker update`` this module avoids (or a background one, which could land after, and
undo, a later direct write). Only a ``docker restart``, which Gleaner never does,
would bring back Docker's stale value.

Every failure leaves as :class:`CgroupResizeError` (a :class:`gleaner.errors.DockerError`);
a container that is gone (its cgroup or pid vanished) as :class:`CgroupGone`.
"""

from __future__ import annotations

import errno
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from gleaner.errors import DockerError
from monitor import cgroups

__all__ = [
    "CPU_PERIOD_US",
    "CgroupGone",
    "CgroupResizeError",
    "CgroupResizer",
    "Write",
    "apply",
    "cpu_quota_us",
    "cpu_write",
    "memory_bytes",
    "memory_writes",
]

CPU_PERIOD_US = 100_000  # the CFS period; Docker's default for --cpus
MIN_QUOTA_US = 1_000  # the kernel's minimum CFS quota (1 ms)
MIN_MEMORY_MB = 6  # Docker's minimum memory limit

_GONE = {errno.ENOENT, errno.ESRCH, errno.ENODEV}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


class CgroupResizeError(DockerError):
    """A direct cgroup resize failed: bad value, permission, or the kernel refused."""


class CgroupGone(CgroupResizeError):
    """The container's cgroup (or its init process) no longer exists."""


@dataclass(frozen=True, slots=True)
class Write:
    """One cgroup file write: ``value`` into ``path``."""

    path: Path
    value: str


# ---------------------------------------------------------------------- pure logic
def cpu_quota_us(cpu: float, period_us: int = CPU_PERIOD_US) -> int:
    """The CFS quota for ``cpu`` cores (at least the kernel's 1 ms)."""
    if isinstance(cpu, bool) or not isinstance(cpu, int | float) or not math.isfinite(cpu) or cpu <= 0:
        raise CgroupResizeError(f"cpu allocation must be a positive number of cores, got {cpu!r}")
    return max(MIN_QUOTA_US, round(cpu * period_us))


def memory_bytes(memory_mb: int) -> int:
    if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or memory_mb < MIN_MEMORY_MB:
        raise CgroupResizeError(f"memory allocation must be at least {MIN_MEMORY_MB} MB, got {memory_mb!r}")
    return memory_mb * 2**20


def cpu_write(version: int, cpu_dir: Path, cpu: float, period_us: int = CPU_PERIOD_US) -> Write:
    """The one write that sets the CPU limit (v1 keeps the period already in place)."""
    quota = cpu_quota_us(cpu, period_us)
    if version == 1:
        return Write(cpu_dir / "cpu.cfs_quota_us", str(quota))
    return Write(cpu_dir / "cpu.max", f"{quota} {period_us}")


def memory_writes(
    version: int, memory_dir: Path, new_bytes: int, current_bytes: int | None, *, swap_file: bool = True
) -> list[Write]:
    """The writes, in a safe order, that set memory = memory+swap = ``new_bytes``.

    v1 refuses memsw < limit at any instant: grow memsw first, shrink the limit first
    (``current_bytes`` is the current ``memory.limit_in_bytes``; None = unlimited).
    ``swap_file`` is whether the memsw / swap file exists (swap accounting enabled).
    """
    if new_bytes <= 0:
        raise CgroupResizeError(f"memory limit must be positive, got {new_bytes}")
    value = str(new_bytes)
    if version == 1:
        limit = Write(memory_dir / "memory.limit_in_bytes", value)
        if not swap_file:
            return [limit]
        memsw = Write(memory_dir / "memory.memsw.limit_in_bytes", value)
        growing = current_bytes is not None and new_bytes > current_bytes
        return [memsw, limit] if growing else [limit, memsw]
    out = [Write(memory_dir / "memory.max", value)]
    if swap_file:
        out.append(Write(memory_dir / "memory.swap.max", "0"))
    return out


def _error(exc: OSError, path: Path, container: str, value: str | None = None) -> CgroupResizeError:
    """The CgroupResizeError for an OSError on ``path`` (``value``: what was being written)."""
    code = exc.errno
    if code in _GONE:
        return CgroupGone(f"cgroup resize: container {container} is gone ({path}: {exc.strerror})")
    if code in _DENIED:
        return CgroupResizeError(
            f"cgroup resize: permission denied on {path} (needs root and a writable cgroupfs)"
        )
    if value is not None and code == errno.EINVAL:
        return CgroupResizeError(
            f"cgroup resize: the kernel refused {value!r} for {path.name} of container {container} "
            "(out of range, or above the parent cgroup's limit)"
        )
    if value is not None and code == errno.EBUSY:
        return CgroupResizeError(
            f"cgroup resize: the kernel refused {value!r} for {path.name} of container {container}: "
            "it uses more memory than that"
        )
    action = f"writing {value!r} to" if value is not None else "reading"
    return CgroupResizeError(f"cgroup resize: {action} {path}: {exc}")


def apply(writes: list[Write], container: str = "?") -> None:
    """Perform the writes in order; the first failure stops and is raised as CgroupResizeError."""
    for i, write in enumerate(writes):
        try:
            fd = os.open(write.path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)  # as `echo v > file`
            try:
                os.write(fd, write.value.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            err = _error(exc, write.path, container, write.value)
            if i and not isinstance(err, CgroupGone):
                done = ", ".join(w.path.name for w in writes[:i])
                err = type(err)(f"{err} (after writing {done}: limits may be inconsistent)")
            raise err from exc


# ---------------------------------------------------------------------- per-container
@dataclass(frozen=True, slots=True)
class _Target:
    paths: cgroups.CgroupPaths
    period_us: int


class CgroupResizer:
    """Direct cgroup resizes, with each container's cgroup located once and cached.

    Thread-safe. Call :meth:`forget` when a container is removed (DockerEngine does).
    """

    def __init__(self, *, root: Path = cgroups.SYSFS, proc: Path = cgroups.PROC) -> None:
        self.root = root
        self.proc = proc
        self._lock = threading.Lock()
        self._cache: dict[str, _Target] = {}

    def paths(self, container_id: str, pid: int) -> cgroups.CgroupPaths:
        return self._target(container_id, pid).paths

    def set_cpu(self, container_id: str, pid: int, cpu: float) -> None:
        """Set the CFS limit to ``cpu`` cores, live."""
        target = self._target(container_id, pid)
        self._apply(
            container_id, [cpu_write(target.paths.version, target.paths.cpu_dir, cpu, target.period_us)]
        )

    def set_memory(self, container_id: str, pid: int, memory_mb: int) -> None:
        """Set memory = memory+swap = ``memory_mb``, live.

        Below current usage, v1 refuses (after trying to reclaim) with CgroupResizeError;
        v2 accepts and reclaims, OOM-killing if it cannot (as ``docker update`` would).
        """
        new = memory_bytes(memory_mb)
        paths = self._target(container_id, pid).paths
        swap_name = "memory.memsw.limit_in_bytes" if paths.version == 1 else "memory.swap.max"
        current: int | None = None
        if paths.version == 1:
            current = self._read_memory_limit(container_id, paths)
        writes = memory_writes(
            paths.version, paths.memory_dir, new, current, swap_file=(paths.memory_dir / swap_name).exists()
        )
        self._apply(container_id, writes)

    def cpu_limit(self, container_id: str, pid: int) -> float | None:
        """The CFS limit now in force, in cores (None = unlimited), read from the cgroup."""
        paths = self._target(container_id, pid).paths
        try:
            return paths.cpu_limit()
        except OSError as exc:
            raise _error(exc, paths.cpu_dir, _short(container_id)) from exc
        except ValueError as exc:
            raise CgroupResizeError(f"cgroup resize: unreadable CPU limit in {paths.cpu_dir}: {exc}") from exc

    def forget(self, container_id: str) -> None:
        with self._lock:
            self._cache.pop(container_id, None)

    def cached(self) -> int:
        with self._lock:
            return len(self._cache)

    # ------------------------------------------------------------------ internals
    def _apply(self, container_id: str, writes: list[Write]) -> None:
        try:
            apply(writes, _short(container_id))
        except CgroupGone:
            self.forget(container_id)
            raise

    def _read_memory_limit(self, container_id: str, paths: cgroups.CgroupPaths) -> int | None:
        try:
            return paths.memory_limit_bytes()
        except OSError as exc:
            self.forget(container_id)
            raise _error(exc, paths.memory_dir, _short(container_id)) from exc
        except ValueError as exc:
            raise CgroupResizeError(
                f"cgroup resize: unreadable memory limit in {paths.memory_dir}: {exc}"
            ) from exc

    def _target(self, container_id: str, pid: int) -> _Target:
        with self._lock:
            hit = self._cache.get(container_id)
        if hit is not None:
            return hit
        target = self._locate(container_id, pid)
        with self._lock:
            self._cache[container_id] = target
        return target

    def _locate(self, container_id: str, pid: int) -> _Target:
        short = _short(container_id)
        if not container_id or pid <= 0:
            raise CgroupResizeError(
                f"cgroup resize: need a container id and its init pid, got {container_id!r}/{pid}"
            )
        try:
            paths = cgroups.find_cgroup(pid, container_id=container_id, root=self.root, proc=self.proc)
        except cgroups.CgroupNotFound as exc:
            raise CgroupGone(f"cgroup resize: container {short} is gone (pid {pid}): {exc}") from exc
        except OSError as exc:
            raise CgroupResizeError(f"cgroup resize: cannot locate the cgroup of {short}: {exc}") from exc
        for directory in {paths.cpu_dir, paths.memory_dir}:
            if container_id not in directory.name:
                # cgroupfs driver: .../docker/<id>; systemd: docker-<id>.scope
                raise CgroupGone(
                    f"cgroup resize: pid {pid} is in {directory}, not in container {short}'s cgroup "
                    "(the container is gone and its pid reused?)"
                )
        period = CPU_PERIOD_US
        if paths.version == 1:
            period_file = paths.cpu_dir / "cpu.cfs_period_us"
            try:
                period = int(period_file.read_text())
            except OSError as exc:
                raise _error(exc, period_file, short) from exc
            except ValueError as exc:
                raise CgroupResizeError(f"cgroup resize: unreadable {period_file}: {exc}") from exc
        return _Target(paths, period)


def _short(container_id: str) -> str:
    return container_id[:12]
