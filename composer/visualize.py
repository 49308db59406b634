"""A DAG as indented text, for the CLI and for error reports. Pure."""

from __future__ import annotations

from composer.model import Action, Map, Node, Parallel, Sequence


def render(node: Node) -> str:
    """``node`` as a tree drawing::

    sequence
    ├── streaming
    ├── decoder
    └── parallel
        ├── recognition1
        └── recognition2
    """
    lines: list[str] = []
    _draw(node, "", "", lines)
    return "\n".join(lines)


def _label(node: Node) -> str:
    if isinstance(node, Action):
        return node.name
    if isinstance(node, Sequence):
        return "sequence" if node.steps else "sequence (empty)"
    if isinstance(node, Parallel):
        return "parallel" if node.branches else "parallel (empty)"
    return "map (one branch per element of value)"


def _draw(node: Node, head: str, tail: str, lines: list[str]) -> None:
    lines.append(head + _label(node))
    kids: tuple[Node, ...] = ()
    if isinstance(node, Sequence):
        kids = node.steps
    elif isinstance(node, Parallel):
        kids = node.branches
    elif isinstance(node, Map):
        kids = (node.body,)
    for i, kid in enumerate(kids):
        last = i == len(kids) - 1
        _draw(kid, tail + ("└── " if last else "├── "), tail + ("    " if last else "│   "), lines)
