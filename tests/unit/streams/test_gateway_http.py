from streams.gateway.http import json_depth


def test_json_depth_counts_levels_without_recursion():
    deep: object = 1
    for _ in range(5000):
        deep = [deep]
    assert json_depth(deep) == 5000
    assert json_depth({"a": [1, {"b": 2}]}) == 3 and json_depth(7) == 0
