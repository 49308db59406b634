"""Calibration arithmetic: the CPU-seconds fit over the trace's inputs, and the samples picked."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.evaluation.calibrate import calibrate, fit_cpu_seconds, spread
from monitor.utilisation import UtilisationSummary
from streams.replay.outcomes import FAILED, SUCCESS, RequestOutcome
from streams.replay.runner import ReplayRun
from streams.replay.trace import TraceEntry

# --- fit_cpu_seconds ---------------------------------------------------------------------------


def test_fit_is_averaged_over_the_trace_sizes():
    # cpu = 2 * size exactly: sizes 1 and 5 give 2 and 10, whose mean is 6
    assert fit_cpu_seconds([1, 2, 3], [2, 4, 6], [1, 5]) == pytest.approx(6.0)


def test_fit_with_an_intercept():
    # cpu = 1 + 0.5 * size: sizes 2, 4, 10 give 2, 3, 6 -> mean 11/3
    assert fit_cpu_seconds([2, 4, 6], [2, 3, 4], [2, 4, 10]) == pytest.approx(11 / 3)


def test_a_single_distinct_size_gives_the_plain_mean():
    assert fit_cpu_seconds([4, 4, 4], [1.0, 2.0, 6.0], [1, 100, 1000]) == pytest.approx(3.0)
    assert fit_cpu_seconds([7], [2.5], [1, 2]) == pytest.approx(2.5)


def test_negative_extrapolation_is_clipped_at_the_smallest_sample():
    # cpu = -3 + 0.4 * size: size 0 would need -3 CPU-s; clipped to the smallest sample, 1
    assert fit_cpu_seconds([10, 20], [1, 5], [0, 20]) == pytest.approx((1 + 5) / 2)
    assert fit_cpu_seconds([10, 20], [1, 5], [0, 0]) == pytest.approx(1.0)


def test_no_samples_is_an_error():
    with pytest.raises(ValueError, match="no calibration sample"):
        fit_cpu_seconds([], [], [1, 2])


# --- spread ------------------------------------------------------------------------------------

ITEMS = [Path(f"in{i:02}.json") for i in range(10)]


def test_spread_picks_evenly_spaced_items():
    assert spread(ITEMS, 5) == [ITEMS[i] for i in (0, 2, 4, 6, 8)]
    assert spread(ITEMS, 3) == [ITEMS[i] for i in (0, 3, 6)]
    assert spread(ITEMS, 1) == [ITEMS[0]]


def test_spread_with_fewer_items_than_asked_gives_them_all():
    assert spread(ITEMS[:3], 5) == ITEMS[:3]
    assert spread(ITEMS, 10) == ITEMS
    assert spread([], 3) == []


def test_spread_never_repeats_an_item():
    for k in range(1, len(ITEMS) + 1):
        picked = spread(ITEMS, k)
        assert len(picked) == k and len(set(picked)) == k


def test_spread_of_zero_items_is_empty():
    assert spread(ITEMS, 0) == []


# --- calibrate, against a stub replayer --------------------------------------------------------


class StubReplayer:
    """Answers each single-request run; requests for files in ``failing`` fail."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.calls: list[tuple[list[TraceEntry], dict[str, Any]]] = []

    def run(self, entries: list[TraceEntry], **kw: Any) -> ReplayRun:
        self.calls.append((list(entries), kw))
        outcomes = []
        for seq, e in enumerate(entries):
            assert e.input_path is not None
            o = RequestOutcome(seq, f"r{seq}", e.dag, kw["policy"], e.input_path.name, 0, 0.0, sent_s=0.0)
            o.status = FAILED if e.input_path.name in self.failing else SUCCESS
            o.latency_ms = 1000.0 * (seq + 1) + e.input_path.stat().st_size
            outcomes.append(o)
        return ReplayRun(kw["policy"], outcomes)


def node_reporting(cpu_seconds: list[float]) -> Callable[[], Callable[[], UtilisationSummary]]:
    """Each sampler started reports the next CPU-seconds (over 2 s) when stopped."""
    left = list(cpu_seconds)

    def start() -> Callable[[], UtilisationSummary]:
        used = left.pop(0)
        return lambda: UtilisationSummary(2.0, used / 2.0, 100.0, used, 4.0, 8192.0)

    return start


def test_calibrate_fits_the_successful_samples(tmp_path: Path):
    files = []
    for name, size in (("a.json", 100), ("b.json", 200), ("c.json", 300)):
        (tmp_path / name).write_bytes(b"x" * size)
        files.append(tmp_path / name)
    replayer = StubReplayer(failing={"b.json"})

    # a: 2 CPU-s at 100 B, c: 6 CPU-s at 300 B -> cpu = size / 50; b's 99 CPU-s are not counted
    cal = calibrate(replayer, "demo", files, [100, 500], node_reporting([2.0, 99.0, 6.0]), progress=False)

    assert cal.samples == 2
    assert cal.sample_sizes == (100, 300)
    assert cal.sample_cpu_seconds == pytest.approx((2.0, 6.0))
    assert cal.cpu_seconds == pytest.approx(statistics.fmean([2.0, 10.0]))
    assert cal.sample_latency_s == pytest.approx((1.1, 1.3))
    assert cal.mean_latency_s == pytest.approx(1.2)
    # one unmeasured warm-up request first, then each sample alone, all with harvesting off
    assert [[e.input_path for e in entries] for entries, _ in replayer.calls] == [
        [files[0]],
        [files[0]],
        [files[1]],
        [files[2]],
    ]
    assert all(kw["policy"] == "off" and kw["progress"] is False for _, kw in replayer.calls)


def test_calibrate_with_every_sample_failing_is_an_error(tmp_path: Path):
    (tmp_path / "a.json").write_bytes(b"{}")
    replayer = StubReplayer(failing={"a.json"})
    with pytest.raises(ValueError, match="no calibration sample"):
        calibrate(replayer, "demo", [tmp_path / "a.json"], [2], node_reporting([1.0]), progress=False)
