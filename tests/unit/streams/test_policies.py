from streams.placement.policies import (
    PLACEMENT_POLICY_FACTORIES,
    GreedyJSQ,
    GreedyRoundRobin,
    HashPlacement,
    InvokerView,
    RoundRobin,
)


def inv(i, q, healthy=True):
    return InvokerView(id=i, healthy=healthy, queue_length=q)


def test_greedy_jsq_places_first_function_by_queue_then_follows_the_composition():
    p = GreedyJSQ()
    invokers = [inv("a", 3), inv("b", 1), inv("c", 2)]
    assert p.choose(invokers, "comp1", "f1") == "b"
    # b is now the busiest, but the composition stays with its invoker
    busy = [inv("a", 0), inv("b", 9), inv("c", 0)]
    assert p.choose(busy, "comp1", "f2") == "b"
    assert p.choose(busy, "comp2", "f1") == "a"


def test_greedy_jsq_moves_when_the_cached_invoker_is_unhealthy():
    p = GreedyJSQ()
    assert p.choose([inv("a", 0), inv("b", 5)], "c", "f") == "a"
    assert p.choose([inv("a", 0, healthy=False), inv("b", 5)], "c", "f") == "b"
    assert p.cache["c"] == "b"


def test_no_healthy_invoker_gives_none():
    for policy in (factory() for factory in PLACEMENT_POLICY_FACTORIES.values()):
        assert policy.choose([inv("a", 0, healthy=False)], "c", "f") is None
        assert policy.choose([], None, "f") is None


def test_hash_placement_is_stable_and_probes_past_unhealthy():
    p = HashPlacement()
    invokers = [inv(f"i{k}", 0) for k in range(5)]
    home = p.choose(invokers, None, "guest/hello")
    assert home == p.choose(invokers, None, "guest/hello")
    without_home = [inv(i.id, 0, healthy=i.id != home) for i in invokers]
    assert p.choose(without_home, None, "guest/hello") not in (None, home)


def test_round_robin_cycles_over_healthy():
    p = RoundRobin()
    seen = {p.choose([inv("a", 0), inv("b", 0)], None, "f") for _ in range(4)}
    assert seen == {"a", "b"}


def test_greedy_round_robin_takes_turns_per_composition_not_per_function():
    p = GreedyRoundRobin()
    two = [inv("a", 0), inv("b", 0)]
    first = p.choose(two, "c1", "f1")
    # every later function of c1 follows its first, however many there are
    assert [p.choose(two, "c1", f) for f in ("f2", "f3", "f4")] == [first] * 3
    second = p.choose(two, "c2", "f1")
    assert {first, second} == {"a", "b"}
    assert p.choose(two, "c3", "f1") == first  # the turn came back round


def test_greedy_round_robin_ignores_queue_lengths():
    p = GreedyRoundRobin()
    skewed = [inv("a", 0), inv("b", 50)]
    assert {p.choose(skewed, f"c{k}", "f") for k in range(2)} == {"a", "b"}


def test_greedy_round_robin_moves_a_composition_off_an_unhealthy_invoker():
    p = GreedyRoundRobin()
    chosen = p.choose([inv("a", 0), inv("b", 0)], "c", "f1")
    other = "b" if chosen == "a" else "a"
    moved = [inv(chosen, 0, healthy=False), inv(other, 0)]
    assert p.choose(moved, "c", "f2") == other
    assert p.cache["c"] == other
    assert p.choose([inv("a", 0), inv("b", 0)], "c", "f3") == other  # stays where it moved


def test_functions_without_a_composition_go_round_robin():
    p = GreedyRoundRobin()
    two = [inv("a", 0), inv("b", 0)]
    assert {p.choose(two, None, "f") for _ in range(2)} == {"a", "b"}
    assert p.cache == {}


def test_the_composition_cache_drops_its_oldest_entry_when_full():
    p = GreedyJSQ(max_cached=2)
    one = [inv("a", 0)]
    for c in ("c1", "c2", "c3"):
        p.choose(one, c, "f")
    assert list(p.cache) == ["c2", "c3"]


def test_every_policy_name_resolves():
    names = {"greedy-jsq", "jsq", "round-robin", "greedy-round-robin", "hash"}
    assert set(PLACEMENT_POLICY_FACTORIES) == names
    assert isinstance(PLACEMENT_POLICY_FACTORIES["greedy-round-robin"](), GreedyRoundRobin)
