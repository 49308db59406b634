"""Seeded tabular datasets, the MLPipeline DAG's inputs.

``sklearn.datasets.make_classification`` (binary, 20 features, 8 informative), sent as
CSV text with a header. Like real exports, about 1% of the cells are empty and a few
rows are duplicated, which the preprocess stage cleans. Row counts are log-uniform
between 1,000 and 30,000 (~0.2 to ~5.5 MB of JSON).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from workloads.inputs import write_inputs

FEATURES = 20
MIN_ROWS = 1_000
MAX_ROWS = 30_000


def make_csv(rng: np.random.Generator, rows: int) -> str:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows,
        n_features=FEATURES,
        n_informative=8,
        n_redundant=4,
        n_clusters_per_class=3,
        class_sep=0.9,
        flip_y=0.03,
        random_state=int(rng.integers(2**31)),
    )
    x = x * rng.uniform(0.5, 20.0, FEATURES) + rng.uniform(-50.0, 50.0, FEATURES)  # unscaled, as exported
    dupes = rng.choice(rows, size=max(1, rows // 200), replace=False)
    x = np.vstack([x, x[dupes]])
    y = np.concatenate([y, y[dupes]])
    cells = np.char.mod("%.5g", x).astype(object)
    cells[rng.random(cells.shape) < 0.01] = ""  # missing values
    out = io.StringIO()
    out.write(",".join([*(f"f{i}" for i in range(FEATURES)), "label"]) + "\n")
    for row, label in zip(cells, y, strict=True):
        out.write(",".join(row) + f",{int(label)}\n")
    return out.getvalue()


def table_input(rng: np.random.Generator, rows: int) -> dict[str, Any]:
    return {"csv": make_csv(rng, rows), "label": "label"}


def _rows(rng: np.random.Generator) -> int:
    return int(np.exp(rng.uniform(np.log(MIN_ROWS), np.log(MAX_ROWS))))


def plan(n: int, seed: int) -> list[int]:
    """The row count of each input :func:`generate_inputs` writes."""
    return [_rows(np.random.default_rng([seed, i])) for i in range(n)]


def generate_inputs(n: int, seed: int, out_dir: Path) -> list[Path]:
    """``n`` datasets of 1,000 to 30,000 rows (log-uniform)."""

    def one(i: int) -> dict[str, Any]:
        rng = np.random.default_rng([seed, i])
        return table_input(rng, _rows(rng))

    return write_inputs(out_dir, n, one, desc="dataset inputs")


def small_input() -> dict[str, Any]:
    """1,000 rows: the whole DAG runs in a few seconds at the user allocations."""
    return table_input(np.random.default_rng(7), 1_000)
