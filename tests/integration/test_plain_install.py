"""A fresh venv with a plain ``pip install -e .`` (no ``workloads`` or ``dev`` extra) runs
``gleaner eval --help`` and the eval/replay/profile/train/dag code on a user's own DAG
and input folder (issue 23, item 2). No service is needed: it runs in ``make test``
with the other integration tests, in about two minutes (mostly pip)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.plain_install import COMMANDS, extras_only_modules

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
INPUTS = ["input-000.json", "input-001.json", "input-002.json"]


def venv_commands(venv: Path, root: Path) -> list[list[str]]:
    """Make the venv, then install the project without extras. pip reads the machine's own
    configuration (/etc/pip.conf: its local mirror and wheels), as a user's install would;
    no .pyc compiling, which only costs time here."""
    python = str(venv / "bin" / "python")
    return [
        [sys.executable, "-m", "venv", str(venv)],
        [python, "-m", "pip", "install", "-q", "--no-compile", "-e", str(root)],
    ]


def run(argv: list[str], timeout_s: float, **kw: Any) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, **kw)
    assert out.returncode == 0, f"{argv[:4]}: {out.stderr[-3000:]}"
    return out


@pytest.mark.timeout(480)
def test_a_plain_install_runs_the_eval_path_on_an_own_dag(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    make, install = venv_commands(venv, ROOT)
    run(make, 60)
    run(install, 400)

    help_text = run([str(venv / "bin" / "gleaner"), "eval", "--help"], 60, cwd=tmp_path).stdout
    assert "--input-dir" in help_text and "--placement" in help_text

    extras = sorted(extras_only_modules(ROOT / "pyproject.toml"))  # from this (dev) venv
    probe = [str(venv / "bin" / "python"), "-m", "tests.plain_install"]
    probe += ["--state-dir", str(tmp_path / "state"), "--extras", ",".join(extras)]
    report = json.loads(run(probe, 120, cwd=ROOT).stdout)

    assert report["importable_extras"] == []  # really a plain install: no OpenCV, pytest...
    imported = set(report["imported"])
    assert {"gleaner.cli.main", "benchmarks.evaluation.run", "streams.replay.runner"} <= imported
    assert report["help_exit"] == dict.fromkeys(COMMANDS, 0)
    assert report["eval_inputs"] == INPUTS and report["eval_builtin"] is False
    assert report["profile_inputs"] == INPUTS
    assert report["workloads_before_naming"] == [] and report["catalog_loaded_by_names"] == []
    assert report["named_aes"]["functions"] == 5 and report["named_video"]["functions"] == 4
    assert "cv2" in report["video_inputs_error"] and ".[workloads]" in report["video_inputs_error"]
    assert report["extras_imported"] == []
