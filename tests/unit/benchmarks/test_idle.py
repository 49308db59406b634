from __future__ import annotations

import os

from benchmarks.idle import cpu_seconds, shares


def test_shares_are_cores_per_part_over_the_window() -> None:
    before = {"kafka": 10.0, "gateway": 2.0, "gone": 1.0}
    after = {"kafka": 13.0, "gateway": 2.5}
    assert shares(before, after, 10.0) == {"kafka": 0.3, "gateway": 0.05}


def test_this_process_has_a_cpu_time_and_a_missing_one_has_none() -> None:
    spent = cpu_seconds(os.getpid())
    assert spent is not None and spent >= 0.0
    assert cpu_seconds(2**22 + 12345) is None
