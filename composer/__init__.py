"""composer: the DAG model, its Python DSL, Composer JSON, validation and stage analysis.

from composer import sequence, parallel, action, normalize, analyze
dag = normalize(sequence("streaming", "decoder", parallel("recognition1", "recognition2")))
analyze(dag).parallel_stages   # (2,)
"""

from __future__ import annotations

from composer.dsl import action, map, normalize, parallel, sequence
from composer.errors import CompositionError
from composer.jsonio import dag_document, from_json, load_document, short_name, to_json
from composer.model import Action, Map, Node, Parallel, Path, Sequence, actions, at, children, walk
from composer.stages import Analysis, FunctionSlot, StageInfo, analyze, slot_for
from composer.validate import expand, validate
from composer.visualize import render

__all__ = [
    "Action",
    "Analysis",
    "CompositionError",
    "FunctionSlot",
    "Map",
    "Node",
    "Parallel",
    "Path",
    "Sequence",
    "StageInfo",
    "action",
    "actions",
    "analyze",
    "at",
    "children",
    "dag_document",
    "expand",
    "from_json",
    "load_document",
    "map",
    "normalize",
    "parallel",
    "render",
    "sequence",
    "short_name",
    "slot_for",
    "to_json",
    "validate",
    "walk",
]
