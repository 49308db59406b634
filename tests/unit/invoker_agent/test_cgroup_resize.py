"""Direct cgroup resizes: the path/format logic, the write order and the error mapping,
against fake cgroup trees in temp dirs (no Docker, no root)."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest

from gleaner.errors import DockerError
from invoker_agent.cgroup_resize import (
    CgroupGone,
    CgroupResizeError,
    CgroupResizer,
    Write,
    apply,
    cpu_quota_us,
    cpu_write,
    memory_bytes,
    memory_writes,
)

CID = "ab" * 32
PID = 4242
MB = 2**20


def _tree(tmp_path: Path, version: int, *, memsw: bool = True, cid: str = CID) -> tuple[Path, Path, Path]:
    """A fake sysfs root, /proc and the container's cgroup dir(s) (cgroupfs driver layout)."""
    root, proc = tmp_path / "sys", tmp_path / "proc"
    rel = f"/docker/{cid}"
    (proc / str(PID)).mkdir(parents=True)
    if version == 2:
        (root).mkdir(parents=True)
        (root / "cgroup.controllers").write_text("cpu memory\n")
        d = root / rel.lstrip("/")
        d.mkdir(parents=True)
        (d / "memory.current").write_text("1000\n")
        (d / "cpu.max").write_text("50000 100000\n")
        (d / "memory.max").write_text(f"{128 * MB}\n")
        if memsw:
            (d / "memory.swap.max").write_text("0\n")
        (proc / str(PID) / "cgroup").write_text(f"0::{rel}\n")
        return root, proc, d
    cpu = root / "cpu,cpuacct" / rel.lstrip("/")
    mem = root / "memory" / rel.lstrip("/")
    cpu.mkdir(parents=True)
    mem.mkdir(parents=True)
    (cpu / "cpuacct.usage").write_text("0\n")
    (cpu / "cpu.cfs_quota_us").write_text("50000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    (mem / "memory.usage_in_bytes").write_text("1000\n")
    (mem / "memory.limit_in_bytes").write_text(f"{128 * MB}\n")
    if memsw:
        (mem / "memory.memsw.limit_in_bytes").write_text(f"{128 * MB}\n")
    (proc / str(PID) / "cgroup").write_text(f"4:memory:{rel}\n2:cpu,cpuacct:{rel}\n0::/\n")
    return root, proc, cpu


# ---------------------------------------------------------------------- pure logic
@pytest.mark.parametrize(
    ("cpu", "quota"), [(0.5, 50_000), (1, 100_000), (1.25, 125_000), (2.0, 200_000), (0.001, 1_000)]
)
def test_quota_is_cores_times_period_at_least_1ms(cpu: float, quota: int) -> None:
    assert cpu_quota_us(cpu) == quota


@pytest.mark.parametrize("bad", [0, -1, 0.0, float("nan"), float("inf"), True, "1"])
def test_bad_cpu_is_a_docker_error(bad: object) -> None:
    with pytest.raises(CgroupResizeError, match="positive number of cores"):
        cpu_quota_us(bad)  # type: ignore[arg-type]


def test_cpu_write_v1_quota_only_v2_quota_and_period(tmp_path: Path) -> None:
    assert cpu_write(1, tmp_path, 0.5) == Write(tmp_path / "cpu.cfs_quota_us", "50000")
    assert cpu_write(1, tmp_path, 0.5, period_us=50_000) == Write(tmp_path / "cpu.cfs_quota_us", "25000")
    assert cpu_write(2, tmp_path, 1.5) == Write(tmp_path / "cpu.max", "150000 100000")


@pytest.mark.parametrize("bad", [5, 0, -3, 64.0, True])
def test_bad_memory_is_a_docker_error(bad: object) -> None:
    with pytest.raises(DockerError, match="at least 6 MB"):
        memory_bytes(bad)  # type: ignore[arg-type]


def test_memory_v1_grows_memsw_first_and_shrinks_limit_first(tmp_path: Path) -> None:
    grow = memory_writes(1, tmp_path, 256 * MB, 128 * MB)
    assert [w.path.name for w in grow] == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    assert {w.value for w in grow} == {str(256 * MB)}
    shrink = memory_writes(1, tmp_path, 64 * MB, 128 * MB)
    assert [w.path.name for w in shrink] == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    same = memory_writes(1, tmp_path, 128 * MB, 128 * MB)
    assert [w.path.name for w in same] == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    from_unlimited = memory_writes(1, tmp_path, 64 * MB, None)
    assert from_unlimited[0].path.name == "memory.limit_in_bytes"
    no_swap_accounting = memory_writes(1, tmp_path, 256 * MB, 128 * MB, swap_file=False)
    assert [w.path.name for w in no_swap_accounting] == ["memory.limit_in_bytes"]


def test_memory_v2_sets_max_and_no_swap(tmp_path: Path) -> None:
    writes = memory_writes(2, tmp_path, 256 * MB, None)
    assert writes == [Write(tmp_path / "memory.max", str(256 * MB)), Write(tmp_path / "memory.swap.max", "0")]
    assert memory_writes(2, tmp_path, 256 * MB, None, swap_file=False) == writes[:1]


# ---------------------------------------------------------------------- writes and errors
def test_apply_writes_in_order(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("old-a\n")
    b.write_text("")
    apply([Write(a, "1"), Write(b, "2")])
    assert (a.read_text(), b.read_text()) == ("1", "2")  # a cgroup file takes the value whole


def test_missing_file_means_the_container_is_gone(tmp_path: Path) -> None:
    with pytest.raises(CgroupGone, match="is gone"):
        apply([Write(tmp_path / "gone" / "cpu.cfs_quota_us", "50000")], "abc")


@pytest.mark.parametrize(
    ("code", "cls", "match"),
    [
        (errno.ESRCH, CgroupGone, "is gone"),
        (errno.ENODEV, CgroupGone, "is gone"),
        (errno.EACCES, CgroupResizeError, "permission denied"),
        (errno.EPERM, CgroupResizeError, "permission denied"),
        (errno.EROFS, CgroupResizeError, "permission denied"),
        (errno.EINVAL, CgroupResizeError, "kernel refused '7'"),
        (errno.EBUSY, CgroupResizeError, "uses more memory"),
        (errno.EIO, CgroupResizeError, "writing '7'"),
    ],
)
def test_os_errors_map_to_docker_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, cls: type[Exception], match: str
) -> None:
    target = tmp_path / "memory.limit_in_bytes"
    target.write_text("")

    def failing_write(fd: int, data: bytes) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "write", failing_write)
    with pytest.raises(cls, match=match) as err:
        apply([Write(target, "7")], "abc")
    assert isinstance(err.value, DockerError)
    if cls is CgroupResizeError:
        assert not isinstance(err.value, CgroupGone)


def test_a_failure_after_a_write_says_limits_may_be_inconsistent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "memory.memsw.limit_in_bytes", tmp_path / "memory.limit_in_bytes"
    first.write_text("")
    second.write_text("")
    real_open = os.open

    def open_(path: str | os.PathLike[str], flags: int, *a: int) -> int:
        if Path(path) == second:
            raise OSError(errno.EBUSY, "busy")
        return real_open(path, flags, *a)

    monkeypatch.setattr(os, "open", open_)
    with pytest.raises(CgroupResizeError, match=re.escape("after writing memory.memsw.limit_in_bytes")):
        apply([Write(first, "1"), Write(second, "1")], "abc")


# ---------------------------------------------------------------------- the resizer
@pytest.mark.parametrize("version", [1, 2])
def test_resizer_writes_the_containers_cgroup(tmp_path: Path, version: int) -> None:
    root, proc, cpu_dir = _tree(tmp_path, version)
    r = CgroupResizer(root=root, proc=proc)
    r.set_cpu(CID, PID, 1.25)
    if version == 1:
        assert (cpu_dir / "cpu.cfs_quota_us").read_text() == "125000"
    else:
        assert (cpu_dir / "cpu.max").read_text() == "125000 100000"
    assert r.cpu_limit(CID, PID) == pytest.approx(1.25)
    r.set_memory(CID, PID, 256)
    paths = r.paths(CID, PID)
    assert paths.memory_limit_bytes() == 256 * MB
    if version == 1:
        assert (paths.memory_dir / "memory.memsw.limit_in_bytes").read_text() == str(256 * MB)
    else:
        assert (paths.memory_dir / "memory.swap.max").read_text() == "0"


def test_resizer_v1_uses_the_containers_period(tmp_path: Path) -> None:
    root, proc, cpu_dir = _tree(tmp_path, 1)
    (cpu_dir / "cpu.cfs_period_us").write_text("50000\n")
    CgroupResizer(root=root, proc=proc).set_cpu(CID, PID, 2)
    assert (cpu_dir / "cpu.cfs_quota_us").read_text() == "100000"


def test_resizer_without_swap_accounting_writes_the_limit_only(tmp_path: Path) -> None:
    root, proc, _ = _tree(tmp_path, 1, memsw=False)
    r = CgroupResizer(root=root, proc=proc)
    r.set_memory(CID, PID, 64)
    assert r.paths(CID, PID).memory_limit_bytes() == 64 * MB


def test_resizer_caches_the_path_per_container(tmp_path: Path) -> None:
    root, proc, cpu_dir = _tree(tmp_path, 1)
    r = CgroupResizer(root=root, proc=proc)
    r.set_cpu(CID, PID, 0.5)
    (proc / str(PID) / "cgroup").unlink()  # located once: /proc is not read again
    r.set_cpu(CID, PID, 0.75)
    assert (cpu_dir / "cpu.cfs_quota_us").read_text() == "75000"
    assert r.cached() == 1
    r.forget(CID)
    assert r.cached() == 0
    with pytest.raises(CgroupGone):  # not cached any more, and the pid is gone
        r.set_cpu(CID, PID, 0.5)


def test_removed_cgroup_is_gone_and_forgotten(tmp_path: Path) -> None:
    root, proc, cpu_dir = _tree(tmp_path, 2)
    r = CgroupResizer(root=root, proc=proc)
    r.set_cpu(CID, PID, 0.5)
    for f in cpu_dir.iterdir():
        f.unlink()
    cpu_dir.rmdir()
    with pytest.raises(CgroupGone, match="is gone"):
        r.set_cpu(CID, PID, 1.0)
    assert r.cached() == 0


def test_unknown_pid_is_gone(tmp_path: Path) -> None:
    root, proc, _ = _tree(tmp_path, 1)
    with pytest.raises(CgroupGone, match="is gone"):
        CgroupResizer(root=root, proc=proc).set_cpu(CID, PID + 1, 0.5)


def test_a_reused_pid_in_another_cgroup_is_refused(tmp_path: Path) -> None:
    other = "cd" * 32
    root, proc, cpu_dir = _tree(tmp_path, 1, cid=other)  # PID now lives in another container
    with pytest.raises(CgroupGone, match="not in container"):
        CgroupResizer(root=root, proc=proc).set_cpu(CID, PID, 2.0)
    assert (cpu_dir / "cpu.cfs_quota_us").read_text() == "50000\n"  # untouched


def test_bad_value_raises_before_any_write(tmp_path: Path) -> None:
    root, proc, cpu_dir = _tree(tmp_path, 1)
    r = CgroupResizer(root=root, proc=proc)
    with pytest.raises(CgroupResizeError):
        r.set_cpu(CID, PID, -1)
    with pytest.raises(CgroupResizeError):
        r.set_cpu("", PID, 1)
    assert (cpu_dir / "cpu.cfs_quota_us").read_text() == "50000\n"


def test_unreadable_period_is_a_docker_error(tmp_path: Path) -> None:
    root, proc, cpu_dir = _tree(tmp_path, 1)
    (cpu_dir / "cpu.cfs_period_us").write_text("garbage\n")
    with pytest.raises(CgroupResizeError, match="unreadable"):
        CgroupResizer(root=root, proc=proc).set_cpu(CID, PID, 1)
