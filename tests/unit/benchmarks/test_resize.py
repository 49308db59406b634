"""``gleaner bench resize``'s pure parts (benchmarks/resize.py) over a cgroup folder in a
temporary directory: the quota read back in both cgroup versions, a resize that did not
take counted as a mismatch, and the report's figures. Timing a real container's resize
needs dockerd: no integration test runs it (it is a benchmark)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from benchmarks import resize as rz
from invoker_agent.cgroup_resize import cpu_quota_us
from monitor.cgroups import CgroupPaths


def v2(
    root: Path, quota: str = "100000", periods: int = 10, throttled: int = 0, usage_usec: int = 0
) -> CgroupPaths:
    root.mkdir(exist_ok=True)
    (root / "cpu.max").write_text(f"{quota} 100000\n")
    (root / "cpu.stat").write_text(
        f"usage_usec {usage_usec}\nnr_periods {periods}\nnr_throttled {throttled}\n"
    )
    return CgroupPaths(2, root, root, root)


def test_the_quota_is_read_from_cpu_max_or_cfs_quota_us_and_max_is_unlimited(tmp_path: Path) -> None:
    assert rz.read_quota_us(v2(tmp_path / "a", "50000")) == 50_000
    assert rz.read_quota_us(v2(tmp_path / "b", "max")) == -1
    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert rz.read_quota_us(CgroupPaths(1, v1, v1, v1)) == -1
    (v1 / "cpu.cfs_quota_us").write_text("75000\n")
    assert rz.read_quota_us(CgroupPaths(1, v1, v1, v1)) == 75_000


def test_measure_alternates_low_and_high_and_counts_resizes_that_did_not_take(tmp_path: Path) -> None:
    paths = v2(tmp_path / "cg", str(cpu_quota_us(rz.HIGH)))
    asked: list[float] = []

    def resize(cpu: float) -> None:
        asked.append(cpu)
        # Every third resize is lost: the cgroup keeps what it had.
        if len(asked) % 3:
            (paths.cpu_dir / "cpu.max").write_text(f"{cpu_quota_us(cpu)} 100000\n")

    run = rz.measure("idle", "fake", resize, paths, 9, progress=False)
    assert len(asked) == rz.WARMUP + 9 and len(run.times_us) == 9
    assert set(asked) == {rz.LOW, rz.HIGH}
    measured = asked[rz.WARMUP :]
    assert all(a != b for a, b in itertools.pairwise(measured))  # each one a change
    # measured resizes are calls 6..14 of the resize function: 6, 9 and 12 were lost
    assert run.mismatches == 3
    assert (run.state, run.method) == ("idle", "fake")
    assert all(t >= 0 for t in run.times_us)


def test_measure_reads_the_containers_cpu_and_throttled_share_over_the_run(tmp_path: Path) -> None:
    paths = v2(tmp_path / "cg", str(cpu_quota_us(rz.LOW)), periods=100, throttled=10)
    writes = 0

    def resize(cpu: float) -> None:
        nonlocal writes
        writes += 1
        (paths.cpu_dir / "cpu.max").write_text(f"{cpu_quota_us(cpu)} 100000\n")
        if writes == rz.WARMUP + 4:  # the last measured resize: 40 more periods, 30 throttled
            (paths.cpu_dir / "cpu.stat").write_text("usage_usec 0\nnr_periods 140\nnr_throttled 40\n")

    run = rz.measure("busy", "fake", resize, paths, 4, progress=False)
    assert run.mismatches == 0
    assert math.isclose(run.throttled, 30 / 40)
    assert run.container_cores == 0.0  # no CPU used in between


def _run(state: str, method: str, times_us: list[float], mismatches: int = 0) -> rz.Run:
    return rz.Run(state, method, times_us, mismatches, container_cores=0.5, throttled=0.25)


def test_the_report_has_a_row_per_run_and_the_ratio_of_the_two_ways() -> None:
    runs = [
        _run(
            state,
            method,
            [scale * t for t in (100.0, 200.0, 300.0)],
            mismatches=int(method == "cgroup write"),
        )
        for state in ("idle", "busy")
        for method, scale in (("docker update (SDK)", 50), ("cgroup write", 1), ("cgroup write, uncached", 2))
    ]
    extra = {"cgroup_version": 2, "inspect_quota": 100000, "cgroup_quota": 75000, "load_before": 1.25}
    text = rz.render(runs, extra, 3, "gleaner-runtime:test")
    rows = [line for line in text.splitlines() if line.startswith(("| idle |", "| busy |"))]
    assert len(rows) == 6
    assert (
        "| idle | docker update (SDK) | 10.0 ms | 14.0 ms | 14.9 ms | 15.0 ms | 0/3 | 0.50 cores | 25% |"
        in rows
    )
    assert "| busy | cgroup write | 200 µs | 280 µs | 298 µs | 300 µs | 1/3 | 0.50 cores | 25% |" in rows
    assert "- idle: docker update / cgroup write = 50x at p50, 50x at p99." in text
    assert "CpuQuota 100000 while the cgroup holds 75000" in text
    assert "cgroup v2" in text and "`gleaner-runtime:test`" in text


@pytest.mark.parametrize(("us", "shown"), [(999.4, "999 µs"), (1000.0, "1.0 ms"), (12_345.0, "12.3 ms")])
def test_times_are_shown_in_microseconds_below_a_millisecond(us: float, shown: str) -> None:
    assert rz._fmt(us) == shown


def test_fewer_than_one_resize_is_refused_before_anything_starts() -> None:
    import argparse

    with pytest.raises(SystemExit, match="-n must be at least 1"):
        rz.main(argparse.Namespace(resizes=0, out="unused.md"))
