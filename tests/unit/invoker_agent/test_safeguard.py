"""The safeguard fires when two windows average near the CPU cap, or on memory
near its limit, once, and never takes the invoker down."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from invoker_agent.safeguard import NearCap, SafeguardWatch, cpu_seconds, window_rate

MS = 1_000_000


def test_two_consecutive_windows_near_the_cap():
    check = NearCap()
    assert check.observe(0.46, 0.5, 10, 256) is None
    assert "2 windows" in (check.observe(0.49, 0.5, 10, 256) or "")


def test_a_capped_rate_swinging_around_the_cap_fires():
    # CFS hands out the quota per period: a capped container's windows read 0.8x, 1.1x, ...
    check = NearCap()
    assert check.observe(0.20, 0.25, 10, 256) is None
    why = check.observe(0.27, 0.25, 10, 256)
    assert why is not None and "cpu 0.24 cores" in why


def test_a_window_below_the_cap_resets_the_streak():
    check = NearCap()
    assert check.observe(0.5, 0.5, 10, 256) is None
    assert check.observe(0.2, 0.5, 10, 256) is None
    assert check.observe(0.5, 0.5, 10, 256) is None


def test_memory_near_its_limit_fires_at_once():
    assert "memory" in (NearCap().observe(0.0, 0.5, 231, 256) or "")
    assert NearCap().observe(0.0, 0.5, 229, 256) is None


def test_work_aware_fires_only_beyond_the_predicted_work():
    check = NearCap(work_cpu_s=2.0)
    # At its cap by design (a harvested CPU-bound function) but within its predicted work.
    assert [check.observe(0.5, 0.5, 10, 256, cpu_s_so_far=s) for s in (0.5, 1.0, 1.5)] == [None] * 3
    why = check.observe(0.5, 0.5, 10, 256, cpu_s_so_far=2.1)  # more than predicted, still at its cap
    assert why is not None and "2.00 predicted" in why


def test_work_aware_still_fires_on_memory_at_once():
    assert "memory" in (NearCap(work_cpu_s=100.0).observe(0.0, 0.5, 240, 256) or "")


def test_cpu_seconds_counts_from_the_first_sample():
    assert cpu_seconds([(0, 5_000_000_000, 0), (10, 5_500_000_000, 0), (20, 6_000_000_000, 0)]) == 1.0
    assert cpu_seconds([(0, 5, 0)]) == 0.0


def test_window_rate_needs_a_whole_window():
    samples = [(0, 0, 0), (50 * MS, 25 * MS, 2**20)]
    assert window_rate(samples, 100 * MS) is None
    samples.append((100 * MS, 50 * MS, 3 * 2**20))
    assert window_rate(samples, 100 * MS) == (0.5, 3.0)


def _sampler(rate: float) -> SimpleNamespace:
    return SimpleNamespace(samples=[(i * 50 * MS, int(i * 50 * MS * rate), 0) for i in range(10)])


def test_the_watch_fires_once_and_stops_watching():
    fired: list[str] = []
    watch = SafeguardWatch(100)
    watch.stop()  # no background checks: the test counts the checks
    watch.watch("a", _sampler(0.5), lambda: (0.5, 256), fired.append)  # type: ignore[arg-type]
    watch.check_once()
    assert fired == []
    watch.check_once()
    assert len(fired) == 1
    watch.check_once()
    assert len(fired) == 1


def test_a_failing_safeguard_is_logged_not_raised(caplog: pytest.LogCaptureFixture):
    tried: list[str] = []

    def boom(why: str) -> None:
        tried.append(why)
        raise RuntimeError("docker went away")

    watch = SafeguardWatch(100)
    watch.stop()  # no background checks: these two are the only ones
    watch.watch("a", _sampler(1.0), lambda: (0.5, 256), boom)  # type: ignore[arg-type]
    watch.check_once()
    assert tried == []
    watch.check_once()  # it fires, and no exception escapes
    assert len(tried) == 1 and "cpu" in tried[0]
    assert "safeguard of a failed" in caplog.text and "docker went away" in caplog.text


def test_an_ended_activation_is_skipped():
    fired: list[str] = []
    watch = SafeguardWatch(100)
    watch.stop()  # no background checks: the test counts the checks
    watch.watch("a", _sampler(1.0), lambda: None, fired.append)  # type: ignore[arg-type]
    watch.check_once()
    watch.check_once()
    assert fired == []


def test_usage_is_reported_after_three_windows_as_their_peak_until_forgotten():
    reported: list[float] = []
    watch = SafeguardWatch(100)
    watch.stop()  # no background checks: the test counts the checks
    sampler = SimpleNamespace(samples=[(i * 50 * MS, int(i * 50 * MS * 0.25), 0) for i in range(10)])
    watch.report_usage("a", sampler, reported.append)  # type: ignore[arg-type]
    watch.check_once()
    watch.check_once()
    assert reported == []  # a starting function looks idle: not yet
    sampler.samples = [*sampler.samples, (10 * 50 * MS, int(9 * 50 * MS * 0.25 + 50 * MS * 0.95), 0)]
    watch.check_once()
    assert len(reported) == 1 and reported[0] == pytest.approx((0.25 + 0.95) / 2)  # the last 100 ms
    watch.forget("a")
    watch.check_once()
    assert len(reported) == 1


def test_a_failing_usage_report_is_logged_not_raised(caplog: pytest.LogCaptureFixture):
    tried: list[float] = []

    def boom(used: float) -> None:
        tried.append(used)
        raise RuntimeError("ledger bug")

    watch = SafeguardWatch(100)
    watch.stop()  # no background checks: these four are the only ones
    watch.report_usage("a", _sampler(0.5), boom)  # type: ignore[arg-type]
    for _ in range(4):
        watch.check_once()  # no exception escapes
    assert tried == [pytest.approx(0.5)] * 2  # reported from the third window on, each time
    assert caplog.text.count("usage report failed") == 2 and "ledger bug" in caplog.text
