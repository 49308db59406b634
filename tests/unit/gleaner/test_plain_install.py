"""A plain install (no extras) runs ``gleaner eval``/``replay``/``profile``/``train``/``dag``
on a user's own DAG: checked in a subprocess where every module that only the extras
install is blocked (tests/plain_install.py; the fresh-venv check is
tests/integration/test_plain_install.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.plain_install import COMMANDS, extras_only_modules

ROOT = Path(__file__).resolve().parents[3]
INPUTS = ["input-000.json", "input-001.json", "input-002.json"]


def test_the_extras_only_modules_include_the_workload_and_dev_libraries() -> None:
    extras = extras_only_modules(ROOT / "pyproject.toml")
    assert {"cv2", "lightgbm", "pyaes", "pytest", "hypothesis", "mypy"} <= extras
    # Base dependencies (and theirs: joblib comes with scikit-learn) stay importable.
    assert not {"numpy", "sklearn", "joblib", "matplotlib", "confluent_kafka", "tqdm"} & extras


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    extras = sorted(extras_only_modules(ROOT / "pyproject.toml"))
    state = tmp_path_factory.mktemp("plain")
    out = subprocess.run(
        [sys.executable, "-m", "tests.plain_install", "--state-dir", str(state), "--block", ",".join(extras)],
        cwd=ROOT,  # this checkout's code, first on sys.path
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_the_commands_import_without_the_extras(report: dict[str, Any]) -> None:
    assert report["importable_extras"] == []
    assert {"gleaner.cli.main", "benchmarks.evaluation.run", "streams.replay.runner"} <= set(
        report["imported"]
    )
    assert {"predictor.profiler", "predictor.train", "gleaner.cli.dag"} <= set(report["imported"])
    assert report["help_exit"] == dict.fromkeys(COMMANDS, 0)
    assert report["eval_help_has_input_dir"] is True
    assert report["extras_imported"] == []


def test_an_own_dag_reads_its_input_folder_and_loads_no_workload(report: dict[str, Any]) -> None:
    assert report["eval_inputs"] == INPUTS and report["eval_builtin"] is False
    assert report["profile_inputs"] == INPUTS
    assert report["workloads_before_naming"] == []
    assert report["catalog_names"] == ["video-analytics", "parallel-aes", "ml-pipeline"]
    assert report["catalog_loaded_by_names"] == []


def test_naming_a_built_in_workload_loads_it_then(report: dict[str, Any]) -> None:
    aes = report["named_aes"]
    assert aes["functions"] == 5
    assert aes["modules"] == ["workloads.parallel_aes.inputs", "workloads.parallel_aes.workload"]
    video = report["named_video"]
    assert video["functions"] == 4 and "workloads.video_analytics.workload" in video["modules"]
    assert "workloads.video_analytics.inputs" not in video["modules"]  # OpenCV only for its inputs
    error = report["video_inputs_error"]
    assert error.startswith("GleanerError:") and "cv2" in error and ".[workloads]" in error
