"""``gleaner bench prewarm``'s summary and table (pure parts)."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.prewarm import figure, summary, table


def test_the_table_puts_both_modes_side_by_side_with_their_ratio() -> None:
    off = summary([{"e2e": 3000.0, "cold": 3.0, "init": 1500.0, "first_init": 500.0, "functions": 3.0}] * 2)
    on = summary([{"e2e": 1500.0, "cold": 1.0, "init": 800.0, "first_init": 800.0, "functions": 3.0}] * 2)
    assert (off["cold_mean"], on["cold_max"], off["n"]) == (3.0, 1.0, 2)
    args = argparse.Namespace(work=0.5, keepalive=2.0, passes=1, rounds=2)
    text = table(off, on, args)
    assert "| cold starts per request, mean | 3.00 | 1.00 | 0.33 |" in text
    assert "| end-to-end latency p50 (ms) | 3000 | 1500 | 0.50 |" in text
    assert "| first stage's initTime, p50 (ms) | 500 | 800 | 1.60 |" in text


def test_the_figure_is_a_png(tmp_path: Path) -> None:
    row = {"e2e": 2000.0, "cold": 1.0, "init": 700.0, "first_init": 700.0, "functions": 3.0}
    path = figure({"off": [row], "on": [row]}, tmp_path / "img" / "prewarm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
