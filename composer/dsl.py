"""The Python DSL for DAGs, after OpenWhisk Composer's combinators. Pure.

    sequence("streaming", "decoder", parallel("recognition1", "recognition2"))

A step or branch may be a node or a string (shorthand for ``action(name)``).

Canonical form (:func:`normalize`), the one shape every later stage works on
(stage analysis, the state machine, stored documents), so that node paths agree:

- the root is always a ``Sequence`` (a lone action becomes a one-step sequence);
- no ``Sequence`` is a step of another ``Sequence`` (nested sequences are spliced
  in place, and empty ones vanish: an empty sequence is the identity);
- a one-step ``Sequence`` that is a parallel branch or a map body is replaced by
  its step (``parallel(sequence(a), b)`` is ``parallel(a, b)``);
- ``Parallel`` is never flattened and a one-branch ``Parallel`` is kept: its
  output shape (``{"value": [...]}``) differs from its branch's.
"""

from __future__ import annotations

import builtins

from composer.errors import CompositionError
from composer.model import Action, Map, Node, Parallel, Sequence

Step = Node | str


def _node(step: Step) -> Node:
    if isinstance(step, str):
        return Action(step)
    if isinstance(step, Action | Sequence | Parallel | Map):
        return step
    raise TypeError(f"a step must be a composition node or an action name, got {type(step).__name__}")


def action(name: str) -> Action:
    if not isinstance(name, str):
        raise TypeError(f"an action name must be a string, got {type(name).__name__}")
    return Action(name)


def sequence(*steps: Step) -> Sequence:
    """Steps one after another; nested sequences are spliced in place."""
    if not steps:
        raise CompositionError("sequence() needs at least one step")
    flat: list[Node] = []
    for step in builtins.map(_node, steps):
        flat.extend(step.steps if isinstance(step, Sequence) else (step,))
    return Sequence(tuple(flat))


def parallel(*branches: Step) -> Parallel:
    """Every branch gets the same input; the output lists the branch outputs."""
    if not branches:
        raise CompositionError("parallel() needs at least one branch")
    return Parallel(tuple(builtins.map(_node, branches)))


def map(*body: Step) -> Map:  # shadows the builtin on purpose: Composer's name
    """One branch per element of the input's ``value`` list; several steps form a sequence body."""
    if not body:
        raise CompositionError("map() needs a body")
    return Map(_node(body[0]) if len(body) == 1 else sequence(*body))


def normalize(node: Node) -> Sequence:
    """The canonical form of ``node`` (see the module docstring). Idempotent."""
    return Sequence(_steps(node))


def _steps(node: Node) -> tuple[Node, ...]:
    """``node`` as a flat list of sequence steps."""
    if isinstance(node, Sequence):
        return tuple(step for child in node.steps for step in _steps(child))
    return (_inner(node),)


def _inner(node: Node) -> Node:
    """Canonical form of a node that is not a sequence step (a branch, a body)."""
    if isinstance(node, Sequence):
        steps = _steps(node)
        return steps[0] if len(steps) == 1 else Sequence(steps)
    if isinstance(node, Parallel):
        return Parallel(tuple(_inner(b) for b in node.branches))
    if isinstance(node, Map):
        return Map(_inner(node.body))
    return node
