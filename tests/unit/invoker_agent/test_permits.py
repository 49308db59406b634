import threading
import time

import pytest

from gleaner.errors import InvalidLimits
from invoker_agent.permits import ResourcePermits


def test_cpu_and_memory_are_granted_together():
    p = ResourcePermits(2.0, 1024)
    assert p.acquire(1.5, 256, timeout_s=0)
    assert not p.acquire(1.0, 256, timeout_s=0.01)  # CPU short, memory free
    assert p.acquire(0.5, 768, timeout_s=0)
    assert not p.acquire(0.25, 128, timeout_s=0.01)  # both gone
    p.release(1.5, 256)
    assert p.snapshot() == (1.5, 256, 0)


def test_memory_shortage_blocks_even_with_free_cpu():
    p = ResourcePermits(4.0, 512)
    assert p.acquire(0.5, 512, timeout_s=0)
    assert not p.acquire(0.5, 128, timeout_s=0.01)


def test_waiters_are_served_in_arrival_order():
    p = ResourcePermits(2.0, 4096)
    assert p.acquire(2.0, 128)
    order: list[str] = []

    def take(name: str, cpu: float) -> None:
        p.acquire(cpu, 128)
        order.append(name)

    big = threading.Thread(target=take, args=("big", 2.0))
    big.start()
    time.sleep(0.05)
    small = threading.Thread(target=take, args=("small", 0.25))
    small.start()
    time.sleep(0.05)
    assert order == []  # the small one does not jump the queue
    p.release(2.0, 128)
    big.join(1)
    assert order == ["big"]
    p.release(2.0, 128)
    small.join(1)
    assert order == ["big", "small"]


def test_impossible_allocation_is_refused():
    with pytest.raises(InvalidLimits, match="capacity"):
        ResourcePermits(2.0, 1024).acquire(4.0, 128)
