"""The inference pipeline (thesis §3.5.2, Fig. 3.5): DAG input size -> ML1 ->
each function's input size -> ML2 -> each function's CPU and memory demand
(and, with a work model, its duration at the maximum allocation; with a scaling
curve, how that duration changes with the cores: the curve rides on the prediction).

One batched predict call per model for all requested functions: four calls per
request (three without a duration model) however wide its stages are, and
:meth:`Predictor.predict_many` makes those four calls for a whole batch of
requests of one DAG (the predictor stream plans a batch at a time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from predictor.models import TrainedModels, compile_predict
from predictor.scaling import ScalingCurve


@dataclass(frozen=True, slots=True)
class Prediction:
    input_size: float  # bytes, ML1 (never negative)
    cpu: float  # cores, ML2-CPU, raw (not normalized)
    memory_mb: float  # MB, ML2-memory, raw (not normalized)
    duration_ms: float | None = None  # ML2-duration at the maximum allocation, raw; None without the model
    scaling: ScalingCurve | None = None  # the function's fitted curve; None: linear (predictor.scaling)


class Predictor:
    """Request-time predictions from one DAG's trained models."""

    def __init__(self, trained: TrainedModels) -> None:
        self.trained = trained
        self._ml1 = compile_predict(trained.models["input_size"])
        self._cpu = compile_predict(trained.models["cpu"])
        self._mem = compile_predict(trained.models["memory"])
        # Versions saved before the work model have none: they predict no duration.
        duration = trained.models.get("duration")
        self._dur = compile_predict(duration) if duration is not None else None
        self._curves = dict(trained.scaling)

    @property
    def has_work_model(self) -> bool:
        return self._dur is not None

    def predict(self, dag_input_size: int | float, slots: Sequence[tuple[int, int]]) -> list[Prediction]:
        """Predictions for the functions at ``slots`` ((stage, index) pairs), in order."""
        return self.predict_many([(dag_input_size, slots)])[0]

    def predict_many(
        self, requests: Sequence[tuple[int | float, Sequence[tuple[int, int]]]]
    ) -> list[list[Prediction]]:
        """:meth:`predict` for each (DAG input size, slots) request, in order, with one
        predict call per model for all of them: the models are row-wise, so a row's
        numbers do not depend on the rows batched with it."""
        widths = [len(slots) for _, slots in requests]
        rows = sum(widths)
        if rows == 0:
            return [[] for _ in requests]
        identity = np.asarray([slot for _, slots in requests for slot in slots], dtype=np.float64).reshape(
            rows, 2
        )
        x1 = np.empty((rows, 3))
        x1[:, 0] = np.repeat(np.asarray([size for size, _ in requests], dtype=np.float64), widths)
        x1[:, 1:] = identity
        sizes = self._ml1(x1)
        sizes = np.where(sizes < 0, 0.0, sizes)  # a negative size is meaningless
        # A non-finite size cannot feed ML2 (sklearn rejects it); its demands become
        # NaN, which the planner rejects with a reason.
        bad = ~np.isfinite(sizes)
        x2 = np.empty((rows, 3))
        x2[:, 0] = np.where(bad, 0.0, sizes)
        x2[:, 1:] = identity
        cpu = np.where(bad, np.nan, self._cpu(x2)).tolist()
        mem = np.where(bad, np.nan, self._mem(x2)).tolist()
        dur = np.where(bad, np.nan, self._dur(x2)).tolist() if self._dur is not None else None
        curves = self._curves
        slots = [slot for _, request_slots in requests for slot in request_slots] if curves else None
        flat = [
            Prediction(
                s,
                c,
                m,
                None if dur is None else dur[i],
                None if slots is None else curves.get((int(slots[i][0]), int(slots[i][1]))),
            )
            for i, (s, c, m) in enumerate(zip(sizes.tolist(), cpu, mem, strict=True))
        ]
        out: list[list[Prediction]] = []
        start = 0
        for width in widths:
            out.append(flat[start : start + width])
            start += width
        return out
