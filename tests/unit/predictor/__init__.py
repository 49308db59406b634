"""Shared synthetic data for the predictor tests: a skewed parallel stage.

DAG ``aes``: split -> parallel(aes1..aes4) -> merge. Each parallel function gets
a fixed share of the DAG input (50/25/15/10 %); CPU grows with the input and
saturates at the 2-core maximum for the straggler; memory grows with the input.
"""

from __future__ import annotations

import functools

import numpy as np

from composer import analyze, parallel, sequence
from composer.stages import Analysis
from predictor.allocation import AllowedValues
from predictor.compare import Comparison, compare
from predictor.dataset import ProfileRow

OURS = AllowedValues(0.25, 2.0, 0.25, 128.0, 8192.0, 128.0)
DAG = "aes"
SHARES = (0.50, 0.25, 0.15, 0.10)
AES = sequence("split", parallel("aes1", "aes2", "aes3", "aes4"), "merge")


def analysis() -> Analysis:
    return analyze(AES)


def true_cpu(input_size: float) -> float:
    return min(2.0, 0.2 + input_size / 1.25e7)


def true_memory(input_size: float) -> float:
    return 60.0 + input_size / 2**20 * 8


def synthetic_rows(
    n_requests: int = 150, seed: int = 0, noise: float = 0.01, dag: str = DAG
) -> list[ProfileRow]:
    rng = np.random.default_rng(seed)
    rows: list[ProfileRow] = []

    def row(request: int, dag_input: int, stage: int, index: int, action: str, size: int) -> ProfileRow:
        jitter = 1 + rng.normal(0, noise)
        return ProfileRow(
            request_id=f"req{request:04d}",
            dag=dag,
            dag_input_size=dag_input,
            stage=stage,
            index=index,
            action=action,
            parallel=stage == 1,
            input_size=size,
            peak_cpu=min(2.0, true_cpu(size) * jitter),
            peak_memory_mb=true_memory(size) * jitter,
            alloc_cpu=2.0,  # profiled at the maximum allocation
            alloc_memory_mb=8192.0,
            duration_ms=int(size / 1e4),
            success=True,
        )

    for r in range(n_requests):
        dag_input = int(rng.uniform(1e6, 5e7))
        rows.append(row(r, dag_input, 0, 0, "split", dag_input))
        for i, share in enumerate(SHARES):
            size = int(dag_input * share * (1 + rng.normal(0, noise)))
            rows.append(row(r, dag_input, 1, i, f"aes{i + 1}", size))
        rows.append(row(r, dag_input, 2, 0, "merge", dag_input))
    return rows


@functools.cache
def synthetic_comparison() -> Comparison:
    """One comparison shared by the tests (training takes seconds). The latency
    budget is infinite so the choice does not depend on machine load; the
    latency rule has its own tests."""
    return compare(synthetic_rows(), OURS, seed=0, latency_budget_ms=float("inf"), latency_calls=50)
