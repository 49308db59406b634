"""The training entry: dataset CSV -> compare -> save -> report, then load -> plan."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from matplotlib.image import imread

from gleaner.errors import GleanerError
from gleaner.settings import load_settings
from predictor.dataset import write_csv
from predictor.inference import Predictor
from predictor.models import MODEL_NAMES
from predictor.plan import plan_request
from predictor.report import write_report
from predictor.scaling import ScalingCurve
from predictor.store import load_current
from predictor.train import train_dag
from tests.unit.predictor import DAG, OURS, analysis, synthetic_comparison, synthetic_rows

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_train_save_load_plan(tmp_path: Path) -> None:
    csv = tmp_path / "profile.csv"
    write_csv(synthetic_rows(60) + synthetic_rows(5, dag="other"), csv)  # other DAGs are ignored
    settings = load_settings(env={}, cpu_max=2.0)
    result = train_dag(csv, tmp_path / "models", "guest", DAG, settings, tmp_path / "report", progress=False)

    assert result.version_dir == tmp_path / "models" / "guest" / DAG / "v1"
    assert result.comparison.n_train + result.comparison.n_test == 60 * 4
    assert result.report.markdown == tmp_path / "report" / f"{DAG}-models.md"
    loaded = load_current(tmp_path / "models", "guest", DAG)
    assert loaded is not None and loaded.model_names == result.trained.model_names

    assert set(loaded.models) == {"input_size", "cpu", "memory", "duration"}

    user = {(1, i): (0.5, 512.0) for i in range(4)}
    for policy in ("thesis", "gleaner"):
        plan = plan_request(Predictor(loaded), analysis(), 25_000_000, user, OURS, policy=policy)
        assert sorted(plan.allocations) == sorted(user)
        assert sum(a.cpu for a in plan.allocations.values()) <= 2.0 + 1e-9
    assert plan.stages[0].decision.cpu_mode == "divided"  # the saved duration model feeds the division


def test_report_has_tables_and_valid_plots(tmp_path: Path) -> None:
    comparison = synthetic_comparison()
    files = write_report(comparison, tmp_path, version_dir=Path("models/guest/aes/v3"))
    text = files.markdown.read_text()
    for name in MODEL_NAMES:
        assert f"| {name} |" in text or f"| **{name}** |" in text
    for res in comparison.results.values():
        assert f"| {res.target.title} | {res.chosen} |" in text and res.why in text
    assert "Function identity (stage, index)" in text and "XGBoost" in text and "models/guest/aes/v3" in text
    assert "| ML2 duration |" in text and "mean relative error" in text
    names = sorted(p.name for p in files.plots)
    assert names == sorted(
        [
            f"{DAG}-errors-input_size.png",
            f"{DAG}-errors-cpu.png",
            f"{DAG}-errors-memory.png",
            f"{DAG}-errors-duration.png",
            f"{DAG}-accuracy.png",
        ]
    )
    for plot in files.plots:
        assert plot.read_bytes()[:8] == PNG_SIGNATURE
        image = imread(plot)
        assert image.shape[0] > 100 and image.shape[1] > 100
        assert f"]({plot.name})" in text  # embedded in the Markdown


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (synthetic_rows(1), "at least 10 are needed"),
        ([replace(r, parallel=False) for r in synthetic_rows(10)], "no successful rows of a parallel stage"),
        (synthetic_rows(10, dag="other"), "has no rows of DAG 'aes'"),
    ],
)
def test_unusable_datasets_fail_clearly(tmp_path: Path, rows: list, match: str) -> None:  # type: ignore[type-arg]
    csv = tmp_path / "profile.csv"
    write_csv(rows, csv)
    settings = load_settings(env={}, cpu_max=2.0)
    with pytest.raises(GleanerError, match=match):
        train_dag(csv, tmp_path / "models", "guest", DAG, settings, tmp_path / "report", progress=False)
    assert not (tmp_path / "models").exists()  # nothing half-saved


def test_a_cpu_sweep_trains_scaling_curves_and_leaves_the_models_alone(tmp_path: Path) -> None:
    # The sweep: the first 5 requests' parallel functions again at 1 and at 0.5 core,
    # each using every core it gets and speeding up as Amdahl's law with s = 0.3.
    rows = synthetic_rows(30)
    swept = {f"req{i:04d}" for i in range(5)}
    rows = [
        replace(r, peak_cpu=2.0, duration_ms=max(r.duration_ms, 500))
        if r.request_id in swept and r.parallel
        else r
        for r in rows
    ]
    curve = ScalingCurve(0.3)
    lower = [
        replace(r, alloc_cpu=c, peak_cpu=c, duration_ms=round(r.duration_ms * curve.speedup(c, 2.0)))
        for c in (1.0, 0.5)
        for r in rows
        if r.request_id in swept and r.parallel
    ]
    csv = tmp_path / "profile.csv"
    write_csv(rows + lower, csv)
    settings = load_settings(env={}, cpu_max=2.0)
    result = train_dag(csv, tmp_path / "models", "guest", DAG, settings, tmp_path / "report", progress=False)
    assert result.comparison.n_train + result.comparison.n_test == 30 * 4  # the sweep's rows do not train
    loaded = load_current(tmp_path / "models", "guest", DAG)
    assert loaded is not None and set(loaded.scaling) == {(1, i) for i in range(4)}
    for s in loaded.scaling.values():
        assert s.serial_fraction == pytest.approx(0.3, abs=0.01) and s.allocations == (0.5, 1.0, 2.0)
    assert loaded.scaling_reasons == result.scaling.reasons
    predictions = Predictor(loaded).predict(25_000_000, [(1, i) for i in range(4)])
    assert all(p.scaling is not None for p in predictions)
    report = result.report.markdown.read_text()
    assert "## Scaling curves" in report and "| 1.0 | 0.300 |" in report
