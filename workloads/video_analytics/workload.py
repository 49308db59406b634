"""VideoAnalytics (thesis Table 3.1): image recognition, 4 functions, depth 3, width 2.

Its DAG: ``streaming -> decoder -> parallel(recognition1, recognition2)``.

Its input generator writes videos with OpenCV (the ``workloads`` extra), so it is imported
only when inputs are made: the workload itself (its DAG, functions and allocations) loads
without OpenCV, e.g. to deploy it or to list the catalog.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from composer.dsl import parallel, sequence
from workloads.catalog import Workload, function_spec, import_extra

HERE = Path(__file__).resolve().parent
INPUTS = "workloads.video_analytics.inputs"


def generate_inputs(n: int, seed: int, out_dir: Path) -> list[Path]:
    """:func:`workloads.video_analytics.inputs.generate_inputs`, imported now."""
    paths: list[Path] = import_extra(INPUTS).generate_inputs(n, seed, out_dir)
    return paths


def small_input() -> dict[str, Any]:
    """:func:`workloads.video_analytics.inputs.small_input`, imported now."""
    payload: dict[str, Any] = import_extra(INPUTS).small_input()
    return payload


VIDEO_ANALYTICS = Workload(
    name="video-analytics",
    dag=sequence("streaming", "decoder", parallel("recognition1", "recognition2")),
    functions=(
        function_spec(HERE, "streaming", "streaming", 0.5, 256, 60_000),
        function_spec(HERE, "decoder", "decoder", 1.0, 512, 60_000),
        # Same code; recognition1 gets 1 frame in 4 and recognition2 the other 3, yet
        # the light one is given the larger share (thesis 2.6: mis-provisioned).
        function_spec(HERE, "recognition", "recognition1", 1.25, 768, offset=0, take=1, period=4),
        function_spec(HERE, "recognition", "recognition2", 0.75, 768, offset=1, take=3, period=4),
    ),
    description=(
        "Image recognition: a synthetic MJPEG video of handwritten digits is streamed, "
        "decoded into frames, and two recognition functions classify the digits of 25% "
        "and 75% of the frames (denoise, segment, SVM trained on scikit-learn's digits)."
    ),
    generate_inputs=generate_inputs,
    small_input=small_input,
)
