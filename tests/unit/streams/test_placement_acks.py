from streams.events import ActivationRequest
from streams.placement.acks import Unacknowledged


def req(activation_id: str) -> ActivationRequest:
    return ActivationRequest(activation_id, "guest", "f")


def test_what_an_invoker_owes_is_taken_back_once_oldest_first():
    u = Unacknowledged()
    for aid, inv in (("a", "i0"), ("b", "i1"), ("c", "i0")):
        u.sent(inv, req(aid))
    u.acked("a")
    assert u.invokers() == {"i0", "i1"}
    assert [r.activation_id for r in u.owed_by("i0")] == ["c"]
    assert u.owed_by("i0") == [] and len(u) == 1


def test_the_record_is_bounded_oldest_forgotten_first():
    u = Unacknowledged(max_entries=2)
    for aid in "abc":
        u.sent("i0", req(aid))
    assert [r.activation_id for r in u.owed_by("i0")] == ["b", "c"]
