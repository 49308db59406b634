"""predictor: resource prediction for parallel stages (thesis §3.5).

Offline: profiling records -> :mod:`predictor.dataset` rows (CSV) -> the six
candidates of §4.3 compared per target (:mod:`predictor.compare`) -> the best
model per target saved as a version (:mod:`predictor.store`) with a report
(:mod:`predictor.report`); :func:`train_dag` runs it all.

At request time: :class:`Predictor` (ML1: DAG input size -> each function's input
size; ML2: input size -> CPU and memory peaks and the duration at the maximum
allocation) -> a policy sizes each parallel stage -> :func:`plan_request` returns
the allocations of every parallel stage. Policies: ``thesis`` (the normalizer
rounds up to an allowed value, the harvesting validator fits the stage's budget),
``libra`` (every function at its own peak, :func:`size_to_peak`) and ``gleaner``
(CPU divided by predicted work, :func:`divide_work`, each function's time at c
cores from its :class:`ScalingCurve` when the profile's CPU sweep fitted one).

    trained = load_current(root, "guest", "video")
    plan = plan_request(Predictor(trained), analyze(dag), input_size, user, allowed, policy="gleaner")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from predictor.allocation import (
        THESIS_TABLE_3_2,
        AllowedValues,
        Grid,
        NormalizedDemand,
        allowed_at_least,
        is_accurate,
        normalize,
        normalize_flagged,
    )
    from predictor.compare import Comparison, ModelScore, TargetResult, TrainingError
    from predictor.dataset import (
        DatasetError,
        ProfileRow,
        Skipped,
        collect_rows,
        read_csv,
        rows_from_records,
        write_csv,
    )
    from predictor.inference import Prediction, Predictor
    from predictor.models import MODEL_NAMES, TARGETS, TrainedModels
    from predictor.peak_sizing import PeakSize, size_to_peak
    from predictor.plan import PLANNING_POLICIES, Plan, StagePlan, plan_request
    from predictor.report import ReportFiles, write_report
    from predictor.scaling import ScalingCurve, fit_curve, fit_curves
    from predictor.store import ModelLoadError, load_current, save_models
    from predictor.train import TrainResult, train_dag
    from predictor.validator import Demand, StageDecision, validate_stage
    from predictor.work_division import WorkDivision, divide_work, predicted_makespan

# Re-exports resolve lazily: importing predictor.allocation (the request path)
# must not pull in matplotlib, and the pure modules should not pull in sklearn.
# The function ``compare`` is not re-exported: the submodule of the same name
# would shadow it; use ``predictor.compare.compare``.
_EXPORTS = {
    "allocation": (
        "THESIS_TABLE_3_2",
        "AllowedValues",
        "Grid",
        "NormalizedDemand",
        "allowed_at_least",
        "is_accurate",
        "normalize",
        "normalize_flagged",
    ),
    "compare": ("Comparison", "ModelScore", "TargetResult", "TrainingError"),
    "dataset": (
        "DatasetError",
        "ProfileRow",
        "Skipped",
        "collect_rows",
        "read_csv",
        "rows_from_records",
        "write_csv",
    ),
    "inference": ("Prediction", "Predictor"),
    "models": ("MODEL_NAMES", "TARGETS", "TrainedModels"),
    "peak_sizing": ("PeakSize", "size_to_peak"),
    "plan": ("PLANNING_POLICIES", "Plan", "StagePlan", "plan_request"),
    "report": ("ReportFiles", "write_report"),
    "scaling": ("ScalingCurve", "fit_curve", "fit_curves"),
    "store": ("ModelLoadError", "load_current", "save_models"),
    "train": ("TrainResult", "train_dag"),
    "validator": ("Demand", "StageDecision", "validate_stage"),
    "work_division": ("WorkDivision", "divide_work", "predicted_makespan"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [
    "MODEL_NAMES",
    "PLANNING_POLICIES",
    "TARGETS",
    "THESIS_TABLE_3_2",
    "AllowedValues",
    "Comparison",
    "DatasetError",
    "Demand",
    "Grid",
    "ModelLoadError",
    "ModelScore",
    "NormalizedDemand",
    "PeakSize",
    "Plan",
    "Prediction",
    "Predictor",
    "ProfileRow",
    "ReportFiles",
    "ScalingCurve",
    "Skipped",
    "StageDecision",
    "StagePlan",
    "TargetResult",
    "TrainResult",
    "TrainedModels",
    "TrainingError",
    "WorkDivision",
    "allowed_at_least",
    "collect_rows",
    "divide_work",
    "fit_curve",
    "fit_curves",
    "is_accurate",
    "load_current",
    "normalize",
    "normalize_flagged",
    "plan_request",
    "predicted_makespan",
    "read_csv",
    "rows_from_records",
    "save_models",
    "size_to_peak",
    "train_dag",
    "validate_stage",
    "write_csv",
    "write_report",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'predictor' has no attribute {name!r}")
    return getattr(importlib.import_module(f"predictor.{module}"), name)
