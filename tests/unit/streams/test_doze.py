"""The idle consumer's pause/probe cycle (pure)."""

from __future__ import annotations

from streams.kafka.doze import PAUSE, RESUME, Doze, DozeState


def doze() -> Doze:
    return Doze(idle_after_s=10.0, probe_every_s=0.1, probe_for_s=0.02, last_record=0.0)


def test_a_consumer_stays_awake_while_records_flow() -> None:
    d = doze()
    for t in (1.0, 5.0, 9.0, 14.0, 18.0):
        assert d.step(t) is None
        assert d.seen(t) is None
    assert d.state is DozeState.AWAKE


def test_after_the_quiet_spell_it_pauses_and_probes_on_a_cycle() -> None:
    d = doze()
    assert d.step(9.99) is None
    assert d.step(10.0) == PAUSE
    assert d.step(10.05) is None  # dozing until the next probe
    assert d.step(10.1) == RESUME
    assert d.state is DozeState.PROBING
    assert d.step(10.11) is None
    assert d.step(10.12) == PAUSE
    assert d.step(10.22) == RESUME


def test_a_record_in_a_probe_wakes_it_without_another_resume() -> None:
    d = doze()
    d.step(10.0)
    d.step(10.1)
    assert d.seen(10.11) is None
    assert d.state is DozeState.AWAKE
    assert d.step(10.2) is None  # awake for another quiet spell


def test_a_record_that_arrives_while_paused_resumes_fetching() -> None:
    d = doze()
    d.step(10.0)
    assert d.seen(10.01) == RESUME
    assert d.state is DozeState.AWAKE


def test_polls_block_no_longer_than_the_next_step() -> None:
    d = doze()
    assert d.wait_s(0.0, 0.05) == 0.05
    assert abs(d.wait_s(9.98, 0.05) - 0.02) < 1e-9
    d.step(10.0)
    assert abs(d.wait_s(10.0, 0.5) - 0.1) < 1e-9
    assert d.wait_s(10.5, 0.5) == 0.0  # a step is overdue


def test_a_resume_from_outside_counts_as_fresh_traffic() -> None:
    d = doze()
    d.step(10.0)
    d.wake(10.05)
    assert d.state is DozeState.AWAKE
    assert d.step(15.0) is None
    assert d.step(20.05) == PAUSE


def test_a_doorbell_wakes_a_dozing_consumer_as_traffic() -> None:
    d = doze()
    d.step(10.0)
    assert d.rung(10.5) == RESUME
    assert d.state is DozeState.AWAKE
    assert d.step(20.0) is None  # a full quiet spell from the ring
    assert d.step(20.5) == PAUSE


def test_a_doorbell_during_a_probe_needs_no_resume() -> None:
    d = doze()
    d.step(10.0)
    d.step(10.1)  # probing: already fetching
    assert d.rung(10.11) is None
    assert d.state is DozeState.AWAKE
