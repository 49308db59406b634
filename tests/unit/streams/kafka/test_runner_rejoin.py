"""A member whose partitions were revoked and never given back gives up after the rejoin
timeout (the supervisor starts it afresh); any assignment, even an empty one, is an answer."""

from __future__ import annotations

import pytest

from gleaner.errors import KafkaError
from tests.unit.streams.test_runner import TOPIC, make, turns


def test_no_partitions_back_after_the_timeout_ends_the_runner() -> None:
    runner, _, _, clock = make([])
    runner.revoked([(TOPIC, 0)])
    clock.now += runner.config.rejoin_timeout_s - 1
    turns(runner, 1)  # still within the timeout
    clock.now += 2
    with pytest.raises(KafkaError, match="no partitions given back"):
        turns(runner, 1)


def test_an_assignment_even_an_empty_one_is_an_answer() -> None:
    runner, _, _, clock = make([])
    runner.revoked([(TOPIC, 0)])
    clock.now += 5
    runner.assigned([])  # more members than partitions: a member may own nothing
    clock.now += 10 * runner.config.rejoin_timeout_s
    turns(runner, 2)
    assert not runner.stopping


def test_a_member_never_revoked_never_gives_up() -> None:
    runner, _, _, clock = make([])
    clock.now += 10 * runner.config.rejoin_timeout_s
    turns(runner, 2)
    assert not runner.stopping
