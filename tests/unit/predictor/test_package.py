"""The package's lazy re-exports."""

from __future__ import annotations

import subprocess
import sys

import pytest

import predictor


def test_every_export_resolves() -> None:
    assert sorted(predictor.__all__) == sorted(predictor._MODULE_OF)
    for name in predictor.__all__:
        assert getattr(predictor, name) is not None
    with pytest.raises(AttributeError):
        predictor.nothing  # noqa: B018


def test_the_pure_modules_do_not_import_sklearn_or_matplotlib() -> None:
    code = (
        "import sys, predictor.allocation, predictor.validator, predictor.dataset,"
        " predictor.work_division, predictor.peak_sizing, predictor.scaling, predictor.sweep;"
        "heavy = [m for m in ('sklearn', 'matplotlib') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
