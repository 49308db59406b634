from composer.model import Action, Map, Parallel, Sequence
from composer.statemachine import Finish, Invoke, Machine, RequestState

VIDEO = Sequence((Action("streaming"), Action("decoder"), Parallel((Action("rec1"), Action("rec2")))))


def new_state(deadline=10_000):
    return RequestState(request_id="r" * 32, namespace="guest", dag="vid", started_ms=0, deadline_ms=deadline)


def machine(root):
    return Machine(root, resolve=lambda v: v)


def test_runs_stage_by_stage_and_fans_in_in_branch_order():
    m, s = machine(VIDEO), new_state()
    [first] = m.start(s, {"video": "v"})
    assert isinstance(first, Invoke) and first.action == "streaming" and first.stage == 0
    [second] = m.complete(s, first.activation_id, 0, {"stream": 1}, 10)
    assert second.action == "decoder" and second.params == {"stream": 1} and second.stage == 1
    fan = m.complete(s, second.activation_id, 0, {"frames": 30}, 20)
    assert [c.action for c in fan] == ["rec1", "rec2"]
    assert all(c.params == {"frames": 30} and c.stage == 2 for c in fan)
    assert [c.index for c in fan] == [0, 1]
    assert fan[0].composition != fan[1].composition  # one child composition per branch
    assert m.complete(s, fan[1].activation_id, 0, {"n": 2}, 30) == []  # waits for the other branch
    [done] = m.complete(s, fan[0].activation_id, 0, {"n": 1}, 40)
    assert done == Finish("success", {"value": [{"n": 1}, {"n": 2}]})
    assert [st["index"] for st in s.stages] == [0, 1, 2] and s.stages[2]["end"] == 40
    assert s.order == [first.activation_id, second.activation_id, fan[0].activation_id, fan[1].activation_id]


def test_duplicate_completion_advances_nothing():
    m, s = machine(VIDEO), new_state()
    [first] = m.start(s, {})
    assert len(m.complete(s, first.activation_id, 0, {}, 1)) == 1
    assert m.complete(s, first.activation_id, 0, {}, 2) == []
    assert m.complete(s, "f" * 32, 0, {}, 2) == []  # unknown activation


def test_a_failing_function_fails_the_request_and_nothing_more_runs():
    m, s = machine(VIDEO), new_state()
    [first] = m.start(s, {})
    [fail] = m.complete(s, first.activation_id, 2, {"error": "boom"}, 5)
    assert fail.status == "failed" and fail.result["error"] == "boom" and fail.result["action"] == "streaming"
    assert s.status == "failed"
    assert m.complete(s, first.activation_id, 0, {}, 6) == []


def test_timeout_fails_a_hanging_request_once():
    m, s = machine(VIDEO), new_state(deadline=100)
    m.start(s, {})
    assert m.expire(s, 50) == []
    [t] = m.expire(s, 150)
    assert t.status == "timeout" and t.result["pending"] == ["streaming"]
    assert m.expire(s, 200) == []


def test_ids_are_deterministic_for_replay():
    a, b = new_state(), new_state()
    assert machine(VIDEO).start(a, {}) == machine(VIDEO).start(b, {})


def test_map_fans_out_per_element_and_nested_sequences_in_branches():
    root = Sequence((Map(Sequence((Action("f"), Action("g")))), Action("h")))
    m, s = machine(root), new_state()
    fs = m.start(s, {"value": [1, {"x": 2}]})
    assert [c.action for c in fs] == ["f", "f"] and fs[0].params == {"value": 1} and fs[1].params == {"x": 2}
    assert [c.index for c in fs] == [0, 2]  # element * functions-per-branch + position
    [g0] = m.complete(s, fs[0].activation_id, 0, {"a": 1}, 1)
    assert g0.action == "g" and g0.index == 1
    [g1] = m.complete(s, fs[1].activation_id, 0, {"a": 2}, 2)
    assert m.complete(s, g0.activation_id, 0, {"b": 1}, 3) == []
    [h] = m.complete(s, g1.activation_id, 0, {"b": 2}, 4)
    assert h.action == "h" and h.params == {"value": [{"b": 1}, {"b": 2}]} and h.stage == 1


def test_map_needs_a_list_and_respects_the_width_limit():
    root = Sequence((Map(Action("f")),))
    [bad] = machine(root).start(new_state(), {"value": 3})
    assert bad.status == "failed" and "list" in bad.result["error"]
    wide = Machine(root, resolve=lambda v: v, max_map_width=2)
    [too_wide] = wide.start(new_state(), {"value": [1, 2, 3]})
    assert "limit of 2" in too_wide.result["error"]
    [empty] = machine(root).start(new_state(), {"value": []})
    assert empty == Finish("success", {"value": []})


def test_state_survives_a_round_trip_through_json():
    import orjson

    m, s = machine(VIDEO), new_state()
    [first] = m.start(s, {})
    again = RequestState.from_dict(orjson.loads(orjson.dumps(s.to_dict())))
    [second] = m.complete(again, first.activation_id, 0, {"ok": 1}, 3)
    assert second.action == "decoder"
