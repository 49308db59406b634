from __future__ import annotations

from streams.predictor_stream.fetch_wait import AdaptiveFetchWait, wait_ms


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Fetcher:
    _fetch_max_wait_ms = 1500


class Consumer:
    """What the control touches of aiokafka's consumer (weak-referenceable, as it is)."""

    def __init__(self, started: bool) -> None:
        self._fetch_max_wait_ms = 1500
        self._fetcher = Fetcher() if started else None


def consumer(started: bool = True) -> Consumer:
    return Consumer(started)


def test_wait_is_short_within_the_quiet_spell_and_long_after_it() -> None:
    assert wait_ms(10.0, 9.0, 5, 50, 2.0) == 5
    assert wait_ms(10.0, 8.0, 5, 50, 2.0) == 50


def test_a_new_consumer_starts_at_the_busy_wait() -> None:
    control = AdaptiveFetchWait(5, 50, 2.0, clock=Clock())
    c = consumer(started=False)
    control.adopt(c)
    assert c._fetch_max_wait_ms == 5


def test_the_wait_goes_long_when_idle_and_short_on_the_next_request() -> None:
    clock = Clock()
    control = AdaptiveFetchWait(5, 50, 2.0, clock=clock)
    c = consumer()
    control.adopt(c)
    clock.now += 1.0
    control.tick()
    assert (c._fetch_max_wait_ms, c._fetcher and c._fetcher._fetch_max_wait_ms) == (5, 5)
    clock.now += 1.5
    control.tick()
    assert (c._fetch_max_wait_ms, c._fetcher and c._fetcher._fetch_max_wait_ms) == (50, 50)
    control.request_seen()
    assert (c._fetch_max_wait_ms, c._fetcher and c._fetcher._fetch_max_wait_ms) == (5, 5)
    control.tick()
    assert control.current_ms == 5


def test_an_idle_wait_below_the_busy_one_is_raised_to_it() -> None:
    clock = Clock()
    control = AdaptiveFetchWait(20, 5, 2.0, clock=clock)
    clock.now += 10
    control.tick()
    assert control.current_ms == 20
