"""The inference bench's CPU reading: a process's CPU time grows while it works."""

from __future__ import annotations

import os

from benchmarks.inference import cpu_seconds


def test_cpu_seconds_counts_this_process_work():
    before = cpu_seconds(os.getpid())
    total = 0
    while cpu_seconds(os.getpid()) <= before:  # at least one clock tick of work
        total += sum(range(10_000))
    assert cpu_seconds(os.getpid()) > before and total > 0


def test_an_unknown_process_has_no_cpu_time():
    assert cpu_seconds(2**22 + 7) == 0.0  # above Linux's pid_max
