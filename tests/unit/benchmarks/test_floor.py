from __future__ import annotations

from benchmarks.floor import HOPS_PER_STAGE, Floor
from benchmarks.invoke import SEGMENTS, segments


def test_the_path_floor_is_three_hops_at_the_median() -> None:
    floor = Floor(hop_p50_ms=0.5, hop_p99_ms=1.2, n=200)
    assert HOPS_PER_STAGE == 3
    assert floor.path_ms == 1.5
    assert floor.ratio(6.0) == "4.0x"
    assert Floor(0.0, 0.0, 0).ratio(6.0) == "-"


def test_a_warm_invoke_splits_into_parts_that_add_up_to_its_overhead() -> None:
    rec = {
        "start": 1_000_010,
        "end": 1_000_020,
        "annotations": [{"key": "waitTime", "value": 6}],
        "gleaner": {"run_ms": 2.0},
        "_sent_ms": 1_000_001.0,
        "_answered_ms": 1_000_024.0,
    }
    parts = segments(rec)
    assert len(parts) == len(SEGMENTS)
    assert parts == (3.0, 6.0, 8.0, 4.0)
    assert sum(parts) == rec["_answered_ms"] - rec["_sent_ms"] - rec["gleaner"]["run_ms"]
