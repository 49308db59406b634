"""The DAG model: plain immutable data, no I/O.

A composition is a tree of four node kinds, in the spirit of OpenWhisk Composer:

- ``Action(name)``: run a registered function on the current value;
- ``Sequence(steps)``: run steps one after another, each on the previous output;
- ``Parallel(branches)``: every branch gets the same input; the output is
  ``{"value": [branch outputs in branch order]}`` (Composer's convention);
- ``Map(body)``: one branch per element of the input's ``value`` list, each
  running ``body``; the output is ``{"value": [outputs in element order]}``.

A node is addressed by its *path*: the tuple of child indices from the root.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

Path = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Action:
    name: str


@dataclass(frozen=True, slots=True)
class Sequence:
    steps: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Parallel:
    branches: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Map:
    body: Node


Node = Action | Sequence | Parallel | Map


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Sequence):
        return node.steps
    if isinstance(node, Parallel):
        return node.branches
    if isinstance(node, Map):
        return (node.body,)
    return ()


def at(root: Node, path: Path) -> Node:
    """The node at ``path`` under ``root``."""
    node = root
    for i in path:
        node = children(node)[i]
    return node


def walk(root: Node, path: Path = ()) -> Iterator[tuple[Path, Node]]:
    """Every node with its path, depth first, in declaration order."""
    yield path, root
    for i, child in enumerate(children(root)):
        yield from walk(child, (*path, i))


def actions(root: Node) -> list[tuple[Path, Action]]:
    return [(p, n) for p, n in walk(root) if isinstance(n, Action)]
