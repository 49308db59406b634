from invoker_agent.dedupe import ActivationClaims, Claim, Holder, RecentCompletions
from tests.unit.fakes import MemoryRedis

AID = "a" * 32


def claims(redis: MemoryRedis, invoker: str, incarnation: str) -> ActivationClaims:
    return ActivationClaims(redis, invoker, incarnation)  # type: ignore[arg-type]


def test_a_second_delivery_is_a_duplicate():
    redis = MemoryRedis()
    me = claims(redis, "i0", "one")
    assert me.claim(AID) is Claim.RUN and me.claim(AID) is Claim.DUPLICATE


def test_a_restarted_invoker_takes_over_its_own_unfinished_claim_but_not_a_finished_one():
    redis = MemoryRedis()
    claims(redis, "i0", "old").claim(AID)
    new = claims(redis, "i0", "new")
    assert new.claim(AID) is Claim.TAKEOVER
    assert new.previous_holder(AID) == Holder("i0", "old") and new.previous_holder(AID) is None
    new.finished([AID])
    assert claims(redis, "i0", "newer").claim(AID) is Claim.FINISHED


def test_work_taken_back_from_a_silent_invoker_runs_elsewhere_once_and_the_late_original_is_skipped():
    redis = MemoryRedis()
    assert claims(redis, "i0", "x").claim(AID) is Claim.RUN  # i0 started it, then went silent
    assert claims(redis, "i1", "y").claim(AID) is Claim.DUPLICATE  # without the note: not i1's to take
    i1 = claims(redis, "i1", "y")
    assert i1.claim(AID, takeover_from="i0") is Claim.TAKEOVER and i1.previous_holder(AID) == Holder(
        "i0", "x"
    )
    assert claims(redis, "i0", "restarted").claim(AID) is Claim.DUPLICATE  # i0 back: i1 holds it


def test_a_finished_activation_is_not_taken_over_even_when_re_dispatched():
    redis = MemoryRedis()
    i0 = claims(redis, "i0", "x")
    i0.claim(AID)
    i0.finished([AID])
    assert claims(redis, "i1", "y").claim(AID, takeover_from="i0") is Claim.FINISHED


def test_redis_down_means_run_it():
    redis = MemoryRedis()
    redis.down = 1
    assert claims(redis, "i0", "x").claim(AID) is Claim.RUN


def test_work_sent_back_to_the_live_incarnation_still_running_it_is_not_taken_over():
    # Placement thought i0 silent and re-sent its work; it came back to i0 itself.
    redis = MemoryRedis()
    me = claims(redis, "i0", "live")
    assert me.claim(AID) is Claim.RUN
    assert me.claim(AID, takeover_from="i0") is Claim.DUPLICATE
    assert me.previous_holder(AID) is None
    assert redis.values["gleaner:activation:" + AID] == b"running:i0:live"


def test_work_sent_back_to_a_restarted_invoker_is_still_taken_over():
    redis = MemoryRedis()
    claims(redis, "i0", "crashed").claim(AID)
    new = claims(redis, "i0", "new")
    assert new.claim(AID, takeover_from="i0") is Claim.TAKEOVER
    assert new.previous_holder(AID) == Holder("i0", "crashed")


def test_a_claim_says_whether_the_duplicate_is_of_a_running_or_a_finished_activation():
    redis = MemoryRedis()
    me = claims(redis, "i0", "x")
    assert me.claim(AID) is Claim.RUN
    assert me.claim(AID) is Claim.DUPLICATE and claims(redis, "i1", "y").claim(AID) is Claim.DUPLICATE
    me.finished([AID])
    assert me.claim(AID) is Claim.FINISHED and claims(redis, "i1", "y").claim(AID) is Claim.FINISHED
    assert me.claim(AID, takeover_from="i0") is Claim.FINISHED


def test_recent_completions_keep_the_last_ones_within_a_count_and_a_byte_budget():
    recent = RecentCompletions(max_items=3, max_bytes=100)
    for n in range(5):
        recent.delivered(f"a{n}", "k", b"x" * 10)
    assert len(recent) == 3 and recent.get("a0") is None and recent.get("a4") == ("k", b"x" * 10)
    recent.delivered("a2", "k", b"y" * 10)  # delivered again: newest, not counted twice
    assert len(recent) == 3 and recent.size_bytes == 30
    recent.delivered("big", "k", b"z" * 85)  # the count pushes a3 out, then the bytes a4
    assert recent.get("a3") is None and recent.get("a4") is None and len(recent) == 2
    assert recent.get("a2") == ("k", b"y" * 10) and recent.size_bytes == 95
    recent.delivered("huge", "k", b"z" * 101)  # alone above the budget: not kept
    assert recent.get("huge") is None and recent.size_bytes == 95
    assert len(RecentCompletions(max_items=0)) == 0


class ChangesAfterRead(MemoryRedis):
    """The claim changes between the taker's read and its write: ``then`` is written
    right after the first GET."""

    def __init__(self, then: bytes | None) -> None:
        super().__init__()
        self.then = then
        self.reads = 0

    def get(self, key: str) -> bytes | None:
        value = super().get(key)
        self.reads += 1
        if self.reads == 1:
            if self.then is None:
                self.values.pop(key, None)
            else:
                self.values[key] = self.then
        return value


def test_a_takeover_that_races_the_holder_finishing_does_not_run_it_again():
    redis = ChangesAfterRead(then=b"done")
    claims(redis, "i0", "x").claim(AID)
    i1 = claims(redis, "i1", "y")
    assert i1.claim(AID, takeover_from="i0") is Claim.FINISHED
    assert redis.values[f"gleaner:activation:{AID}"] == b"done" and i1.previous_holder(AID) is None


def test_two_invokers_taking_over_the_same_claim_at_once_run_it_once():
    redis = ChangesAfterRead(then=b"running:i2:z")  # i2 won the takeover between i1's read and write
    claims(redis, "i0", "x").claim(AID)
    assert claims(redis, "i1", "y").claim(AID, takeover_from="i0") is Claim.DUPLICATE
    assert redis.values[f"gleaner:activation:{AID}"] == b"running:i2:z"


def test_a_claim_that_expired_during_a_takeover_is_simply_run():
    redis = ChangesAfterRead(then=None)
    claims(redis, "i0", "x").claim(AID)
    assert claims(redis, "i1", "y").claim(AID, takeover_from="i0") is Claim.RUN
