"""The DSL builds model nodes; normalize gives the one canonical shape."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from composer import CompositionError, action, map, normalize, parallel, render, sequence
from composer.model import Action, Map, Node, Parallel, Sequence, actions, walk

names = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True)
# Any tree the model can hold, empty containers included.
trees: st.SearchStrategy[Node] = st.recursive(
    names.map(Action),
    lambda kids: st.one_of(
        st.lists(kids, max_size=4).map(lambda xs: Sequence(tuple(xs))),
        st.lists(kids, max_size=4).map(lambda xs: Parallel(tuple(xs))),
        kids.map(Map),
    ),
    max_leaves=20,
)

a, b, c, d = (Action(n) for n in "abcd")


def test_strings_are_actions() -> None:
    assert action("decoder") == Action("decoder")
    assert sequence("a", b) == Sequence((a, b))
    assert parallel("a", "b") == Parallel((a, b))


def test_nested_sequences_are_flattened() -> None:
    assert sequence(a, sequence(b, c)) == sequence(a, b, c) == Sequence((a, b, c))
    assert sequence(sequence(a, sequence(b)), c) == Sequence((a, b, c))


def test_parallel_is_not_flattened() -> None:
    assert parallel(a, parallel(b, c)) == Parallel((a, Parallel((b, c))))


def test_map_of_several_steps_is_a_sequence_body() -> None:
    assert map("a") == Map(a)
    assert map(a, b) == Map(Sequence((a, b)))
    assert map(sequence(a, b)) == Map(Sequence((a, b)))


def test_all_containers_are_tuples() -> None:
    dag = sequence("a", parallel("b", map("c", "d")))
    for _, node in walk(dag):
        for field in ("steps", "branches"):
            if hasattr(node, field):
                assert isinstance(getattr(node, field), tuple)


@pytest.mark.parametrize("build", [sequence, parallel, map])
def test_empty_combinators_are_refused(build: object) -> None:
    with pytest.raises(CompositionError, match="needs"):
        build()  # type: ignore[operator]


def test_bad_step_types_are_type_errors() -> None:
    with pytest.raises(TypeError):
        sequence("a", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        action(None)  # type: ignore[arg-type]


def test_normalize_root_is_always_a_sequence() -> None:
    assert normalize(a) == Sequence((a,))
    assert normalize(parallel(a, b)) == Sequence((Parallel((a, b)),))
    assert normalize(Sequence((a,))) == Sequence((a,))


def test_normalize_unwraps_single_step_sequences_inside_branches() -> None:
    tree = Parallel((Sequence((a,)), Sequence((Sequence((b,)), c)), Sequence((Sequence((d,)),))))
    assert normalize(tree) == Sequence((Parallel((a, Sequence((b, c)), d)),))
    assert normalize(Map(Sequence((a,)))) == Sequence((Map(a),))


def test_normalize_drops_empty_sequences_between_steps() -> None:
    assert normalize(Sequence((a, Sequence(()), b))) == Sequence((a, b))


def test_normalize_keeps_one_branch_parallel() -> None:
    assert normalize(Sequence((Parallel((a,)),))) == Sequence((Parallel((a,)),))


def _is_canonical(node: Node, *, as_step: bool) -> bool:
    if isinstance(node, Sequence):
        if as_step:
            return False
        return all(_is_canonical(s, as_step=True) for s in node.steps)
    if isinstance(node, Parallel):
        return all(_branch_ok(x) for x in node.branches)
    if isinstance(node, Map):
        return _branch_ok(node.body)
    return True


def _branch_ok(node: Node) -> bool:
    if isinstance(node, Sequence) and len(node.steps) == 1:
        return False
    return _is_canonical(node, as_step=False)


@given(trees)
def test_normalize_is_canonical_idempotent_and_keeps_function_order(tree: Node) -> None:
    canon = normalize(tree)
    assert isinstance(canon, Sequence)
    assert _is_canonical(canon, as_step=False)
    assert normalize(canon) == canon
    assert [x.name for _, x in actions(canon)] == [x.name for _, x in actions(tree)]


def test_render_draws_the_tree() -> None:
    text = render(sequence("streaming", "decoder", parallel("recognition1", "recognition2")))
    assert text.splitlines() == [
        "sequence",
        "├── streaming",
        "├── decoder",
        "└── parallel",
        "    ├── recognition1",
        "    └── recognition2",
    ]
    assert "map" in render(map("x"))
