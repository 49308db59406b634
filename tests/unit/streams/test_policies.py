from streams.placement.policies import GreedyJSQ, HashPlacement, InvokerView, JoinShortestQueue, RoundRobin


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
    for policy in (GreedyJSQ(), JoinShortestQueue(), RoundRobin(), HashPlacement()):
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
