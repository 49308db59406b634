"""Composer JSON: exact round trip of our own trees, every shape `compose` writes,
and a clear CompositionError (with where) for everything Gleaner cannot run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from composer import (
    CompositionError,
    dag_document,
    from_json,
    load_document,
    normalize,
    parallel,
    sequence,
    short_name,
    to_json,
)
from composer.errors import CompositionError as RootError
from composer.model import Action, Map, Node, Parallel, Sequence
from gleaner.errors import BadRequest, DagError, InvalidInput
from tests.unit.composer.test_dsl import trees

FIXTURES = Path(__file__).parent / "fixtures"
VIDEO = sequence("streaming", "decoder", parallel("recognition1", "recognition2"))
AES = sequence("split", parallel("aes1", "aes2", "aes3"), "merge")
ML = sequence("preprocess", parallel("train1", "train2", "train3", "train4"), "evaluate")


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_error_is_a_dag_error_not_an_http_one() -> None:
    assert CompositionError is RootError
    assert issubclass(CompositionError, DagError) and issubclass(CompositionError, InvalidInput)
    assert not issubclass(CompositionError, BadRequest)
    assert not CompositionError("x").transient  # the same DAG fails the same way again


def test_to_json_uses_composers_node_shape() -> None:
    assert to_json(VIDEO) == {
        "type": "sequence",
        "components": [
            {"type": "action", "name": "streaming"},
            {"type": "action", "name": "decoder"},
            {
                "type": "parallel",
                "components": [
                    {"type": "action", "name": "recognition1"},
                    {"type": "action", "name": "recognition2"},
                ],
            },
        ],
    }
    assert to_json(Map(Sequence((Action("a"), Action("b"))))) == {
        "type": "map",
        "components": [{"type": "action", "name": "a"}, {"type": "action", "name": "b"}],
    }


@given(trees)
def test_round_trip_is_exact(tree: Node) -> None:
    data = json.loads(json.dumps(to_json(tree)))
    assert from_json(data) == tree
    assert load_document(json.loads(json.dumps(dag_document(tree)))) == tree


def test_dag_document_shape() -> None:
    assert dag_document(VIDEO) == {"composition": to_json(VIDEO), "version": "gleaner/1"}
    assert load_document(fixture("gleaner_document_ml_pipeline.json")) == ML


def test_other_gleaner_document_versions_are_refused() -> None:
    with pytest.raises(CompositionError, match="gleaner/2"):
        load_document({"composition": to_json(VIDEO), "version": "gleaner/2"})


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("compose_0_11_bare_video_analytics.json", VIDEO),
        ("compose_0_12_video_analytics.json", VIDEO),
        ("compose_0_12_parallel_aes_inline_actions.json", AES),
        ("entity_vid.json", VIDEO),
        ("gleaner_document_ml_pipeline.json", ML),
        ("compose_0_4_array_form.json", sequence("hello", "bye")),
    ],
)
def test_composer_fixtures(name: str, expected: Node) -> None:
    assert from_json(fixture(name)) == expected


def test_entities_pick_the_last_conductor_and_inline_nested_compositions() -> None:
    tree = from_json(fixture("entities_ml_pipeline.json"))
    assert normalize(tree) == ML


def test_entities_with_one_conductor() -> None:
    entity = fixture("entity_vid.json")
    plain = {"name": "/_/decoder", "action": {"exec": {"kind": "python:3", "code": "def main(a): return a"}}}
    assert from_json([plain, entity]) == VIDEO


def test_lenient_shapes() -> None:
    tree = from_json(fixture("lenient_shapes.json"))
    assert tree == Sequence(
        (
            Action("streaming"),
            Sequence((Action("decoder"), Action("resize"))),
            Parallel((Action("recognition1"), Map(Sequence((Action("detect"), Action("label")))))),
            Sequence(()),
        )
    )
    assert normalize(tree).steps[:3] == (
        Action("streaming"),
        Action("decoder"),
        Action("resize"),
    )


def test_composition_node_is_its_inline_tree_or_a_reference() -> None:
    inline = {"type": "composition", "name": "/_/inner", "composition": to_json(AES)}
    assert from_json(inline) == AES
    assert from_json({"type": "composition", "name": "/_/inner"}) == Action("inner")


def test_composer_0_4_uncoded_entity() -> None:
    entity = {"name": "/_/vid", "action": {"exec": {"kind": "composition", "composition": to_json(VIDEO)}}}
    assert from_json(entity) == VIDEO


def test_only_ast() -> None:
    assert from_json({"ast": to_json(VIDEO), "version": "0.12.0"}) == VIDEO


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("decoder", "decoder"),
        ("/_/decoder", "decoder"),
        ("/guest/decoder", "decoder"),
        ("/guest/pkg/decoder", "decoder"),
        ("pkg/decoder", "decoder"),
        ("/guest/recognition 1", "recognition 1"),
    ],
)
def test_short_names(name: str, short: str) -> None:
    assert short_name(name) == short


@pytest.mark.parametrize("name", ["/_/", "/decoder", "a/b/c", "/a/b/c/d", "//x", "a//b"])
def test_malformed_qualified_names(name: str) -> None:
    with pytest.raises(CompositionError, match="namespace"):
        short_name(name)


# -- rejections -----------------------------------------------------------------
@pytest.mark.parametrize(
    "kind",
    ["if", "while", "dowhile", "try", "finally", "let", "mask", "literal", "value", "function", "retry",
     "repeat", "retain", "async", "dynamic", "merge", "if_nosave"],
)  # fmt: skip
def test_unsupported_combinators_are_named(kind: str) -> None:
    data = to_json(sequence("a", "b", "c"))
    data["components"][2] = {"type": kind, "components": [{"type": "action", "name": "x"}]}
    with pytest.raises(CompositionError) as info:
        from_json(data)
    message = str(info.value)
    assert f"'{kind}' combinator is not supported" in message
    assert message.startswith("composition.components[2]: ")
    assert "action, sequence" in message and "parallel" in message and "map" in message
    assert info.value.where == "composition.components[2]"


def test_lowered_composition_falls_back_to_the_ast_and_names_the_users_combinator() -> None:
    with pytest.raises(CompositionError) as info:
        from_json(fixture("compose_0_12_if_rejected.json"))
    assert info.value.where == "ast"
    assert "'if' combinator" in str(info.value)


def test_unknown_combinator() -> None:
    with pytest.raises(CompositionError, match=r"composition\.components\[0\]: unknown combinator 'fork'"):
        from_json({"type": "sequence", "components": [{"type": "fork"}]})


def test_handwritten_conductor_is_refused() -> None:
    with pytest.raises(CompositionError, match="hand-written conductor") as info:
        from_json(fixture("entity_handwritten_conductor.json"))
    assert info.value.where == "action.annotations[0].value"


def test_entity_without_conductor() -> None:
    with pytest.raises(CompositionError, match="not a composition"):
        from_json({"name": "/_/decoder", "action": {"exec": {"kind": "python:3", "code": ""}}})
    with pytest.raises(CompositionError, match="none of the entities"):
        from_json([{"name": "/_/decoder", "action": {"exec": {"kind": "python:3", "code": ""}}}])


def test_errors_inside_entity_lists_carry_the_entity_index() -> None:
    bad = fixture("entity_vid.json")
    bad["action"]["annotations"][0]["value"]["components"][1] = {"type": "action"}
    with pytest.raises(CompositionError) as info:
        from_json([{"name": "/_/x", "action": {"exec": {}}}, bad])
    assert info.value.where == "[1].action.annotations[0].value.components[1]"


@pytest.mark.parametrize(
    ("data", "where", "reason"),
    [
        ({"type": "sequence", "components": {"a": 1}}, "composition.components", "must be a list"),
        ({"type": "parallel"}, "composition.components", "got nothing"),
        ({"type": "seq", "components": [{"type": "action"}]}, "composition.components[0]", "non-empty"),
        ({"type": "sequence", "components": [{"type": "action", "name": ""}]}, "composition.components[0]",
         "non-empty 'name'"),
        ({"type": "sequence", "components": [{"type": "action", "name": 7}]}, "composition.components[0]",
         "non-empty 'name'"),
        ({"type": "sequence", "components": ["decoder"]}, "composition.components[0]", "got a string"),
        ({"type": "map", "components": [None]}, "composition.components[0]", "got null"),
        ({"type": "parallel", "components": [{"name": "x"}]}, "composition.components[0]", "needs a 'type'"),
        ({"type": 3}, "composition", "'type' must be a string"),
        ({"composition": {"type": "seq", "components": [{"type": "action", "name": "/a/b/c/d"}]}},
         "composition.components[0]", "[/namespace/][package/]action"),
    ],
)  # fmt: skip
def test_malformed_shapes_name_their_json_path(data: Any, where: str, reason: str) -> None:
    with pytest.raises(CompositionError) as info:
        from_json(data)
    assert info.value.where == where
    assert reason in info.value.reason


@pytest.mark.parametrize("data", [None, 3, "sequence", True])
def test_non_objects_are_refused(data: Any) -> None:
    with pytest.raises(CompositionError, match="expected a composition"):
        from_json(data)


def test_unrecognised_object_lists_its_keys() -> None:
    with pytest.raises(CompositionError, match="keys: foo, name"):
        from_json({"name": "x", "foo": 1})
