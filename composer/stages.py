"""Stage analysis of a DAG: what the predictor and the harvester see. Pure.

On the normalized DAG (:func:`composer.dsl.normalize`) every top-level step is a
*stage*: an action, a parallel or a map. Functions are numbered within their stage
in declaration order, the same order the state machine uses for ``index``.

All paths are node paths in ``normalize(node)``: run that same tree, or paths differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from composer.dsl import normalize
from composer.model import Action, Map, Node, Parallel, Path, actions

StageKind = Literal["action", "parallel", "map"]


@dataclass(frozen=True, slots=True)
class FunctionSlot:
    path: Path
    action: str
    stage: int
    index: int  # position within the stage, declaration order, from 0
    branch: int | None  # branch of the stage's parallel (0 for a map's body); None in an action stage


@dataclass(frozen=True, slots=True)
class StageInfo:
    index: int
    kind: StageKind
    slots: tuple[FunctionSlot, ...]
    width: int  # branches; 1 for an action stage and for a map (its width is known only at run time)


@dataclass(frozen=True, slots=True)
class Analysis:
    depth: int  # number of stages
    width: int  # widest stage
    stages: tuple[StageInfo, ...]
    functions: tuple[FunctionSlot, ...]  # every function, by stage then index
    parallel_stages: tuple[int, ...]  # stages that fan out: parallel and map


def analyze(node: Node) -> Analysis:
    root = normalize(node)
    stages = tuple(_stage(i, step) for i, step in enumerate(root.steps))
    return Analysis(
        depth=len(stages),
        width=max((s.width for s in stages), default=0),
        stages=stages,
        functions=tuple(slot for s in stages for slot in s.slots),
        parallel_stages=tuple(s.index for s in stages if s.kind != "action"),
    )


def _stage(index: int, step: Node) -> StageInfo:
    top: Path = (index,)
    if isinstance(step, Action):
        slot = FunctionSlot(top, step.name, index, 0, None)
        return StageInfo(index, "action", (slot,), 1)
    # actions(step) lists paths relative to the step, in declaration order; for a
    # parallel their first index is the branch, for a map it is the body (0).
    found = actions(step)
    slots = tuple(FunctionSlot((*top, *p), a.name, index, k, p[0]) for k, (p, a) in enumerate(found))
    if isinstance(step, Parallel):
        return StageInfo(index, "parallel", slots, len(step.branches))
    assert isinstance(step, Map), "normalize leaves no sequence at the top level"
    return StageInfo(index, "map", slots, 1)


def slot_for(analysis: Analysis, path: Path) -> FunctionSlot:
    """The function at ``path`` (a path in the normalized DAG); KeyError if none."""
    for slot in analysis.functions:
        if slot.path == path:
            return slot
    raise KeyError(f"no function at path {path}")
