"""`gleaner up` calls the stack ready only when the gateway and placement both see an
invoker; reused parts cut off from it are started again, once."""

from __future__ import annotations

import pytest

from deploy import procs
from gleaner.settings import Settings

EXPOSITION = """# HELP gleaner_placement_invokers_healthy Invokers placement counts healthy.
# TYPE gleaner_placement_invokers_healthy gauge
gleaner_placement_invokers_healthy 2.0
gleaner_placement_unacknowledged 0.0
"""


def test_a_gauge_is_read_from_the_exposition():
    assert procs.gauge_value(EXPOSITION, "gleaner_placement_invokers_healthy") == 2.0
    assert procs.gauge_value(EXPOSITION, "gleaner_placement_unacknowledged") == 0.0
    assert procs.gauge_value(EXPOSITION, "gleaner_nope") is None
    assert procs.gauge_value("gleaner_x garbage", "gleaner_x") is None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(procs.time, "monotonic", c.monotonic)
    monkeypatch.setattr(procs.time, "sleep", c.sleep)
    return c


def test_ready_needs_placement_too(monkeypatch, clock):
    seen = {"placement": False}
    monkeypatch.setattr(procs, "gateway_check", lambda _s: "invokers up: invoker0")
    monkeypatch.setattr(procs, "placement_check", lambda _s: "sees 1" if seen["placement"] else None)

    def alive() -> None:
        if clock.now >= 3:
            seen["placement"] = True

    assert procs._wait_gateway(Settings(), 60, alive) == "invokers up: invoker0"
    assert 3 <= clock.now < 4


def test_reused_parts_cut_off_are_started_again_once(monkeypatch, clock):
    restarts: list[float] = []
    monkeypatch.setattr(procs, "gateway_check", lambda _s: "invokers up: invoker0" if restarts else None)
    monkeypatch.setattr(procs, "placement_check", lambda _s: "sees 1")
    detail = procs._wait_gateway(Settings(), 60, lambda: None, lambda: restarts.append(clock.now))
    assert detail == "invokers up: invoker0" and len(restarts) == 1
    assert restarts[0] >= procs.CUT_OFF_AFTER_S


def test_never_ready_names_what_is_missing(monkeypatch, clock):
    monkeypatch.setattr(procs, "gateway_check", lambda _s: "invokers up: invoker0")
    monkeypatch.setattr(procs, "placement_check", lambda _s: None)
    with pytest.raises(procs.StackError, match="placement sees no invoker"):
        procs._wait_gateway(Settings(), 5, lambda: None)
