"""The demo's skewed DAG (``make demo``): small, pure Python, no workload image.

    demo-split -> parallel(demo-checksum1, demo-checksum2, demo-checksum3) -> demo-merge

The split cuts a text 15/30/55 %; each checksum function loops over its segment in
pure Python (one core at most), so its time grows with the input and the third is
the straggler. The user allocations are mis-provisioned the way the thesis's section
2.6 example is (and like parallel-aes): the light function gets 0.75 core, the
straggler 0.25. That idle share is what harvesting moves to the straggler. The
functions need only the standard library, so they run on the plain ``python:3``
runtime that ``gleaner up`` builds; the thesis workloads' image is not needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from composer.dsl import parallel, sequence
from workloads.catalog import FunctionSpec, Workload
from workloads.inputs import write_inputs

HERE = Path(__file__).resolve().parent
NAME = "demo-skew"
MIN_BYTES = 8_000
MAX_BYTES = 120_000
ROUNDS = 64  # checksum passes over each segment: ~2.5 s for the straggler at 0.25 core on MAX_BYTES


_WORDS = np.array(
    "gleaner harvests idle cores from the light functions of a parallel stage and gives them "  # noqa: SIM905
    "to the straggler so the whole request finishes sooner".split()
)


def text_input(rng: np.random.Generator, size: int) -> dict[str, Any]:
    """About ``size`` bytes of words (what the checksum reads does not matter, only how much)."""
    words = rng.choice(_WORDS, size=size // 4 + 1)
    return {"text": " ".join(words.tolist())[:size]}


def _size(rng: np.random.Generator) -> int:
    """Log-uniform between MIN_BYTES and MAX_BYTES."""
    return int(np.exp(rng.uniform(np.log(MIN_BYTES), np.log(MAX_BYTES))))


def generate_inputs(n: int, seed: int, out_dir: Path) -> list[Path]:
    """``n`` texts of 8 KB to 120 KB (log-uniform), reproducible from ``seed``."""

    def one(i: int) -> dict[str, Any]:
        rng = np.random.default_rng([seed, i])
        return text_input(rng, _size(rng))

    return write_inputs(out_dir, n, one, desc="demo inputs", progress=False)


def inputs_of_sizes(sizes: list[int], seed: int, out_dir: Path) -> list[Path]:
    """One text per size, in that order (the requests the demo runs off and on)."""
    return write_inputs(
        out_dir,
        len(sizes),
        lambda i: text_input(np.random.default_rng([seed, i]), sizes[i]),
        desc="demo requests",
        progress=False,
    )


def small_input() -> dict[str, Any]:
    return text_input(np.random.default_rng(7), MIN_BYTES)


def _fn(name: str, code: str, cpu: float, memory_mb: int, **params: Any) -> FunctionSpec:
    return FunctionSpec(name, HERE / code, cpu, memory_mb, 60_000, dict(params))


DEMO_SKEW = Workload(
    name=NAME,
    dag=sequence("demo-split", parallel("demo-checksum1", "demo-checksum2", "demo-checksum3"), "demo-merge"),
    functions=(
        _fn("demo-split", "split.py", 0.5, 256),
        # Same code; segments of 15 %, 30 % and 55 % of the text; the smallest gets the most CPU.
        _fn("demo-checksum1", "checksum.py", 0.75, 256, segment=0, rounds=ROUNDS),
        _fn("demo-checksum2", "checksum.py", 0.5, 256, segment=1, rounds=ROUNDS),
        _fn("demo-checksum3", "checksum.py", 0.25, 256, segment=2, rounds=ROUNDS),
        _fn("demo-merge", "merge.py", 0.25, 128),
    ),
    description=(
        "Demo: a text is split 15/30/55 %, three pure-Python checksum functions run in "
        "parallel (the largest segment's is the straggler), and the checksums are merged."
    ),
    generate_inputs=generate_inputs,
    small_input=small_input,
)
