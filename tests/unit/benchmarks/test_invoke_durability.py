"""The durability comparison's table: both columns and their ratio, side by side."""

from __future__ import annotations

import argparse

from benchmarks.invoke import durability_table


def measures(scale: float) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    warm = {"over_p50": 10 * scale, "over_p99": 20 * scale, "e2e_p50": 12 * scale, "e2e_p99": 25 * scale}
    return warm, {"e2e_p50": 400 * scale}, {"per_s": 50 / scale}


def test_the_table_puts_in_memory_and_durable_side_by_side_with_ratios():
    args = argparse.Namespace(invocations=300, cold=10, throughput_seconds=15.0)
    text = durability_table(measures(1.0), measures(2.0), args)
    assert "| warm overhead p50 (ms) | 10.0 | 20.0 | 2.00 |" in text
    assert "| throughput (invocations/s) | 50.0 | 25.0 | 0.50 |" in text
    assert "300 invokes each" in text
