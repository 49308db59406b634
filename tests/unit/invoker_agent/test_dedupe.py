from invoker_agent.dedupe import ActivationClaims, Claim, Holder
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
    assert claims(redis, "i0", "newer").claim(AID) is Claim.DUPLICATE


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
    assert claims(redis, "i1", "y").claim(AID, takeover_from="i0") is Claim.DUPLICATE


def test_redis_down_means_run_it():
    redis = MemoryRedis()
    redis.down = 1
    assert claims(redis, "i0", "x").claim(AID) is Claim.RUN
