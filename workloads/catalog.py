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

Each workload is defined in its folder's ``workload.py`` and imported only when it is
named: ``WORKLOADS`` knows the names without importing anything, so ``gleaner eval`` or
``gleaner profile`` of a user's own DAG on a plain install (no ``workloads`` extra, no
OpenCV) never loads them.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from composer.model import Node, actions
from gleaner.errors import GleanerError

# Each built-in workload by name: the module that defines it and the attribute, imported
# only when the workload is named. Its input generator may need the `workloads` extra
# (OpenCV for the videos); a user's own DAG with its own inputs never loads them.
BUILTIN: dict[str, str] = {
    "video-analytics": "workloads.video_analytics.workload:VIDEO_ANALYTICS",
    "parallel-aes": "workloads.parallel_aes.workload:PARALLEL_AES",
    "ml-pipeline": "workloads.ml_pipeline.workload:ML_PIPELINE",
}
EXTRA_HINT = "pip install -e '.[workloads]'"


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


def function_spec(
    folder: Path,
    code: str,
    name: str,
    cpu: float,
    memory_mb: int,
    timeout_ms: int = 120_000,
    **params: Any,
) -> FunctionSpec:
    """The action ``name`` whose code is ``folder/code`` (a workload's function directory)."""
    return FunctionSpec(name, folder / code, cpu, memory_mb, timeout_ms, dict(params))


def import_extra(module: str) -> ModuleType:
    """Import a workload's module that needs libraries of the ``workloads`` extra; a missing one
    is a clear error that names the extra, not a bare ``ModuleNotFoundError``."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] == "workloads":
            raise  # our own module is missing: a bug, not an extra
        raise GleanerError(f"{module} needs {exc.name}, from the workloads extra: {EXTRA_HINT}") from exc


class Catalog(Mapping[str, Workload]):
    """The built-in workloads by name. Names, ``in`` and iteration never import a workload;
    looking one up imports its module once (``values()``/``items()`` import them all)."""

    def __init__(self, entries: Mapping[str, str]) -> None:
        self._entries = dict(entries)
        self._loaded: dict[str, Workload] = {}

    def __getitem__(self, name: str) -> Workload:
        if name not in self._loaded:
            module, _, attr = self._entries[name].partition(":")
            workload = getattr(import_extra(module), attr)
            if not isinstance(workload, Workload) or workload.name != name:
                raise TypeError(f"{self._entries[name]} is not the workload {name!r}")
            self._loaded[name] = workload
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def loaded(self) -> list[str]:
        """The names imported so far."""
        return list(self._loaded)


WORKLOADS = Catalog(BUILTIN)


def get(name: str) -> Workload:
    if name not in WORKLOADS:
        raise KeyError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
    return WORKLOADS[name]


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
