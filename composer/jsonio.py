"""Compositions as JSON, in OpenWhisk Composer's node shape. Pure.

Gleaner writes Composer's own nodes, so one parser reads both ours and theirs::

    {"type": "action", "name": "decoder"}
    {"type": "sequence", "components": [...]}
    {"type": "parallel", "components": [...]}
    {"type": "map", "components": [...]}      # the body, as a sequence of components

A document Gleaner stores is ``{"composition": <tree>, "version": "gleaner/1"}``.

:func:`from_json` also reads what Composer's ``compose`` tool writes:

- a bare tree (composer up to 0.11: ``compose demo.js``);
- ``{"composition": <lowered tree>, "ast": <tree>, "version": "0.12.x", "actions": [...]}``
  (apache/openwhisk-composer 0.12): ``composition`` is read first, ``ast`` when the
  lowered tree cannot be read;
- a conductor entity ``{"name": "/_/vid", "action": {"exec": ..., "annotations":
  [{"key": "conductor", "value": <tree>}, ...]}}`` (``--entity``, or what
  ``deploy`` uploads);
- a list of entities (``--entities``): the composition is the *last* entity with a
  ``conductor`` tree (Composer lists nested definitions first); an action node naming
  another conductor entity of the list is inlined;
- old composers' array form: a JSON list of nodes is a sequence.

Leniencies: ``seq`` is ``sequence``, ``par`` is ``parallel``, ``empty`` is an empty
sequence, a node with ``components`` and no ``type`` is a sequence, a ``composition``
node (``{"type": "composition", "name": ..., "composition": <tree>?}``) is its inline
tree or else a reference to the named DAG. Unknown keys (``path``, ``options``, ...)
are ignored, and so is an inline action definition (``"action": {"exec": ...}`` on an
action node, or the 0.12 ``actions`` list): Gleaner registers actions on its own API.

Action names: Composer writes fully qualified names (``/_/decoder``,
``/guest/decoder``, ``/guest/pkg/decoder``). Gleaner has one flat action namespace per
deployment, so only the last segment is kept (``decoder``), whatever the namespace or
package.
"""

from __future__ import annotations

from typing import Any

from composer.errors import CompositionError
from composer.model import Action, Map, Node, Parallel, Sequence
from composer.validate import expand

DOCUMENT_VERSION = "gleaner/1"

SUPPORTED = ("action", "sequence (seq, empty)", "parallel (par)", "map", "composition")
# Composer combinators Gleaner does not run: control flow and state need a
# long-running conductor, which a DAG of stages has no place for.
UNSUPPORTED = frozenset(
    {
        "if", "if_nosave", "while", "while_nosave", "dowhile", "dowhile_nosave", "try", "finally",
        "let", "mask", "literal", "value", "function", "retry", "repeat", "retain", "retain_catch",
        "async", "dynamic", "merge",
    }
)  # fmt: skip
_SEQUENCE = frozenset({"sequence", "seq"})
_PARALLEL = frozenset({"parallel", "par"})


# -- writing -------------------------------------------------------------------
def to_json(node: Node) -> dict[str, Any]:
    """``node`` as a Composer JSON tree (exact round trip through :func:`from_json`)."""
    if isinstance(node, Action):
        return {"type": "action", "name": node.name}
    if isinstance(node, Sequence):
        return {"type": "sequence", "components": [to_json(s) for s in node.steps]}
    if isinstance(node, Parallel):
        return {"type": "parallel", "components": [to_json(b) for b in node.branches]}
    body = node.body
    # A one-step sequence body is written as a nested sequence so it reads back as one.
    steps = body.steps if isinstance(body, Sequence) and len(body.steps) != 1 else (body,)
    return {"type": "map", "components": [to_json(s) for s in steps]}


def dag_document(node: Node) -> dict[str, Any]:
    return {"composition": to_json(node), "version": DOCUMENT_VERSION}


def load_document(data: Any) -> Node:
    """A stored Gleaner document (or anything :func:`from_json` reads)."""
    version = data.get("version") if isinstance(data, dict) else None
    if isinstance(version, str) and version.startswith("gleaner/") and version != DOCUMENT_VERSION:
        raise CompositionError(
            f"unsupported document version {version!r}; this Gleaner reads {DOCUMENT_VERSION!r}"
        )
    return from_json(data)


# -- reading -------------------------------------------------------------------
def from_json(data: Any) -> Node:
    """The composition in ``data``, in any of the shapes listed in the module docstring."""
    if isinstance(data, list):
        if data and all(_is_entity(e) for e in data):
            return _from_entities(data)
        return _node(data, "composition")
    if not isinstance(data, dict):
        raise CompositionError(f"expected a composition (a JSON object), got {_kind(data)}")
    if "type" in data:
        return _node(data, "composition")
    if "composition" in data or "ast" in data:
        return _from_envelope(data)
    if _is_entity(data):
        return _from_entity(data, "")
    if "components" in data:
        return _node(data, "composition")
    keys = ", ".join(sorted(map(str, data))) or "none"
    raise CompositionError(
        f"not a composition: expected a Composer tree (with 'type'), a compose output "
        f"(with 'composition'), or a conductor action entity; got an object with keys: {keys}"
    )


def _from_envelope(data: dict[str, Any]) -> Node:
    if "composition" not in data:
        return _node(data["ast"], "ast")
    try:
        return _node(data["composition"], "composition")
    except CompositionError:
        if "ast" not in data:
            raise
    # The ast names the user's own combinators, so its error (if any) reads better.
    return _node(data["ast"], "ast")


def _is_entity(data: Any) -> bool:
    return isinstance(data, dict) and "type" not in data and isinstance(data.get("action"), dict)


def _conductor(entity: dict[str, Any], where: str) -> tuple[Any, str] | None:
    """The composition tree an entity carries, with its JSON path, if any."""
    action = entity["action"]
    annotations = action.get("annotations", [])
    if isinstance(annotations, list):
        for i, note in enumerate(annotations):
            if isinstance(note, dict) and note.get("key") == "conductor":
                return note.get("value"), f"{where}action.annotations[{i}].value"
    exec_ = action.get("exec")
    if isinstance(exec_, dict) and exec_.get("kind") == "composition" and "composition" in exec_:
        return exec_["composition"], f"{where}action.exec.composition"  # composer 0.4 before encoding
    return None


def _from_entity(entity: dict[str, Any], where: str) -> Node:
    found = _conductor(entity, where)
    name = entity.get("name", "?")
    if found is None:
        raise CompositionError(f"the action entity {name!r} is not a composition: no 'conductor' annotation")
    tree, path = found
    if not isinstance(tree, dict | list):
        raise CompositionError(
            f"the conductor annotation of {name!r} holds no composition tree (got {_kind(tree)}): "
            "a hand-written conductor action cannot be imported",
            where=path,
        )
    return _node(tree, path)


def _from_entities(entities: list[Any]) -> Node:
    conductors = {i: e for i, e in enumerate(entities) if _conductor(e, "") is not None}
    if not conductors:
        names = ", ".join(repr(e.get("name", "?")) for e in entities)
        raise CompositionError(f"none of the entities ({names}) is a composition: no 'conductor' annotation")
    trees = {_entity_name(e): (i, e) for i, e in conductors.items()}
    last = max(conductors)
    main = _from_entity(entities[last], f"[{last}].")

    def resolve(name: str) -> Node | None:
        if name not in trees:
            return None
        i, entity = trees[name]
        return _from_entity(entity, f"[{i}].")

    return expand(main, resolve, name=_entity_name(entities[last]) or None)


def _entity_name(entity: dict[str, Any]) -> str:
    name = entity.get("name")
    try:
        return short_name(name) if isinstance(name, str) else ""
    except CompositionError:
        return ""


def short_name(name: str) -> str:
    """``/guest/pkg/decoder`` -> ``decoder`` (see the module docstring).

    Raises CompositionError unless ``name`` is OpenWhisk's ``[/namespace/][package/]action``.
    """
    parts = name[1:].split("/") if name.startswith("/") else name.split("/")
    sizes = (2, 3) if name.startswith("/") else (1, 2)
    if len(parts) not in sizes or not all(parts):
        raise CompositionError(f"{name!r} is not an action name of the form [/namespace/][package/]action")
    return parts[-1]


def _node(data: Any, where: str) -> Node:
    if isinstance(data, list):  # old composers' array form
        return Sequence(tuple(_node(c, f"{where}[{i}]") for i, c in enumerate(data)))
    if not isinstance(data, dict):
        raise CompositionError(f"expected a composition node (a JSON object), got {_kind(data)}", where=where)
    kind = data.get("type")
    if kind is None and "components" in data:
        kind = "sequence"
    if kind is None:
        raise CompositionError("a composition node needs a 'type'", where=where)
    if not isinstance(kind, str):
        raise CompositionError(f"'type' must be a string, got {_kind(kind)}", where=where)
    if kind == "action":
        return Action(_action_name(data, where))
    if kind == "empty":
        return Sequence(())
    if kind in _SEQUENCE:
        return Sequence(_components(data, where))
    if kind in _PARALLEL:
        return Parallel(_components(data, where))
    if kind == "map":
        body = _components(data, where)
        return Map(body[0] if len(body) == 1 else Sequence(body))
    if kind == "composition":
        if data.get("composition") is not None:
            return _node(data["composition"], f"{where}.composition")
        return Action(_action_name(data, where))
    supported = ", ".join(SUPPORTED)
    if kind in UNSUPPORTED:
        raise CompositionError(
            f"the {kind!r} combinator is not supported: Gleaner runs DAGs of {supported}", where=where
        )
    raise CompositionError(f"unknown combinator {kind!r}: Gleaner runs DAGs of {supported}", where=where)


def _components(data: dict[str, Any], where: str) -> tuple[Node, ...]:
    components = data.get("components")
    if not isinstance(components, list):
        got = "nothing" if components is None else _kind(components)
        raise CompositionError(f"'components' must be a list, got {got}", where=f"{where}.components")
    return tuple(_node(c, f"{where}.components[{i}]") for i, c in enumerate(components))


def _action_name(data: dict[str, Any], where: str) -> str:
    name = data.get("name")
    if not isinstance(name, str) or not name:
        got = "no name" if name is None else f"name {name!r}"
        raise CompositionError(f"an {data.get('type')} node needs a non-empty 'name', got {got}", where=where)
    try:
        return short_name(name)
    except CompositionError as exc:
        raise CompositionError(exc.reason, where=where) from None


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else type(value).__name__)
