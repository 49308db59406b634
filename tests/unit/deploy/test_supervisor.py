"""The supervisor's schedule and bookkeeping, with fake processes."""

from __future__ import annotations

import itertools

from deploy.supervisor import Backoff, Part, Supervisor
from gleaner.errors import StackError


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeProcess:
    def __init__(self) -> None:
        self.pid: int | None = 100
        self.starts = 0
        self.fail_starts = 0

    def start(self) -> int:
        if self.fail_starts:
            self.fail_starts -= 1
            raise StackError("invoker", "process 1 exited with code 1")
        self.starts += 1
        self.pid = 100 + self.starts
        return self.pid


def make(backoff: Backoff | None = None):
    proc, clock, seen = FakeProcess(), Clock(), []
    sup = Supervisor(
        [Part("invoker", lambda: proc.pid, proc.start)],
        backoff or Backoff(first_s=1, factor=2, max_s=8, stable_s=60),
        clock,
        on_change=lambda state: seen.append(state["invoker"].restarts),
    )
    return sup, proc, clock, seen


def test_the_backoff_doubles_up_to_its_cap():
    b = Backoff(first_s=0.5, factor=2, max_s=30)
    assert [b.delay(n) for n in (1, 2, 3, 7, 20)] == [0.5, 1.0, 2.0, 30, 30]


def test_a_live_part_is_left_alone():
    sup, proc, clock, _ = make()
    for t in range(5):
        clock.now = t
        assert sup.step() == []
    assert proc.starts == 0 and sup.state["invoker"].pid == 100


def test_a_crashed_part_is_restarted_after_the_first_delay_and_counted():
    sup, proc, clock, seen = make()
    sup.step()
    proc.pid = None  # killed
    clock.now = 10
    assert sup.step() == []  # found dead; waits 1 s
    clock.now = 11
    assert sup.step() == ["invoker"]
    st = sup.state["invoker"]
    assert proc.starts == 1 and st.restarts == 1 and st.pid == 101 and st.last_exit
    assert seen[-1] == 1  # the status file was told


def test_a_crash_loop_backs_off_and_a_stable_run_resets_it():
    sup, proc, clock, _ = make()
    starts_at = []
    for _ in range(4):  # dies right after every start
        proc.pid = None
        sup.step()
        while not sup.step():
            clock.now += 0.5
        starts_at.append(clock.now)
    gaps = [b - a for a, b in itertools.pairwise(starts_at)]
    assert gaps[0] < gaps[1] < gaps[2]  # 1, 2, 4 s of backoff (plus the polling step)
    clock.now += 61  # up for a minute: the next crash starts from the first delay again
    sup.step()
    proc.pid = None
    sup.step()
    found = clock.now
    while not sup.step():
        clock.now += 0.5
    assert clock.now - found <= 1.0


def test_a_failed_restart_is_tried_again_later_with_why():
    sup, proc, clock, _ = make()
    proc.pid = None
    proc.fail_starts = 1
    sup.step()
    clock.now = 1
    assert sup.step() == []
    assert "exited with code 1" in sup.state["invoker"].last_error
    clock.now = 10
    assert sup.step() == ["invoker"] and sup.state["invoker"].last_error == ""
