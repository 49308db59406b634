"""Window math of the usage monitor, and cgroup v1/v2 discovery and parsing on fake trees."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.cgroups import (
    CgroupNotFound,
    CgroupSampler,
    cgroup_version,
    find_cgroup,
    parse_proc_cgroup,
    stat_value,
)
from monitor.usage import (
    Sample,
    max_slope,
    mean_cpu,
    peak_cpu,
    peak_memory_mb,
    summarize,
    trajectory,
    window_rates,
)

MS = 1_000_000
WINDOW = 100 * MS
CID = "0123456789abcdef" * 4


def throttled(cap: float, seconds: float, interval_ms: float, threads: int = 1) -> list[Sample]:
    """CFS bandwidth control: each 100 ms period, run flat out until the quota is spent."""
    quota_ns = cap * 100 * MS
    samples = []
    cpu = 0.0
    step = interval_ms * MS
    t = 0.0
    while t <= seconds * 1e9:
        samples.append((int(t), int(cpu), 50 * 2**20))
        # Integrate usage over [t, t + step) in 0.1 ms slices.
        for k in range(int(step / (0.1 * MS))):
            now = t + k * 0.1 * MS
            if now % (100 * MS) < quota_ns / threads:
                cpu += threads * 0.1 * MS
        t += step
    return samples


# --------------------------------------------------------------------------- window math
def test_half_core_throttled_pattern_peaks_at_half() -> None:
    samples = throttled(0.5, 2.0, 10)
    assert max_slope(samples) == pytest.approx(1.0)  # 10 ms windows would say one full core
    assert peak_cpu(samples, WINDOW) == pytest.approx(0.5, abs=0.02)
    assert mean_cpu(samples) == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("interval_ms", [1, 3, 7, 10, 13, 50])
def test_half_core_with_other_sampling_intervals(interval_ms: int) -> None:
    peak = peak_cpu(throttled(0.5, 2.0, interval_ms), WINDOW)
    assert 0.45 <= peak <= 0.5 * (100 + interval_ms) / 100 + 0.01


def test_two_threads_under_half_core_quota_still_half() -> None:
    samples = throttled(0.5, 2.0, 10, threads=2)
    assert max_slope(samples) == pytest.approx(2.0)
    assert peak_cpu(samples, WINDOW) == pytest.approx(0.5, abs=0.02)


def test_unthrottled_two_cores() -> None:
    samples = [(k * 10 * MS, k * 20 * MS, 0) for k in range(50)]
    assert peak_cpu(samples, WINDOW) == pytest.approx(2.0)
    assert mean_cpu(samples) == pytest.approx(2.0)


def test_run_shorter_than_one_window_uses_the_whole_run() -> None:
    # 40 ms run: 10 ms at 1 core, then idle. The whole run is one window: 10/40.
    samples = [(0, 0, 0), (10 * MS, 10 * MS, 0), (20 * MS, 10 * MS, 0), (40 * MS, 10 * MS, 0)]
    assert peak_cpu(samples, WINDOW) == pytest.approx(0.25)
    assert window_rates(samples, WINDOW) == [pytest.approx(0.25)] * 4


def test_burst_then_idle_peaks_over_one_window() -> None:
    # 100 ms at 2 cores, then 400 ms idle.
    samples = [(k * 10 * MS, min(k, 10) * 20 * MS, 0) for k in range(51)]
    assert peak_cpu(samples, WINDOW) == pytest.approx(2.0)
    assert mean_cpu(samples) == pytest.approx(0.4)


def test_degenerate_inputs() -> None:
    assert peak_cpu([], WINDOW) == 0.0
    assert peak_cpu([(0, 0, 0)], WINDOW) == 0.0
    assert peak_cpu([(5, 100, 0), (5, 200, 0)], WINDOW) == 0.0  # no time passed
    assert mean_cpu([]) == 0.0
    assert peak_memory_mb([]) == 0.0
    s = summarize([], WINDOW)
    assert s.samples == 0 and s.trajectory == [] and s.peak_cpu == 0.0


def test_memory_peak_and_trajectory_downsampling_keep_the_peak() -> None:
    samples: list[Sample] = [(k * 10 * MS, k * 5 * MS, 100 * 2**20) for k in range(1000)]
    samples[503] = (samples[503][0], samples[503][1], 700 * 2**20)  # one short spike
    points = trajectory(samples, WINDOW, max_points=100)
    assert len(points) <= 100
    assert points[0][0] == 0.0 and points[-1][0] == pytest.approx(9990.0)
    assert max(p[2] for p in points) == pytest.approx(700.0)
    assert all(p[1] == pytest.approx(0.5) for p in points)
    summary = summarize(samples, WINDOW)
    assert summary.peak_memory_mb == pytest.approx(700.0)
    assert summary.samples == 1000
    assert summary.duration_ms == pytest.approx(9990.0)


def test_straddling_window_is_clamped_to_the_cpu_limit() -> None:
    # Contended host: period k's 50 ms of runtime came at its end, period k+1's at its
    # start, so the 100 ms window across the boundary sees a full core under a 0.5 cap.
    samples: list[Sample] = []
    for k in range(41):
        t = k * 10 * MS
        on_ms = min(max(t / MS - 50, 0), 100)  # runs flat out over [50 ms, 150 ms)
        samples.append((t, int(on_ms * MS), 0))
    assert peak_cpu(samples, WINDOW) == pytest.approx(1.0)
    clamped = summarize(samples, WINDOW, cpu_limit=0.5)
    assert clamped.peak_cpu == pytest.approx(0.5) and clamped.cpu_limit == 0.5
    assert max(p[1] for p in clamped.trajectory) <= 0.5
    assert summarize(samples, WINDOW).peak_cpu == pytest.approx(1.0)  # unlimited: untouched


def test_short_trajectory_is_not_downsampled() -> None:
    samples = [(k * 10 * MS, k * 10 * MS, k) for k in range(5)]
    assert len(trajectory(samples, WINDOW)) == 5


@st.composite
def sample_series(draw: st.DrawFn) -> list[Sample]:
    gaps = draw(st.lists(st.integers(min_value=1, max_value=60 * MS), min_size=1, max_size=80))
    rates = draw(st.lists(st.floats(min_value=0, max_value=8), min_size=len(gaps), max_size=len(gaps)))
    out: list[Sample] = [(0, 0, 0)]
    for gap, rate in zip(gaps, rates, strict=True):
        t, cpu, _ = out[-1]
        out.append((t + gap, cpu + int(gap * rate), 0))
    return out


@settings(max_examples=300, deadline=None)
@given(sample_series(), st.integers(min_value=1 * MS, max_value=500 * MS))
def test_peak_never_exceeds_the_max_instantaneous_slope(samples: list[Sample], window_ns: int) -> None:
    peak = peak_cpu(samples, window_ns)
    assert 0.0 <= peak <= max_slope(samples) + 1e-9
    assert all(p[1] <= peak + 1e-9 for p in trajectory(samples, window_ns, max_points=10))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=1 * MS, max_value=40 * MS), min_size=1, max_size=100),
    st.floats(min_value=0.01, max_value=8),
)
def test_constant_rate_is_measured_exactly_whatever_the_jitter(gaps: list[int], rate: float) -> None:
    samples: list[Sample] = [(0, 0, 0)]
    for gap in gaps:
        t = samples[-1][0] + gap
        samples.append((t, round(t * rate), 0))
    assert peak_cpu(samples, WINDOW) == pytest.approx(rate, rel=1e-6, abs=1e-6)
    assert mean_cpu(samples) == pytest.approx(rate, rel=1e-6, abs=1e-6)


# --------------------------------------------------------------------------- cgroup trees
def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fake_v1(tmp_path: Path, cgroup: str, *, combined_cpu: bool = False) -> tuple[Path, Path]:
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    cpu_mount = "cpu,cpuacct" if combined_cpu else "cpu"
    acct_mount = "cpu,cpuacct" if combined_cpu else "cpuacct"
    _write(root / acct_mount / cgroup.lstrip("/") / "cpuacct.usage", "123456789\n")
    _write(root / cpu_mount / cgroup.lstrip("/") / "cpu.cfs_quota_us", "50000\n")
    _write(root / cpu_mount / cgroup.lstrip("/") / "cpu.cfs_period_us", "100000\n")
    mem = root / "memory" / cgroup.lstrip("/")
    _write(mem / "memory.usage_in_bytes", str(300 * 2**20) + "\n")
    _write(mem / "memory.stat", f"cache 999\nrss 5\ntotal_cache {100 * 2**20}\ntotal_rss 7\n")
    _write(mem / "memory.limit_in_bytes", str(512 * 2**20) + "\n")
    _write(mem / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    controllers = ["pids", "memory", "cpu,cpuacct" if combined_cpu else "cpuacct", "name=systemd"]
    if not combined_cpu:
        controllers.append("cpu")
    lines = [f"{i}:{c}:{cgroup}" for i, c in enumerate(controllers, start=1)] + [f"0::{cgroup}"]
    _write(proc / "4242" / "cgroup", "\n".join(lines) + "\n")
    return root, proc


def fake_v2(tmp_path: Path, cgroup: str, proc_path: str | None = None) -> tuple[Path, Path]:
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    _write(root / "cgroup.controllers", "cpuset cpu io memory pids\n")
    d = root / cgroup.lstrip("/")
    _write(d / "cpu.stat", "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 0\n")
    _write(d / "cpu.max", "150000 100000\n")
    _write(d / "memory.current", str(200 * 2**20) + "\n")
    _write(d / "memory.stat", f"anon {150 * 2**20}\nfile {50 * 2**20}\nkernel 0\nfile_mapped 12\n")
    _write(d / "memory.max", "max\n")
    _write(d / "memory.events", "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\noom_group_kill 0\n")
    _write(proc / "4242" / "cgroup", f"0::{proc_path if proc_path is not None else cgroup}\n")
    return root, proc


def test_parse_proc_cgroup_v1_and_v2_lines() -> None:
    text = "12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n0::/docker/abc\n"
    parsed = parse_proc_cgroup(text)
    assert parsed["cpu"] == parsed["cpuacct"] == parsed["memory"] == "/docker/abc"
    assert parsed["name=systemd"] == "/docker/abc"
    assert parsed[""] == "/docker/abc"
    assert parse_proc_cgroup("0::/system.slice/docker-x.scope\n") == {"": "/system.slice/docker-x.scope"}


def test_stat_value() -> None:
    text = b"cache 1\ntotal_cache 22\nfile 7\nfile_mapped 9"
    assert stat_value(text, "cache") == 1
    assert stat_value(text, "total_cache") == 22
    assert stat_value(text, "file") == 7
    assert stat_value(text, "file_mapped") == 9
    assert stat_value(text, "missing") == 0
    assert stat_value("oom_kill 3", "oom_kill") == 3


def test_version_detection(tmp_path: Path) -> None:
    assert cgroup_version(tmp_path) == 1
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("")
    assert cgroup_version(tmp_path) == 1  # hybrid: v2 only under /unified
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    assert cgroup_version(tmp_path) == 2


def test_v1_cgroupfs_driver(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path, f"/docker/{CID}")
    paths = find_cgroup(4242, root=root, proc=proc)
    assert paths.version == 1
    assert paths.cpuacct_dir == root / "cpuacct" / "docker" / CID
    assert paths.memory_dir == root / "memory" / "docker" / CID
    assert paths.read_cpu_usage_ns() == 123456789
    assert paths.read_memory_bytes() == 200 * 2**20  # usage minus total_cache
    assert paths.cpu_limit() == 0.5
    assert paths.memory_limit_bytes() == 512 * 2**20
    assert paths.oom_kills() == 1


def test_v1_systemd_driver_with_combined_cpu_mount(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path, f"/system.slice/docker-{CID}.scope", combined_cpu=True)
    paths = find_cgroup(4242, root=root, proc=proc)
    assert paths.cpuacct_dir == root / "cpu,cpuacct" / "system.slice" / f"docker-{CID}.scope"
    assert paths.cpu_dir == paths.cpuacct_dir
    assert paths.read_cpu_usage_ns() == 123456789
    assert paths.cpu_limit() == 0.5


def test_v2_systemd_driver(tmp_path: Path) -> None:
    root, proc = fake_v2(tmp_path, f"/system.slice/docker-{CID}.scope")
    paths = find_cgroup(4242, root=root, proc=proc)
    assert paths.version == 2
    assert paths.memory_dir == root / "system.slice" / f"docker-{CID}.scope"
    assert paths.read_cpu_usage_ns() == 2_500_000  # usage_usec x 1000
    assert paths.read_memory_bytes() == 150 * 2**20  # memory.current minus file
    assert paths.cpu_limit() == 1.5
    assert paths.memory_limit_bytes() is None
    assert paths.oom_kills() == 2


def test_v2_namespaced_proc_falls_back_to_container_id(tmp_path: Path) -> None:
    root, proc = fake_v2(tmp_path, f"/docker/{CID}", proc_path="/")
    with pytest.raises(CgroupNotFound):
        find_cgroup(4242, root=root, proc=proc)
    paths = find_cgroup(4242, container_id=CID, root=root, proc=proc)
    assert paths.memory_dir == root / "docker" / CID


def test_missing_process_or_cgroup(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path, f"/docker/{CID}")
    with pytest.raises(CgroupNotFound):
        find_cgroup(999999, root=root, proc=proc)
    (proc / "4242" / "cgroup").write_text(
        "4:memory:/docker/gone\n2:cpuacct:/docker/gone\n1:cpu:/docker/gone\n"
    )
    with pytest.raises(CgroupNotFound):
        find_cgroup(4242, root=root, proc=proc)


def test_sampler_on_a_fake_tree_and_graceful_end(tmp_path: Path) -> None:
    root, proc = fake_v2(tmp_path, "/docker/x")
    paths = find_cgroup(4242, root=root, proc=proc)
    sampler = CgroupSampler(4242, 2, 100, paths=paths).start()
    usage_file = paths.cpu_usage_file
    for k in range(1, 6):
        time.sleep(0.01)
        usage_file.write_text(f"usage_usec {2500 + k * 10_000}\n")
    time.sleep(0.01)
    paths.memory_usage_file.write_text("")  # the cgroup vanished mid-run (reads fail)
    time.sleep(0.02)
    summary = sampler.stop()
    assert sampler.ended
    assert summary.samples >= 2
    assert summary.peak_memory_mb == pytest.approx(150.0)
    assert summary.peak_cpu > 0
    assert summary.cpu_limit == 1.5  # from cpu.max


def test_sampler_stop_right_after_start_has_two_samples(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path, f"/docker/{CID}")
    with CgroupSampler(4242, 10, 100, paths=find_cgroup(4242, root=root, proc=proc)) as sampler:
        pass
    assert len(sampler.samples) >= 2


def test_the_sampler_counts_only_oom_kills_of_its_own_run(tmp_path: Path) -> None:
    root, proc = fake_v2(tmp_path, f"/docker/{CID}")  # the container already had 2 kills
    paths = find_cgroup(4242, root=root, proc=proc)
    quiet = CgroupSampler(4242, 10, 100, paths=paths).start()
    assert quiet.stop().oom_kills == 0
    sampler = CgroupSampler(4242, 10, 100, paths=paths).start()
    _write(paths.memory_dir / "memory.events", "oom 3\noom_kill 3\n")  # a child killed mid-run
    assert sampler.stop().oom_kills == 1
