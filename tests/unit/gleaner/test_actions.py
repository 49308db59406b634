import base64
import io
import zipfile

import pytest

from gleaner.actions import action_doc, action_view, decode_memory, merged_params, resolve_limits
from gleaner.errors import BadRequest, InvalidLimits
from gleaner.settings import Settings

S = Settings(cpu_max=4.0).limits
CODE = "def main(args):\n    return {'ok': True}\n"


def test_defaults_and_explicit_limits():
    limits = resolve_limits(None, S)
    assert (limits.cpu, limits.memory_mb, limits.timeout_ms) == (1.0, 256, 60000)
    limits = resolve_limits({"cpu": 0.5, "memory": 512, "timeout": 1000}, S)
    assert (limits.cpu, limits.memory_mb, limits.timeout_ms) == (0.5, 512, 1000)


def test_thesis_encoding_in_memory_is_decoded():
    # (cpu - 1) * 8192 + memory: 3 cores and 1024 MB
    encoded = 2 * 8192 + 1024
    assert decode_memory(encoded, 8192) == (3.0, 1024)
    assert decode_memory(8192 + 8192, 8192) == (2.0, 8192)
    limits = resolve_limits({"memory": encoded}, S)
    assert (limits.cpu, limits.memory_mb) == (3.0, 1024)


@pytest.mark.parametrize(
    "raw",
    [
        {"cpu": 0.1},
        {"cpu": 64},
        {"memory": 64},
        {"timeout": 10},
        {"timeout": 10**9},
        {"memory": "lots"},
        {"memory": True},
        {"memory": 300.5},
        [1],
    ],
)
def test_limits_outside_the_allowed_range_are_rejected(raw):
    with pytest.raises(InvalidLimits):
        resolve_limits(raw, S)


def test_action_doc_create_and_update_bumps_version_and_keeps_fields():
    doc = action_doc(
        "guest",
        "hello",
        {"exec": {"kind": "python:3", "code": CODE}, "parameters": [{"key": "a", "value": 1}]},
        S,
        None,
        1,
    )
    assert doc["_id"] == "guest/hello" and doc["version"] == "0.0.1" and doc["exec"]["binary"] is False
    doc["_rev"] = "1-x"
    updated = action_doc("guest", "hello", {"limits": {"memory": 512}}, S, doc, 2)
    assert updated["version"] == "0.0.2" and updated["exec"]["code"] == CODE
    assert updated["limits"]["memory"] == 512 and updated["parameters"] == doc["parameters"]
    assert updated["_rev"] == "1-x"
    view = action_view(updated, code=False)
    assert "code" not in view["exec"] and {"key": "exec", "value": "python:3"} in view["annotations"]
    assert merged_params(updated, {"b": 2}) == {"a": 1, "b": 2}


def _zip(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return base64.b64encode(buf.getvalue()).decode()


def test_zip_actions_are_detected_and_checked():
    doc = action_doc(
        "guest", "z", {"exec": {"kind": "python:3", "code": _zip({"__main__.py": CODE})}}, S, None, 1
    )
    assert doc["exec"]["binary"] is True
    with pytest.raises(BadRequest, match=r"__main__\.py"):
        action_doc("guest", "z", {"exec": {"code": _zip({"other.py": CODE}), "binary": True}}, S, None, 1)
    with pytest.raises(BadRequest, match="not a base64 zip"):
        action_doc("guest", "z", {"exec": {"code": "!!!", "binary": True}}, S, None, 1)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"exec": {"kind": "nodejs:20", "code": CODE}}, "not supported"),
        ({"exec": {"kind": "python:3"}}, "non-empty string"),
        ({"exec": {"code": CODE, "main": "not an identifier"}}, "identifier"),
        ({}, "exec undefined"),
        ([], "malformed"),
        ({"exec": {"code": CODE}, "parameters": {"a": 1}}, "list of"),
    ],
)
def test_bad_action_bodies(body, reason):
    with pytest.raises(BadRequest, match=reason):
        action_doc("guest", "a", body, S, None, 1)


def test_bad_names():
    with pytest.raises(BadRequest):
        action_doc("guest", "../x", {"exec": {"code": CODE}}, S, None, 1)


def test_one_ascii_name_rule_for_rest_and_kafka():
    from gleaner.actions import is_entity_name

    assert is_entity_name("rel-x") and is_entity_name("a b.c@d")
    assert not is_entity_name("rel-é") and not is_entity_name("-lead") and not is_entity_name("x" * 257)
