"""Permits for threads: FIFO waits, live changes applied through each
activation's resizer, failed resizes reverted and recorded."""

from __future__ import annotations

import threading
import time

import pytest

from gleaner.errors import DockerError, InvalidLimits
from invoker_agent.ledger import CapacityLedger, Claim
from invoker_agent.permits import ResourcePermits


def claim(key: str, cpu: float, memory: int = 128, **kw: object) -> Claim:
    base: dict[str, object] = {
        "key": key,
        "cpu_plan": cpu,
        "memory_mb": memory,
        "cpu_floor": cpu,
        "cap": cpu,
        "user_cpu": cpu,
        "user_memory_mb": memory,
    }
    base.update(kw)
    return Claim(**base)  # type: ignore[arg-type]


def test_cpu_and_memory_are_granted_together():
    p = ResourcePermits(CapacityLedger(2.0, 1024))
    assert p.acquire(claim("a", 1.5, 256), timeout_s=0)
    assert not p.acquire(claim("b", 1.0, 256), timeout_s=0.01)  # CPU short, memory free
    assert p.acquire(claim("c", 0.5, 768), timeout_s=0)
    assert not p.acquire(claim("d", 0.25, 128), timeout_s=0.01)  # both gone
    p.end("a")
    assert p.snapshot() == (1.5, 256, 0)


def test_waiters_are_served_in_arrival_order():
    p = ResourcePermits(CapacityLedger(2.0, 4096))
    assert p.acquire(claim("first", 2.0))
    order: list[str] = []

    def take(name: str, cpu: float) -> None:
        p.acquire(claim(name, cpu))
        order.append(name)

    big = threading.Thread(target=take, args=("big", 2.0))
    big.start()
    time.sleep(0.05)
    small = threading.Thread(target=take, args=("small", 0.25))
    small.start()
    time.sleep(0.05)
    assert order == []  # the small one does not jump the queue
    p.end("first")
    big.join(1)
    assert order == ["big"]
    p.end("big")
    small.join(1)
    assert order == ["big", "small"]


def test_impossible_allocation_is_refused():
    with pytest.raises(InvalidLimits):
        ResourcePermits(CapacityLedger(2.0, 1024)).acquire(claim("a", 4.0))


def test_timely_release_is_applied_through_the_resizer_and_recorded():
    p = ResourcePermits(CapacityLedger(2.0, 4096))
    group = ("req", 1)
    a = claim("a", 1.0, live=True, group=group)
    b = claim("b", 1.0, live=True, group=group, cap=2.0, work=5.0)
    assert p.acquire(a) and p.acquire(b)
    applied: list[tuple[float, int]] = []
    p.attach("b", lambda cpu, mem: applied.append((cpu, mem)), (1.0, 128))
    p.end("a")
    assert applied == [(2.0, 128)]
    trajectory = p.end("b")
    assert [(c.cpu, c.reason) for c in trajectory] == [(1.0, "planned"), (2.0, "timely-release")]
    assert p.snapshot() == (2.0, 4096, 0)


def test_a_change_made_before_the_container_exists_is_applied_on_attach():
    p = ResourcePermits(CapacityLedger(2.0, 4096))
    group = ("req", 1)
    assert p.acquire(claim("a", 1.0, live=True, group=group))
    assert p.acquire(claim("b", 1.0, live=True, group=group, cap=2.0))
    p.end("a")  # b's container is still starting
    applied: list[tuple[float, int]] = []
    p.attach("b", lambda cpu, mem: applied.append((cpu, mem)), (1.0, 128))
    assert applied == [(2.0, 128)]


def test_a_failed_resize_keeps_the_previous_allocation_and_frees_the_rest():
    p = ResourcePermits(CapacityLedger(2.0, 4096))
    group = ("req", 1)
    assert p.acquire(claim("a", 1.0, live=True, group=group))
    assert p.acquire(claim("b", 1.0, live=True, group=group, cap=2.0))

    def broken(cpu: float, mem: int) -> None:
        raise DockerError("docker: container gone")

    p.attach("b", broken, (1.0, 128))
    p.end("a")
    assert p.current("b") == (1.0, 128)
    assert p.snapshot()[0] == pytest.approx(1.0)  # the core it could not take went back
    trajectory = p.end("b")
    assert [c.reason for c in trajectory] == ["planned", "timely-release", "resize-failed"]
    assert "container gone" in (trajectory[-1].note or "")
    assert p.snapshot() == (2.0, 4096, 0)


def test_safeguard_is_recorded_with_its_reason():
    p = ResourcePermits(CapacityLedger(2.0, 4096))
    assert p.acquire(claim("h", 0.5, user_cpu=1.0))
    applied: list[tuple[float, int]] = []
    p.attach("h", lambda cpu, mem: applied.append((cpu, mem)), (0.5, 128))
    p.safeguard("h", "cpu near its cap")
    assert applied == [(1.0, 128)]
    trajectory = p.end("h")
    assert trajectory[-1].reason == "safeguard" and trajectory[-1].note == "cpu near its cap"


def test_capacity_is_whole_again_after_a_threaded_burst():
    p = ResourcePermits(CapacityLedger(2.0, 2048))
    group = ("req", 1)

    def one(i: int) -> None:
        c = claim(f"k{i}", 0.5 + 0.25 * (i % 4), user_cpu=0.5, cpu_floor=0.5, live=True, group=group, cap=2.0)
        assert p.acquire(c, timeout_s=10)
        p.attach(c.key, lambda cpu, mem: None, (c.cpu, c.memory_mb))
        time.sleep(0.001 * (i % 5))
        p.end(c.key)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert p.snapshot() == (2.0, 2048, 0)
