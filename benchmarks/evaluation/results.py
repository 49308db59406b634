"""What one evaluation of a DAG measured: each load's runs, one per policy. The report
(:mod:`benchmarks.evaluation.report`) and the verdicts read it; neither is read by it."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.evaluation.calibrate import Calibration
from monitor.utilisation import UtilisationSummary
from streams.replay.arrivals import LoadRow
from streams.replay.runner import ReplayRun


@dataclass(frozen=True, slots=True)
class PolicyRun:
    policy: str
    run: ReplayRun
    utilisation: UtilisationSummary


@dataclass(frozen=True, slots=True)
class LoadResult:
    row: LoadRow
    runs: list[PolicyRun]

    @property
    def load(self) -> str:
        return self.row.load


@dataclass(slots=True)
class DagEvaluation:
    dag: str
    namespace: str
    policies: list[str]
    requests: int
    distinct_inputs: int
    seed: int
    cpu_seconds: float
    calibration: Calibration | None
    capacity_cores: float
    memory_capacity_mb: int
    model_note: str
    deadline_s: float
    loads: list[LoadResult]
    started_wall: float
    seconds: float
    notes: list[str] = field(default_factory=list)
