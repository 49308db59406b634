"""Every evaluation figure writes a readable PNG, for real-looking and for empty data."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import matplotlib.image
import pytest

from monitor.eval_plots import (
    LoadSeries,
    plot_latency_cdfs,
    plot_percentiles,
    plot_speedup_cdfs,
    plot_stage_latency,
    plot_utilisation,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CPU, MEMORY_MB = 8.0, 16_000.0

Plot = Callable[[list[LoadSeries], Path, str], Path]


def _load(load: str, scale: float, seed: int) -> LoadSeries:
    rng = random.Random(seed)
    off = [rng.uniform(2, 6) * scale for _ in range(40)]
    on = [v * rng.uniform(0.4, 1.1) for v in off]
    timeline = [(0.1 * i, rng.uniform(0, CPU), rng.uniform(1000, 8000)) for i in range(1, 60)]
    return LoadSeries(
        load=load,
        latency_s={"off": off, "thesis": on},
        stage_s={"off": [v * 0.7 for v in off], "thesis": [v * 0.6 for v in on]},
        speedups={"thesis": [(a - b) / a for a, b in zip(off, on, strict=True)]},
        utilisation={"off": timeline, "thesis": [(t, c * 1.5, m) for t, c, m in timeline]},
    )


def normal() -> list[LoadSeries]:
    return [_load("low", 1.0, 1), _load("medium", 1.5, 2), _load("high", 3.0, 3)]


def empty_inside() -> list[LoadSeries]:
    """Loads and policies named but nothing finished, next to a load with no policies at all."""
    return [
        LoadSeries("low", {"off": [], "thesis": []}, {"off": [], "thesis": []}, {"thesis": []}, {"off": []}),
        LoadSeries("high", {}, {}, {}, {}),
    ]


def _utilisation(series: list[LoadSeries], out: Path, title: str) -> Path:
    return plot_utilisation(series, CPU, MEMORY_MB, out, title)


PLOTS: dict[str, Plot] = {
    "latency_cdfs": plot_latency_cdfs,
    "speedup_cdfs": plot_speedup_cdfs,
    "stage_latency": plot_stage_latency,
    "utilisation": _utilisation,
    "percentiles": plot_percentiles,
}
DATA: dict[str, Callable[[], list[LoadSeries]]] = {
    "normal": normal,
    "empty_inside": empty_inside,
    "no_loads": list,
}


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image.min() < image.max()  # something drawn, not a blank canvas


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("name", list(PLOTS))
def test_plot_writes_a_readable_png(tmp_path: Path, name: str, data: str) -> None:
    out = tmp_path / "nested" / "img" / f"{name}-{data}.png"  # parent folders do not exist yet
    got = PLOTS[name](DATA[data](), out, f"{name} ({data})")
    assert got == out
    _assert_png(out)


def test_more_loads_make_a_wider_latency_figure(tmp_path: Path) -> None:
    one = matplotlib.image.imread(plot_latency_cdfs(normal()[:1], tmp_path / "one.png", "one"))
    three = matplotlib.image.imread(plot_latency_cdfs(normal(), tmp_path / "three.png", "three"))
    assert three.shape[1] > 2 * one.shape[1]


def test_utilisation_has_a_row_per_load(tmp_path: Path) -> None:
    one = matplotlib.image.imread(_utilisation(normal()[:1], tmp_path / "one.png", "one"))
    three = matplotlib.image.imread(_utilisation(normal(), tmp_path / "three.png", "three"))
    assert three.shape[0] > 2 * one.shape[0]


def test_speedups_with_a_single_value_and_nan(tmp_path: Path) -> None:
    series = [LoadSeries("low", {"off": [1.0]}, {"off": [0.5]}, {"thesis": [float("nan"), -0.2]}, {})]
    _assert_png(plot_speedup_cdfs(series, tmp_path / "s.png", "one speedup"))


def test_overwrites_an_existing_png(tmp_path: Path) -> None:
    out = tmp_path / "p.png"
    out.write_bytes(b"stale")
    plot_percentiles(normal(), out, "again")
    _assert_png(out)
