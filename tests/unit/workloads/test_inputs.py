"""Input generators: reproducible, sizes that vary by at least 10x, within 8 MB."""

from __future__ import annotations

from pathlib import Path

import pytest

from workloads.catalog import WORKLOADS
from workloads.inputs import encode

pytest.importorskip("cv2")

LIMIT = 8 * 2**20


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_same_seed_same_bytes(name: str, tmp_path: Path) -> None:
    w = WORKLOADS[name]
    a = w.generate_inputs(2, 11, tmp_path / "a")
    b = w.generate_inputs(2, 11, tmp_path / "b")
    c = w.generate_inputs(2, 12, tmp_path / "c")
    assert [p.name for p in a] == ["input-000.json", "input-001.json"]
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert a[0].read_bytes() != c[0].read_bytes()
    assert encode(w.small_input()) == encode(w.small_input())


def test_video_sizes_span_10x(tmp_path: Path) -> None:
    from workloads.video_analytics import inputs

    plan = inputs.plan(100, 0)
    cost = [f * w * h for f, w, h in plan]
    assert max(cost) / min(cost) >= 10
    lo, hi = min(plan, key=lambda p: p[0] * p[1] * p[2]), max(plan, key=lambda p: p[0] * p[1] * p[2])
    import numpy as np

    small = len(encode(inputs.video_input(np.random.default_rng(0), *lo)))
    large = len(encode(inputs.video_input(np.random.default_rng(0), *hi)))
    assert large / small >= 10
    assert small >= 20_000 and large <= LIMIT


def test_text_and_table_sizes_span_10x() -> None:
    import numpy as np

    from workloads.ml_pipeline import inputs as ml
    from workloads.parallel_aes import inputs as aes

    sizes = aes.plan(100, 0)
    assert max(sizes) / min(sizes) >= 10
    assert len(aes.make_text(np.random.default_rng(0), 12_345).encode()) == 12_345
    rows = ml.plan(100, 0)
    assert max(rows) / min(rows) >= 10
    small = len(encode(ml.table_input(np.random.default_rng(0), min(rows))))
    large = len(encode(ml.table_input(np.random.default_rng(0), max(rows))))
    assert large / small >= 10 and large <= LIMIT
    assert len(encode(aes.text_input(np.random.default_rng(0), max(sizes)))) <= LIMIT
