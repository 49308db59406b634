"""Stage analysis on the thesis's three workloads (Table 3.1) and nested shapes."""

from __future__ import annotations

import pytest

from composer import FunctionSlot, analyze, map, parallel, sequence, slot_for
from composer.model import Action, Sequence, actions, at

VIDEO = sequence("streaming", "decoder", parallel("recognition1", "recognition2"))
AES = sequence("split", parallel("aes1", "aes2", "aes3"), "merge")
ML = sequence("preprocess", parallel("train1", "train2", "train3", "train4"), "evaluate")


@pytest.mark.parametrize(
    ("dag", "functions", "depth", "width", "parallel_stages"),
    [(VIDEO, 4, 3, 2, (2,)), (AES, 5, 3, 3, (1,)), (ML, 6, 3, 4, (1,))],
)
def test_thesis_table_3_1(
    dag: Sequence, functions: int, depth: int, width: int, parallel_stages: tuple[int]
) -> None:
    a = analyze(dag)
    assert (len(a.functions), a.depth, a.width, a.parallel_stages) == (
        functions,
        depth,
        width,
        parallel_stages,
    )


def test_video_analytics_slots() -> None:
    a = analyze(VIDEO)
    assert [s.kind for s in a.stages] == ["action", "action", "parallel"]
    assert [s.width for s in a.stages] == [1, 1, 2]
    assert a.functions == (
        FunctionSlot((0,), "streaming", 0, 0, None),
        FunctionSlot((1,), "decoder", 1, 0, None),
        FunctionSlot((2, 0), "recognition1", 2, 0, 0),
        FunctionSlot((2, 1), "recognition2", 2, 1, 1),
    )
    assert slot_for(a, (2, 1)).action == "recognition2"
    with pytest.raises(KeyError):
        slot_for(a, (2,))


def test_nested_parallel_in_sequence_in_parallel() -> None:
    dag = sequence("start", parallel("a", sequence("b", parallel("c", "d")), "e"), "end")
    a = analyze(dag)
    assert a.depth == 3 and a.width == 3 and a.parallel_stages == (1,)
    stage = a.stages[1]
    assert [(s.action, s.index, s.branch, s.path) for s in stage.slots] == [
        ("a", 0, 0, (1, 0)),
        ("b", 1, 1, (1, 1, 0)),
        ("c", 2, 1, (1, 1, 1, 0)),
        ("d", 3, 1, (1, 1, 1, 1)),
        ("e", 4, 2, (1, 2)),
    ]


def test_map_stage() -> None:
    a = analyze(sequence("split", map("detect", "label"), "join"))
    stage = a.stages[1]
    assert stage.kind == "map" and stage.width == 1
    assert [(s.action, s.index, s.branch, s.path) for s in stage.slots] == [
        ("detect", 0, 0, (1, 0, 0)),
        ("label", 1, 0, (1, 0, 1)),
    ]
    assert a.parallel_stages == (1,)
    assert a.width == 1


def test_paths_are_paths_in_the_normalized_tree() -> None:
    raw = Sequence((Sequence((Action("a"), Sequence((Action("b"),)))), parallel(sequence("c"), "d")))
    a = analyze(raw)
    assert a.depth == 3
    from composer import normalize

    canon = normalize(raw)
    for slot in a.functions:
        node = at(canon, slot.path)
        assert isinstance(node, Action) and node.name == slot.action
    assert [s.path for s in a.functions] == [p for p, _ in actions(canon)]


def test_a_lone_action() -> None:
    a = analyze(Action("only"))
    assert (a.depth, a.width, a.parallel_stages) == (1, 1, ())
    assert a.functions == (FunctionSlot((0,), "only", 0, 0, None),)
