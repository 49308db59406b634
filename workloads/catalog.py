"""The three skew-aware workloads of the thesis (Table 3.1, Appendix A).

===============  =================  =========  =====  =====
name             type               functions  depth  width
===============  =================  =========  =====  =====
video-analytics  image recognition  4          3      2
parallel-aes     text encryption    5          3      3
ml-pipeline      model training     6          3      4
===============  =================  =========  =====  =====

Every function is an ordinary OpenWhisk Python action (``main(args) -> dict``) kept as
a directory with ``__main__.py`` (``workloads/deploy.py`` zips it). Functions that
appear several times in a parallel stage (``recognition1``/``2``, ``aes1``..``3``,
``train1``..``4``) share one source and differ only by their default parameters,
which give each branch a different amount of work: the stages are skewed on purpose.

User allocations. Everything fits the 2-core machine: a parallel stage's allocations
sum to at most 2 cores (video 2.0, AES 1.5, ML 2.0). And they are *mis-provisioned
the way the thesis's section 2.6 example is*: the light function of each stage is
given more CPU than it can use and the straggler, which decides when the stage ends,
less than it could (video: recognition1 1.25 / recognition2 0.75 cores; AES: aes1
0.75 / aes2 0.5 / aes3 0.25; ML: train1 0.75 / train2 0.5 / train3 0.5 / train4
0.25), while their work differs by 3x (video), 3.7x (AES) or more than 10x (ML).
That idle allocation is what Gleaner harvests for the straggler. (With equal shares
and functions whose peaks are alike at the maximum allocation, the validator has
nothing to move: see docs/benchmarks.md.)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composer.dsl import parallel, sequence
from composer.model import Node, actions
from gleaner.errors import GleanerError
from workloads.ml_pipeline import inputs as ml_inputs
from workloads.parallel_aes import inputs as aes_inputs
from workloads.video_analytics import inputs as video_inputs

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class FunctionSpec:
    """One action: its code and the user's allocation for it."""

    name: str
    source: Path  # a directory with __main__.py, or one .py file
    cpu: float  # cores (Docker --cpus)
    memory_mb: int
    timeout_ms: int
    params: dict[str, Any] = field(default_factory=dict)  # default parameters (OpenWhisk)


@dataclass(frozen=True)
class Workload:
    name: str
    dag: Node
    functions: tuple[FunctionSpec, ...]
    description: str
    # (n, seed, out_dir) -> the input files written, input-000.json ... (reproducible)
    generate_inputs: Callable[[int, int, Path], list[Path]]
    # a quick input: the whole DAG runs in a few seconds at the user allocations
    small_input: Callable[[], dict[str, Any]]

    def function(self, name: str) -> FunctionSpec:
        for spec in self.functions:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.name} has no function {name!r}")

    def __post_init__(self) -> None:
        used = {a.name for _, a in actions(self.dag)}
        defined = {f.name for f in self.functions}
        if used != defined:
            raise ValueError(f"{self.name}: DAG actions {sorted(used)} != functions {sorted(defined)}")


def _fn(
    workload_dir: str,
    code: str,
    name: str,
    cpu: float,
    memory_mb: int,
    timeout_ms: int = 120_000,
    **params: Any,
) -> FunctionSpec:
    return FunctionSpec(name, HERE / workload_dir / code, cpu, memory_mb, timeout_ms, dict(params))


VIDEO_ANALYTICS = Workload(
    name="video-analytics",
    dag=sequence("streaming", "decoder", parallel("recognition1", "recognition2")),
    functions=(
        _fn("video_analytics", "streaming", "streaming", 0.5, 256, 60_000),
        _fn("video_analytics", "decoder", "decoder", 1.0, 512, 60_000),
        # Same code; recognition1 gets 1 frame in 4 and recognition2 the other 3, yet
        # the light one is given the larger share (thesis 2.6: mis-provisioned).
        _fn("video_analytics", "recognition", "recognition1", 1.25, 768, offset=0, take=1, period=4),
        _fn("video_analytics", "recognition", "recognition2", 0.75, 768, offset=1, take=3, period=4),
    ),
    description=(
        "Image recognition: a synthetic MJPEG video of handwritten digits is streamed, "
        "decoded into frames, and two recognition functions classify the digits of 25% "
        "and 75% of the frames (denoise, segment, SVM trained on scikit-learn's digits)."
    ),
    generate_inputs=video_inputs.generate_inputs,
    small_input=video_inputs.small_input,
)

PARALLEL_AES = Workload(
    name="parallel-aes",
    dag=sequence("split", parallel("aes1", "aes2", "aes3"), "merge"),
    functions=(
        _fn("parallel_aes", "split", "split", 0.5, 256, 60_000),
        # Segments of 15%, 30% and 55% of the text; the smallest gets the most CPU.
        _fn("parallel_aes", "aes", "aes1", 0.75, 256, segment=0, rounds=2),
        _fn("parallel_aes", "aes", "aes2", 0.5, 256, segment=1, rounds=2),
        _fn("parallel_aes", "aes", "aes3", 0.25, 256, segment=2, rounds=2),
        _fn("parallel_aes", "merge", "merge", 0.25, 128, 60_000),
    ),
    description=(
        "Text encryption: the text is split into three unequal segments (15/30/55%), each "
        "encrypted and decrypted through two rounds of AES-256-CTR with pure-Python pyaes "
        "in parallel chunks, and the digests merged."
    ),
    generate_inputs=aes_inputs.generate_inputs,
    small_input=aes_inputs.small_input,
)

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
        _fn("ml_pipeline", "preprocess", "preprocess", 1.0, 512, 60_000),
        # Four LightGBM configurations from 25 shallow trees to 300 deep ones (each
        # function searches 4 candidates around its own); the smallest model gets the
        # most CPU and finishes early, the 300-tree one gets a quarter core.
        *(
            _fn(
                "ml_pipeline",
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
        _fn("ml_pipeline", "evaluate", "evaluate", 0.25, 128, 60_000),
    ),
    description=(
        "Model training: a tabular dataset is cleaned, standardised and split, four "
        "LightGBM trainings with very different hyper-parameters (25 to 300 trees, each a "
        "4-candidate search) run in parallel, and the best model is picked."
    ),
    generate_inputs=ml_inputs.generate_inputs,
    small_input=ml_inputs.small_input,
)

WORKLOADS: dict[str, Workload] = {w.name: w for w in (VIDEO_ANALYTICS, PARALLEL_AES, ML_PIPELINE)}


def get(name: str) -> Workload:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise KeyError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}") from None


def input_files(args: argparse.Namespace, dag: str, state_dir: Path) -> list[Path]:
    """A DAG's inputs: from a folder of JSON files (``args.input_dir``, the first
    ``args.inputs``), or generated by the built-in workload of that name (``args.inputs``
    of them, 100 if unset, with ``args.seed``) under ``state_dir/inputs``."""
    if args.input_dir:
        files = sorted(Path(args.input_dir).glob("*.json"))
        if not files:
            raise GleanerError(f"{args.input_dir} holds no .json inputs")
        return files[: args.inputs] if args.inputs else files
    if dag not in WORKLOADS:
        raise GleanerError(f"{dag} is not a built-in workload ({', '.join(WORKLOADS)}): pass --input-dir")
    out = state_dir / "inputs" / dag / f"seed{args.seed}"
    return WORKLOADS[dag].generate_inputs(args.inputs or 100, args.seed, out)
