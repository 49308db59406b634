"""validate() refuses what cannot run; expand() inlines nested DAGs and catches cycles."""

from __future__ import annotations

import pytest

from composer import CompositionError, expand, map, normalize, parallel, sequence, validate
from composer.model import Action, Map, Node, Parallel, Sequence

VIDEO = sequence("streaming", "decoder", parallel("recognition1", "recognition2"))


def test_a_good_dag_passes() -> None:
    validate(VIDEO)
    validate(VIDEO, known_actions=lambda name: True)


def test_unknown_actions_are_all_listed_once() -> None:
    dag = sequence("streaming", "decodr", parallel("recognition1", "recogniton2", "decodr"))
    known = {"streaming", "decoder", "recognition1", "recognition2"}
    with pytest.raises(CompositionError) as info:
        validate(dag, known_actions=known.__contains__)
    assert str(info.value) == "unknown action(s): 'decodr', 'recogniton2'"


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        (Sequence(()), "the sequence at / is empty"),
        (Sequence((Action("a"), Parallel(()))), "the parallel at /1 has no branches"),
        (Sequence((Action("a"), Map(Sequence(())))), "the map at /1 has an empty body"),
        (Sequence((Parallel((Action("a"), Sequence(()))),)), "the sequence at /0/1 is empty"),
    ],
)
def test_empty_combinators(tree: Node, message: str) -> None:
    with pytest.raises(CompositionError, match=message):
        validate(tree)


def test_too_many_functions() -> None:
    dag = sequence(*[f"f{i}" for i in range(51)])
    with pytest.raises(CompositionError, match="51 functions; the limit is 50"):
        validate(dag)
    validate(sequence(*[f"f{i}" for i in range(50)]))
    with pytest.raises(CompositionError, match="the limit is 3"):
        validate(VIDEO, max_functions=3)


def test_a_map_body_counts_once() -> None:
    validate(sequence("split", map(*[f"m{i}" for i in range(48)]), "join"))


@pytest.mark.parametrize("name", ["", " lead", "a$b", "x" * 257, "-dash", "tab\there", "trailing "])
def test_bad_names(name: str) -> None:
    with pytest.raises(CompositionError, match="invalid action name"):
        validate(sequence("ok", Action(name)))


@pytest.mark.parametrize("name", ["a", "recognition 1", "my-action.v2@x", "_x", "x" * 256, "é"])
def test_good_names(name: str) -> None:
    validate(sequence(Action(name)))


def test_expand_inlines_nested_dags_recursively() -> None:
    registry: dict[str, Node] = {
        "train": parallel("t1", "t2", "inner"),
        "inner": sequence("i1", "i2"),
    }
    dag = sequence("preprocess", "train", "evaluate")
    expanded = expand(dag, registry.get)
    assert expanded == Sequence(
        (
            Action("preprocess"),
            Parallel((Action("t1"), Action("t2"), Sequence((Action("i1"), Action("i2"))))),
            Action("evaluate"),
        )
    )
    assert normalize(expand(sequence("a", "inner"), registry.get)) == sequence("a", "i1", "i2")


def test_expand_resolves_each_dag_once() -> None:
    calls: list[str] = []
    registry: dict[str, Node] = {"sub": sequence("x", "y")}

    def resolve(name: str) -> Node | None:
        calls.append(name)
        return registry.get(name)

    expand(parallel("sub", "sub", map("sub")), resolve)
    assert calls.count("sub") == 1


def test_expand_reports_a_cycle() -> None:
    registry: dict[str, Node] = {"a": sequence("x", "b"), "b": parallel("y", "a")}
    with pytest.raises(CompositionError, match="the composition is not acyclic: a -> b -> a"):
        expand(sequence("a"), registry.get)


def test_expand_reports_a_self_reference_when_named() -> None:
    with pytest.raises(CompositionError, match="not acyclic: main -> main"):
        expand(sequence("x", "main"), {"main": sequence("x", "main")}.get, name="main")
    with pytest.raises(CompositionError, match="not acyclic: main -> sub -> main"):
        expand(sequence("sub"), {"sub": sequence("main")}.get, name="main")


def test_diamonds_are_not_cycles() -> None:
    registry: dict[str, Node] = {"l": sequence("d"), "r": sequence("d"), "d": sequence("leaf")}
    out = expand(parallel("l", "r"), registry.get)
    assert normalize(out) == Sequence((Parallel((Action("leaf"), Action("leaf"))),))
