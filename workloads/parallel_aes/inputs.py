"""Seeded text documents, the ParallelAES DAG's inputs.

Word salad with a Zipf-like word frequency, sentences and paragraphs, built from a
pseudo-word vocabulary the seed also picks, so no corpus is needed. Sizes are
log-uniform between ~10 KB and ~1.2 MB (the AES stage's cost grows linearly with it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from workloads.inputs import write_inputs

MIN_BYTES = 10_000
MAX_BYTES = 1_200_000
_SYLLABLES = tuple(
    "ka ri to ne ma lu so vi de an el or is um ta pe ro sa li mo ba ca da fe ga "  # noqa: SIM905
    "hi jo ke la mi no pa qu ra se ti va we xe yo ze ar en in on ur ex al".split()
)


def _vocabulary(rng: np.random.Generator, size: int = 3000) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        n = int(rng.integers(1, 5))
        words.add("".join(_SYLLABLES[int(j)] for j in rng.integers(len(_SYLLABLES), size=n)))
    return sorted(words)


def make_text(rng: np.random.Generator, size: int) -> str:
    """About ``size`` bytes of sentences and paragraphs."""
    vocab = _vocabulary(rng)
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    out: list[str] = []
    total = 0
    while total < size:
        sentences = []
        for _ in range(int(rng.integers(3, 8))):
            words = [vocab[int(k)] for k in rng.choice(len(vocab), size=int(rng.integers(5, 21)), p=weights)]
            sentences.append(" ".join(words).capitalize() + ".")
        paragraph = " ".join(sentences)
        out.append(paragraph)
        total += len(paragraph) + 2
    return "\n\n".join(out)[:size]


def text_input(rng: np.random.Generator, size: int) -> dict[str, Any]:
    return {"text": make_text(rng, size)}


def _size(rng: np.random.Generator) -> int:
    return int(np.exp(rng.uniform(np.log(MIN_BYTES), np.log(MAX_BYTES))))


def plan(n: int, seed: int) -> list[int]:
    """The text size (bytes) of each input :func:`generate_inputs` writes."""
    return [_size(np.random.default_rng([seed, i])) for i in range(n)]


def generate_inputs(n: int, seed: int, out_dir: Path) -> list[Path]:
    """``n`` texts of ~10 KB to ~1.2 MB (log-uniform)."""

    def one(i: int) -> dict[str, Any]:
        rng = np.random.default_rng([seed, i])
        return text_input(rng, _size(rng))

    return write_inputs(out_dir, n, one, desc="text inputs")


def small_input() -> dict[str, Any]:
    """8 KB of text: the whole DAG runs in a few seconds at the user allocations."""
    return text_input(np.random.default_rng(7), 8_000)
