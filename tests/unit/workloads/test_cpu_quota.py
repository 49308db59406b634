"""The functions' worker count from the container's cgroup CPU quota."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SOURCE = Path(__file__).resolve().parents[3] / "workloads" / "_shared" / "cpu_quota.py"


@pytest.fixture(scope="module")
def cq() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cpu_quota", SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _v1(root: Path, quota: int, period: int = 100_000, controller: str = "cpu") -> None:
    d = root / controller
    d.mkdir(parents=True)
    (d / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (d / "cpu.cfs_period_us").write_text(f"{period}\n")


@pytest.mark.parametrize(
    ("quota", "workers"), [(50_000, 1), (100_000, 1), (150_000, 2), (200_000, 2), (25_000, 1)]
)
def test_v1_quota_rounds_up(
    cq: ModuleType, tmp_path: Path, quota: int, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cq, "usable_cpus", lambda: 8)
    _v1(tmp_path, quota)
    assert cq.cpu_quota(str(tmp_path)) == pytest.approx(quota / 100_000)
    assert cq.worker_count(str(tmp_path)) == workers


def test_v1_combined_controller_dir(cq: ModuleType, tmp_path: Path) -> None:
    _v1(tmp_path, 300_000, controller="cpu,cpuacct")
    assert cq.cpu_quota(str(tmp_path)) == pytest.approx(3.0)


def test_v2_cpu_max(cq: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cq, "usable_cpus", lambda: 8)
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    assert cq.cpu_quota(str(tmp_path)) == pytest.approx(2.5)
    assert cq.worker_count(str(tmp_path)) == 3
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cq.cpu_quota(str(tmp_path)) is None
    assert cq.worker_count(str(tmp_path)) == 8


def test_no_quota_means_every_usable_cpu(
    cq: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _v1(tmp_path, -1)
    assert cq.cpu_quota(str(tmp_path)) is None
    assert cq.cpu_quota(str(tmp_path / "missing")) is None
    monkeypatch.setattr(cq, "usable_cpus", lambda: 3)
    assert cq.worker_count(str(tmp_path)) == 3


def test_never_more_workers_than_cpus(
    cq: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cq, "usable_cpus", lambda: 2)
    _v1(tmp_path, 800_000)
    assert cq.worker_count(str(tmp_path)) == 2
