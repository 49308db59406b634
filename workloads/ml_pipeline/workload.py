"""MLPipeline (thesis Table 3.1): model training, 6 functions, depth 3, width 4.

Its DAG: ``preprocess -> parallel(train1, train2, train3, train4) -> evaluate``.
"""

from __future__ import annotations

from pathlib import Path

from composer.dsl import parallel, sequence
from workloads.catalog import Workload, function_spec
from workloads.ml_pipeline import inputs

HERE = Path(__file__).resolve().parent

_TREES = (
    # (trees, max_depth, leaves, feature_fraction, learning_rate, max_bin, min_data_in_leaf)
    (25, 3, 7, 0.5, 0.3, 63, 20),
    (50, 5, 24, 0.6, 0.2, 127, 20),
    (100, 8, 63, 0.8, 0.1, 255, 20),
    (300, -1, 127, 1.0, 0.05, 255, 10),
)

ML_PIPELINE = Workload(
    name="ml-pipeline",
    dag=sequence("preprocess", parallel("train1", "train2", "train3", "train4"), "evaluate"),
    functions=(
        function_spec(HERE, "preprocess", "preprocess", 1.0, 512, 60_000),
        # Four LightGBM configurations from 25 shallow trees to 300 deep ones (each
        # function searches 4 candidates around its own); the smallest model gets the
        # most CPU and finishes early, the 300-tree one gets a quarter core.
        *(
            function_spec(
                HERE,
                "train",
                f"train{i}",
                cpu,
                384,
                trees=trees,
                max_depth=depth,
                num_leaves=leaves,
                feature_fraction=ff,
                learning_rate=lr,
                max_bin=bins,
                min_data_in_leaf=min_leaf,
            )
            for i, (cpu, (trees, depth, leaves, ff, lr, bins, min_leaf)) in enumerate(
                zip((0.75, 0.5, 0.5, 0.25), _TREES, strict=True), start=1
            )
        ),
        function_spec(HERE, "evaluate", "evaluate", 0.25, 128, 60_000),
    ),
    description=(
        "Model training: a tabular dataset is cleaned, standardised and split, four "
        "LightGBM trainings with very different hyper-parameters (25 to 300 trees, each a "
        "4-candidate search) run in parallel, and the best model is picked."
    ),
    generate_inputs=inputs.generate_inputs,
    small_input=inputs.small_input,
)
