"""Pre-warm along the DAG in the streams: which functions (pure), the hint the
composition stream sends, where placement forwards it, and the event's checks."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import orjson
import pytest

from composer import dsl
from composer.jsonio import to_json
from composer.stages import analyze
from gleaner.allocation import Allocation
from gleaner.couchdb import DAGS
from gleaner.errors import MalformedEvent
from gleaner.settings import Settings
from streams.composition.agent import CompositionAgent
from streams.composition.prewarm import hint_id_for, slots_per_stage, stage_functions
from streams.events import (
    ActivationCompleted,
    ActivationRequest,
    DagPlan,
    DagRequest,
    InvokerHealth,
    PrewarmFunction,
    PrewarmHint,
)
from streams.kafka.deadletter import DeadLetters
from streams.kafka.runner import ConsumeRunner, RunnerConfig
from streams.kafka.signing import Signer
from streams.kafka.testing import MemorySink, MemorySource
from streams.placement.agent import InvokerTable, PlacementAgent
from streams.placement.policies import GreedyJSQ, HashPlacement, InvokerView, RoundRobin
from streams.placement.prewarm import prewarm_target, route_hint
from tests.unit.fakes import MemoryCouch, MemoryRedis

REQUEST = "e" * 32
HARVEST = Allocation(0.5, 192, "harvest")


def none(stage: int, index: int) -> Allocation | None:
    return None


def names(functions: tuple[PrewarmFunction, ...]) -> dict[str, int]:
    return {f.action: f.count for f in functions}


# --- which functions, per stage (pure) -----------------------------------------------------------


def per_stage(
    tree: dsl.Node, allocation_of: Any = none, planned: Counter[int] | None = None
) -> list[dict[str, int]]:
    """Each later stage's functions and counts, as hinted when the stage is due."""
    stages = analyze(tree).stages
    return [
        names(stage_functions(stages, j, allocation_of, planned or Counter())) for j in range(1, len(stages))
    ]


def test_each_later_stage_names_its_own_functions() -> None:
    stages = analyze(dsl.sequence("a", "b", "c")).stages
    assert [f.stage for f in stage_functions(stages, 2, none, Counter())] == [2]
    assert per_stage(dsl.sequence("a", "b", "c")) == [{"b": 1}, {"c": 1}]


def test_a_parallel_stage_asks_for_one_container_per_branch_running_the_action() -> None:
    assert per_stage(dsl.sequence("a", dsl.parallel("b", "b", "c"), "d")) == [{"b": 2, "c": 1}, {"d": 1}]


def test_an_action_of_the_stage_before_counts_its_containers_as_free_again() -> None:
    assert per_stage(dsl.sequence("a", dsl.parallel("a", "a"))) == [{"a": 1}]
    assert per_stage(dsl.sequence("a", "a", "b")) == [{}, {"b": 1}]


def test_a_map_is_as_wide_as_its_plan_else_one_per_body_function() -> None:
    tree = dsl.sequence("split", dsl.map("work"))
    assert per_stage(tree) == [{"work": 1}]
    planned = slots_per_stage([(0, 0), (1, 0), (1, 1), (1, 2)])
    assert planned == Counter({0: 1, 1: 3})
    assert per_stage(tree, none, planned) == [{"work": 3}]


def test_each_function_carries_its_planned_allocation() -> None:
    def plan(stage: int, index: int) -> Allocation | None:
        return HARVEST if (stage, index) == (1, 0) else None

    stages = analyze(dsl.sequence("a", "b", "c")).stages
    (b,) = stage_functions(stages, 1, plan, Counter())
    (c,) = stage_functions(stages, 2, plan, Counter())
    assert (b.action, b.allocation) == ("b", HARVEST)
    assert (c.action, c.allocation) == ("c", None)


# --- the event --------------------------------------------------------------------------------


def hint(*functions: PrewarmFunction, composition: str | None = f"{REQUEST}:root") -> PrewarmHint:
    return PrewarmHint(REQUEST, "guest", functions, composition, submitted_ms=1)


def test_a_hint_survives_the_wire() -> None:
    sent = hint(PrewarmFunction("b", 2, 1, HARVEST), PrewarmFunction("c"))
    assert PrewarmHint.from_dict(orjson.loads(sent.to_bytes())) == sent


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"hint_id": "nope"}, "hint_id must be 32 lowercase hex"),
        ({"functions": []}, "field 'functions' is empty"),
        ({"functions": ["b"]}, "functions[0]': a pre-warm function must be an object"),
        ({"functions": [{"action": "b", "count": 0}]}, "field 'count' must be 1..64"),
        ({"functions": [{"action": "../x"}]}, "not a valid entity name"),
        ({"functions": [{"action": "b", "allocation": {"cpu": -1, "memory": 1}}]}, "field 'allocation'"),
        ({"type": "activation.request"}, "expected type 'prewarm.hint'"),
    ],
)
def test_a_bad_hint_says_what_is_wrong(change: dict[str, Any], why: str) -> None:
    data = {**hint(PrewarmFunction("b")).to_dict(), **change}
    with pytest.raises(MalformedEvent, match=re.escape(why)):
        PrewarmHint.from_dict(data)


# --- the composition stream sends it ---------------------------------------------------------------

SETTINGS = Settings()


def compose(settings: Settings = SETTINGS) -> tuple[ConsumeRunner, MemorySource, MemorySink]:
    source, sink, couch = MemorySource(), MemorySink(), MemoryCouch()
    tree = to_json(dsl.sequence("a", "b", "c"))
    couch.put(DAGS, {"_id": "guest/three", "composition": tree, "version": "0.0.1"})
    agent = CompositionAgent(settings.composition, sink, MemoryRedis(), couch, partitions=1)  # type: ignore[arg-type]
    config = RunnerConfig(commit_interval_s=0, backoff_initial_s=0, backoff_max_s=0)
    return (
        ConsumeRunner("composition", source, sink, DeadLetters(settings, sink), agent, config),
        source,
        sink,
    )


def plan_of(allocations: dict[tuple[int, int], Allocation] | None = None, profile: bool = False) -> bytes:
    req = DagRequest(REQUEST, "guest", "three", {}, profile=profile)
    return DagPlan(request=req.to_dict(), harvest=bool(allocations), allocations=allocations or {}).to_bytes()


def completion(activation_id: str, duration: int = 0, init_ms: int | None = None) -> bytes:
    notes = [] if init_ms is None else [{"key": "initTime", "value": init_ms}]
    record = {
        "activationId": activation_id,
        "namespace": "guest",
        "duration": duration,
        "annotations": notes,
        "response": {"statusCode": 0, "success": True, "result": {}},
    }
    return ActivationCompleted(activation_id, "guest", "f", "i0", record, caused_by=REQUEST).to_bytes()


def hints(sink: MemorySink) -> list[PrewarmHint]:
    return [PrewarmHint.from_dict(h) for h in sink.on(SETTINGS.prewarm_topic)]


def test_a_started_request_hints_its_next_stage_and_each_stage_hints_the_one_after() -> None:
    runner, source, sink = compose()
    source.push(SETTINGS.dag_plans_topic, plan_of({(1, 0): HARVEST}))
    runner.run_once()
    (got,) = hints(sink)
    assert got.hint_id == hint_id_for(REQUEST, 1) and got.composition == f"{REQUEST}:root"
    assert [(f.action, f.stage, f.allocation) for f in got.functions] == [("b", 1, HARVEST)]
    assert got.delay_ms == 0  # nothing known of the stages yet: no reason to wait
    (first,) = sink.on(SETTINGS.invocations_topic)
    assert first["action"] == "a"  # stage 1 runs at once

    source.push(SETTINGS.completed_topic, completion(first["activation_id"]))
    runner.run_once()
    assert [(h.hint_id, [f.action for f in h.functions]) for h in hints(sink)][1:] == [
        (hint_id_for(REQUEST, 2), ["c"])
    ]
    source.push(SETTINGS.completed_topic, completion(first["activation_id"]))  # a duplicate
    second = sink.on(SETTINGS.invocations_topic)[1]
    source.push(SETTINGS.completed_topic, completion(second["activation_id"]))
    runner.run_once()
    runner.run_once()
    assert len(hints(sink)) == 2  # the last stage hints nothing, a duplicate completion neither


def test_a_profiling_run_is_never_pre_warmed() -> None:
    """Its functions run at the invoker's maximum: pre-warm would evict its own containers."""
    runner, source, sink = compose(Settings(prewarm_lookahead=5))
    source.push(SETTINGS.dag_plans_topic, plan_of(profile=True))
    runner.run_once()
    (first,) = sink.on(SETTINGS.invocations_topic)
    source.push(SETTINGS.completed_topic, completion(first["activation_id"]))
    runner.run_once()
    assert len(sink.on(SETTINGS.invocations_topic)) == 2 and hints(sink) == []


def test_a_long_lookahead_hints_every_later_stage_when_the_request_starts() -> None:
    runner, source, sink = compose(Settings(prewarm_lookahead=5))
    source.push(SETTINGS.dag_plans_topic, plan_of())
    runner.run_once()
    assert [(h.hint_id, h.functions[0].action) for h in hints(sink)] == [
        (hint_id_for(REQUEST, 1), "b"),
        (hint_id_for(REQUEST, 2), "c"),
    ]


def test_stages_seen_to_be_short_are_hinted_early_and_long_ones_delay_the_hint() -> None:
    runner, source, sink = compose()
    # An earlier request of the DAG: a 1 s cold start, then a works 5 s, b and c 10 ms.
    source.push(SETTINGS.dag_plans_topic, plan_of())
    runner.run_once()
    for action, duration, init in (("a", 6000, 1000), ("b", 10, None), ("c", 10, None)):
        (invoked,) = [e for e in sink.on(SETTINGS.invocations_topic) if e["action"] == action]
        source.push(SETTINGS.completed_topic, completion(invoked["activation_id"], duration, init))
        runner.run_once()
    assert len(sink.on(SETTINGS.dag_results_topic)) == 1

    later = "f" * 32
    req = DagRequest(later, "guest", "three", {})
    source.push(SETTINGS.dag_plans_topic, DagPlan(request=req.to_dict(), harvest=False).to_bytes())
    runner.run_once()
    fresh = [h for h in hints(sink) if h.composition == f"{later}:root"]
    # b is 10 ms: at its start c's hint would come too late, so c is hinted with b, when a starts;
    # both may wait until a's 5 s run is 1.5 cold starts (1.5 s) from its end.
    assert [(h.hint_id, h.functions[0].action) for h in fresh] == [
        (hint_id_for(later, 1), "b"),
        (hint_id_for(later, 2), "c"),
    ]
    assert [h.delay_ms for h in fresh] == [3500, 3510]


def test_switched_off_no_hint_and_a_duplicate_plan_sends_none_again() -> None:
    runner, source, sink = compose(Settings(prewarm=False))
    source.push(SETTINGS.dag_plans_topic, plan_of())
    runner.run_once()
    assert sink.on(SETTINGS.prewarm_topic) == []
    runner, source, sink = compose()
    source.push(SETTINGS.dag_plans_topic, plan_of())
    source.push(SETTINGS.dag_plans_topic, plan_of())
    runner.run_once()
    runner.run_once()
    assert len(sink.on(SETTINGS.prewarm_topic)) == 1


# --- placement forwards it ---------------------------------------------------------------------------

UP = [InvokerView("i0", True, 3), InvokerView("i1", True, 0), InvokerView("i2", False, 0)]


def test_a_composition_aware_policy_sends_it_where_the_request_runs_and_pins_it_there() -> None:
    policy = GreedyJSQ()
    assert prewarm_target(policy, UP, "r:root", "b") == "i1"  # shortest healthy queue
    # The request's own invocation follows: the hint and its first stage share an invoker.
    assert policy.choose([InvokerView("i0", True, 0), *UP[1:]], "r:root", "a") == "i1"
    policy.cache["s:root"] = "i0"
    assert prewarm_target(policy, UP, "s:root", "b") == "i0"


def test_hash_placement_is_asked_per_action_and_round_robin_keeps_its_turn() -> None:
    hashed = HashPlacement()
    assert prewarm_target(hashed, UP, None, "b") == hashed.choose(UP, None, "b")
    rr = RoundRobin()
    assert prewarm_target(rr, UP, None, "b") == "i1"
    assert rr._next == 0


def test_a_hint_is_split_per_invoker_and_dropped_without_one() -> None:
    policy = HashPlacement()
    many = [InvokerView(f"i{k}", True, 0) for k in range(8)]
    functions = tuple(PrewarmFunction(a) for a in "bcdefgh")
    routed = route_hint(hint(*functions, composition=None), policy, many)
    assert sorted(f.action for part in routed.values() for f in part.functions) == list("bcdefgh")
    assert all(part.hint_id == REQUEST for part in routed.values())
    assert route_hint(hint(*functions), policy, [InvokerView("i0", False, 0)]) == {}


SIGNER = Signer(b"s" * 32)


def place() -> tuple[ConsumeRunner, MemorySource, MemorySink]:
    source, sink = MemorySource(), MemorySink()
    table = InvokerTable(unhealthy_after_s=1e9)
    table.update(InvokerHealth("i0", "inc", 0, 2.0, 4096, 2.0, 4096, 0, 0))
    agent = PlacementAgent(SETTINGS, sink, table, "greedy-jsq", signer=SIGNER, authenticate=lambda c: None)
    config = RunnerConfig(commit_interval_s=0, signer=SIGNER, tenant_entry=True)
    return ConsumeRunner("placement", source, sink, DeadLetters(SETTINGS, sink), agent, config), source, sink


def test_placement_forwards_the_platforms_hint_to_the_invokers_topic_and_dispatches_nothing() -> None:
    runner, source, sink = place()
    source.push(SETTINGS.prewarm_topic, hint(PrewarmFunction("b")).to_bytes(), signer=SIGNER)
    runner.run_once()
    (sent,) = sink.on(SETTINGS.invoker_topic("i0"))
    assert PrewarmHint.from_dict(sent).functions == (PrewarmFunction("b"),)
    assert source.committed((SETTINGS.prewarm_topic, 0)) == 1


@pytest.mark.parametrize(
    ("raw", "signed", "why"),
    [
        (hint(PrewarmFunction("b")).to_bytes(), False, "a pre-warm hint is the platform's own"),
        (b'{"type": "prewarm.hint", "hint_id": "x"}', True, "hint_id must be 32 lowercase hex"),
        (
            ActivationRequest("a" * 32, "guest", "b").to_bytes(),
            True,
            "expected type 'prewarm.hint'",
        ),
    ],
)
def test_a_tenants_or_a_malformed_hint_is_dead_lettered_with_why(raw: bytes, signed: bool, why: str) -> None:
    runner, source, sink = place()
    source.push(SETTINGS.prewarm_topic, raw, signer=SIGNER if signed else None)
    runner.run_once()
    assert sink.on(SETTINGS.invoker_topic("i0")) == []
    (letter,) = sink.on(SETTINGS.deadletter_topic)
    assert why in letter["reason"]
