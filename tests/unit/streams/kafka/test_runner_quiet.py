"""A quiet runner polls longer; records and work in flight keep the short poll."""

from __future__ import annotations

from streams.kafka.runner import QUIET_AFTER_S, QUIET_POLL_TIMEOUT_S
from tests.unit.streams.test_runner import TOPIC, Recorder, make, turns


def test_a_runner_that_just_handled_a_record_polls_short() -> None:
    runner, _, _, clock = make([b"a"])
    turns(runner, 1)
    assert runner.poll_timeout() == runner.config.poll_timeout_s
    clock.now += QUIET_AFTER_S / 2
    assert runner.poll_timeout() == runner.config.poll_timeout_s


def test_once_quiet_with_nothing_in_flight_it_polls_long() -> None:
    runner, _, _, clock = make([b"a"])
    turns(runner, 1)
    clock.now += QUIET_AFTER_S
    assert runner.poll_timeout() == QUIET_POLL_TIMEOUT_S


def test_work_in_flight_keeps_the_short_poll_for_its_ticks() -> None:
    handler = Recorder()
    handler.defer_all = True
    runner, _, _, clock = make([b"a"], handler)
    turns(runner, 1)
    clock.now += 10 * QUIET_AFTER_S
    assert runner.checkpoint.in_flight() == 1
    assert runner.poll_timeout() == runner.config.poll_timeout_s
    handler.deferred[0].done()
    assert runner.poll_timeout() == QUIET_POLL_TIMEOUT_S


def test_a_record_after_a_quiet_spell_is_handled_at_the_next_turn() -> None:
    runner, source, _, clock = make([])
    clock.now += 10 * QUIET_AFTER_S
    source.push(TOPIC, b"late")
    turns(runner, 1)
    assert runner.handler.seen == [b"late"]  # type: ignore[attr-defined]
    assert runner.poll_timeout() == runner.config.poll_timeout_s
