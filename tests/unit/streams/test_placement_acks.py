from prometheus_client import REGISTRY

from streams.events import ActivationRequest
from streams.placement.acks import Unacknowledged


def req(activation_id: str) -> ActivationRequest:
    return ActivationRequest(activation_id, "guest", "f")


def gauge() -> float | None:
    return REGISTRY.get_sample_value("gleaner_placement_unacknowledged")


class Clock:
    now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_what_a_silent_invoker_owes_waits_marked_as_taken_back_oldest_first():
    u = Unacknowledged()
    for aid, inv in (("a", "i0"), ("b", "i1"), ("c", "i0"), ("d", "i0")):
        u.sent(inv, req(aid))
    u.acked("a")
    assert u.invokers() == {"i0", "i1"}
    assert u.take_back("i0") == 2 and u.invokers() == {"i1"}
    assert [(r.activation_id, r.redispatched_from) for r in u.pending()] == [("c", "i0"), ("d", "i0")]
    assert u.take_back("i0") == 0 and len(u) == 3  # still owed until sent again
    u.sent("i1", u.pending()[0])
    assert [r.activation_id for r in u.pending()] == ["d"] and u.invokers() == {"i1"}


def test_a_completion_that_comes_after_the_take_back_removes_it_before_it_is_sent_again():
    u = Unacknowledged()
    u.sent("i0", req("a"))
    u.take_back("i0")
    u.acked("a")  # i0 had finished it; its completion was still on its way
    assert u.pending() == [] and len(u) == 0


def test_an_activation_already_completed_is_not_noted_again():
    # A replayed invocation, or a re-send that raced its completion: the invoker skips the
    # duplicate and never answers, so a note would stay forever.
    u = Unacknowledged()
    u.sent("i0", req("a"))
    u.acked("a")
    assert not u.sent("i1", req("a")) and len(u) == 0 and u.completed("a")


def test_the_completed_ids_remembered_are_bounded():
    u = Unacknowledged(remember_done=2)
    for aid in "abc":
        u.acked(aid)
    assert not u.completed("a") and u.completed("b") and u.completed("c")


def test_entries_past_the_stale_age_are_forgotten():
    clock = Clock()
    u = Unacknowledged(stale_after_s=60, clock=clock)
    u.sent("i0", req("a"))
    clock.now += 50
    u.sent("i0", req("b"))
    clock.now += 20
    assert u.expire() == 1 and u.invokers() == {"i0"} and len(u) == 1


def test_the_record_is_bounded_oldest_forgotten_first():
    u = Unacknowledged(max_entries=2)
    for aid in "abc":
        u.sent("i0", req(aid))
    u.take_back("i0")
    assert [r.activation_id for r in u.pending()] == ["b", "c"]


def test_the_gauge_follows_the_count_and_returns_to_zero_after_a_burst():
    u = Unacknowledged()
    ids = [f"{i:032x}" for i in range(50)]
    for aid in ids:
        u.sent("i0", req(aid))
    assert gauge() == 50
    for aid in ids:
        u.acked(aid)
    assert gauge() == 0 and len(u) == 0
