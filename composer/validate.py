"""Checks a composition must pass before Gleaner stores or runs it. Pure.

Node paths in messages are child indices from the root: ``/2/0`` is the first
branch of the third step, ``/`` the root.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from composer.errors import CompositionError
from composer.model import Action, Map, Node, Parallel, Path, Sequence, actions, walk

__all__ = ["CompositionError", "expand", "path_label", "validate"]

MAX_FUNCTIONS = 50  # OpenWhisk's limit on the actions of a sequence
MAX_NAME = 256
# OpenWhisk's entity name rule (the same as gleaner.actions.check_name).
_ENTITY_NAME = re.compile(r"^(\w|\w[\w@ .\-]*[\w@.\-]+)$")


def path_label(path: Path) -> str:
    return "/" + "/".join(map(str, path))


def validate(
    node: Node, *, known_actions: Callable[[str], bool] | None = None, max_functions: int = MAX_FUNCTIONS
) -> None:
    """Raise CompositionError if ``node`` cannot run; pass the tree you will run
    (normalized, nested DAGs expanded). A map's body counts once."""
    for path, n in walk(node):
        if isinstance(n, Sequence) and not n.steps:
            raise CompositionError(f"the sequence at {path_label(path)} is empty")
        if isinstance(n, Parallel) and not n.branches:
            raise CompositionError(f"the parallel at {path_label(path)} has no branches")
        if isinstance(n, Map) and isinstance(n.body, Sequence) and not n.body.steps:
            raise CompositionError(f"the map at {path_label(path)} has an empty body")
    names = list(dict.fromkeys(a.name for _, a in actions(node)))
    bad = [name for name in names if not _valid_name(name)]
    if bad:
        raise CompositionError(
            f"invalid action name(s): {', '.join(map(repr, bad))} "
            f"(letters, digits, _ @ . - and spaces, not starting with a space or symbol; max {MAX_NAME})"
        )
    count = len(actions(node))
    if count > max_functions:
        raise CompositionError(f"the composition has {count} functions; the limit is {max_functions}")
    if known_actions is not None:
        unknown = [name for name in names if not known_actions(name)]
        if unknown:
            raise CompositionError(f"unknown action(s): {', '.join(map(repr, unknown))}")


def _valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME and _ENTITY_NAME.match(name) is not None


def expand(node: Node, resolve: Callable[[str], Node | None], *, name: str | None = None) -> Node:
    """Inline every registered DAG that ``node`` names in an action, recursively.

    ``resolve(name)`` gives a DAG's tree, or None for a plain action; ``name`` is
    the DAG being expanded, if it has one, so that a DAG naming itself is caught.
    Raises CompositionError on a cycle, naming it (``a -> b -> a``).
    """
    expanded: dict[str, Node] = {}  # each DAG is resolved and expanded once

    def inline(n: Node, stack: tuple[str, ...]) -> Node:
        if isinstance(n, Action):
            if n.name in stack:
                cycle = (*stack[stack.index(n.name) :], n.name)
                raise CompositionError(f"the composition is not acyclic: {' -> '.join(cycle)}")
            if n.name not in expanded:
                tree = resolve(n.name)
                expanded[n.name] = n if tree is None else inline(tree, (*stack, n.name))
            return expanded[n.name]
        if isinstance(n, Sequence):
            return Sequence(tuple(inline(s, stack) for s in n.steps))
        if isinstance(n, Parallel):
            return Parallel(tuple(inline(b, stack) for b in n.branches))
        return Map(inline(n.body, stack))

    return inline(node, (name,) if name else ())
