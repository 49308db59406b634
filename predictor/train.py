"""Train one DAG's models from a profiling dataset: read -> compare -> fit each
parallel function's scaling curve -> save the best with the curves -> write the report."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from gleaner.settings import Settings
from predictor.allocation import AllowedValues
from predictor.compare import LATENCY_BUDGET_MS, Comparison, TrainingError, compare
from predictor.dataset import read_csv
from predictor.models import TrainedModels
from predictor.report import ReportFiles, write_report
from predictor.scaling import ScalingFits, fit_curves
from predictor.store import save_models

# The settings a model version depends on, kept in its meta.json.
SNAPSHOT_FIELDS = ("cpu_min", "cpu_max", "cpu_step", "memory_min_mb", "memory_max_mb", "memory_step_mb")


@dataclass(frozen=True, slots=True)
class TrainResult:
    version_dir: Path
    trained: TrainedModels
    comparison: Comparison
    report: ReportFiles
    scaling: ScalingFits


def train_dag(
    dataset_csv: Path,
    models_root: Path,
    namespace: str,
    dag: str,
    settings: Settings,
    report_dir: Path,
    *,
    progress: bool = True,
    seed: int = 0,
    latency_budget_ms: float = LATENCY_BUDGET_MS,
) -> TrainResult:
    """Train, save as the DAG's next current version, and report. Rows of other
    DAGs in the dataset are ignored. Raises TrainingError (a GleanerError) when
    the DAG has too few rows or no parallel-stage rows."""
    rows = [r for r in read_csv(dataset_csv) if r.dag == dag]
    if not rows:
        raise TrainingError(f"{dataset_csv} has no rows of DAG {dag!r}")
    allowed = AllowedValues.from_settings(settings)
    comparison = compare(rows, allowed, seed, latency_budget_ms=latency_budget_ms, progress=progress)
    scaling = fit_curves(rows, allowed.cpu)  # every row: the sweep's lower allocations too
    trained = replace(
        comparison.to_trained(namespace), scaling=scaling.curves, scaling_reasons=scaling.reasons
    )
    snapshot = {name: getattr(settings, name) for name in SNAPSHOT_FIELDS}
    version_dir = save_models(models_root, namespace, dag, trained, dataset_csv, snapshot)
    report = write_report(comparison, report_dir, version_dir=version_dir, scaling=scaling)
    return TrainResult(version_dir, trained, comparison, report, scaling)
