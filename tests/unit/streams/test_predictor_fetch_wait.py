from __future__ import annotations

import asyncio
import inspect
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer import fetcher as aiokafka_fetcher
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from streams.predictor_stream import fetch_wait
from streams.predictor_stream.fetch_wait import AdaptiveFetchWait, install, wait_ms


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


# --- what the patch relies on in Faust and aiokafka: these fail when either changes -------------


def test_install_wraps_fausts_consumer_factory_once_and_adopts_what_it_makes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[Consumer] = []

    def factory(_thread: Any, _transport: Any) -> Consumer:
        made.append(consumer(started=False))
        return made[-1]

    monkeypatch.setattr(AIOKafkaConsumerThread, "_create_worker_consumer", factory)
    monkeypatch.setattr(fetch_wait, "_active", None)
    control = AdaptiveFetchWait(5, 50, 2.0, clock=Clock())
    install(control)
    install(control)  # a second app in the process: not wrapped twice
    patched = AIOKafkaConsumerThread._create_worker_consumer
    assert inspect.unwrap(patched) is factory and patched.__wrapped__ is factory
    made_by_faust = patched(object(), "transport")
    assert made == [made_by_faust] and made_by_faust._fetch_max_wait_ms == 5


def test_faust_still_fixes_the_fetch_wait_in_code_and_offers_no_setting_for_it() -> None:
    """If this fails, Faust changed how it builds its consumer: if it now has a setting for
    the fetch wait, set it there and drop the patch; else follow the new code."""
    original = inspect.unwrap(AIOKafkaConsumerThread._create_worker_consumer)
    assert list(inspect.signature(original).parameters) == ["self", "transport"]
    assert "fetch_max_wait_ms=1500" in inspect.getsource(original)
    assert [name for name in dir(faust.Settings) if "fetch_max_wait" in name or "fetch_wait" in name] == []


def test_aiokafka_still_reads_the_wait_from_the_attributes_the_patch_sets() -> None:
    """If this fails, aiokafka moved the fetch wait: the adaptive wait would set nothing."""
    assert "fetch_max_wait_ms" in inspect.signature(aiokafka_fetcher.Fetcher.__init__).parameters
    assert "self._fetch_max_wait_ms = fetch_max_wait_ms" in inspect.getsource(
        aiokafka_fetcher.Fetcher.__init__
    )
    assert "self._fetch_max_wait_ms," in inspect.getsource(
        aiokafka_fetcher.Fetcher._get_actions_per_node
    )  # per request
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)

    async def scenario() -> None:
        real = AIOKafkaConsumer(fetch_max_wait_ms=1500)
        try:
            assert (real._fetch_max_wait_ms, real._fetcher) == (1500, None)  # the fetcher comes at start
            AdaptiveFetchWait(5, 50, 2.0, clock=Clock()).adopt(real)  # weakly referenced, as it is
            assert real._fetch_max_wait_ms == 5
        finally:
            await real.stop()

    asyncio.run(scenario())
