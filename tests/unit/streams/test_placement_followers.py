"""Placement's two followers, each a handler behind a group-less Follower runner fed by the
in-memory source: heartbeats feed the invoker table, completions acknowledge dispatched
activations. Only platform-signed records count; nothing is committed or produced; and
the readers are opened group-less from the end of their topics."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from prometheus_client import REGISTRY

from gleaner.settings import Settings
from streams.events import ActivationRequest, InvokerHealth
from streams.failures import failed_completion
from streams.kafka.runner import Follower
from streams.kafka.signing import Signer
from streams.kafka.testing import MemorySource
from streams.placement import agent
from streams.placement.acks import Unacknowledged
from streams.placement.agent import (
    Acknowledgements,
    Heartbeats,
    InvokerTable,
    follow_completions,
    follow_health,
    follower_config,
)

SETTINGS = Settings()
SIGNER = Signer.for_settings(SETTINGS)
HEALTH, COMPLETED = SETTINGS.health_topic, SETTINGS.completed_topic


def beat(invoker: str, status: str = "up", queue: int = 0) -> bytes:
    return InvokerHealth(invoker, "inc", 0, 2.0, 4096, 2.0, 4096, queue, 0, status).to_bytes()


def done(activation_id: str) -> bytes:
    return failed_completion(ActivationRequest(activation_id, "guest", "f"), 0, "ok", "i0").to_bytes()


def turns(runner: Follower, n: int) -> None:
    for _ in range(n):
        runner.run_once()


def test_the_followers_take_only_platform_signed_records_within_the_size_limit() -> None:
    config = follower_config(SETTINGS.kafka)
    assert config.signer is not None and not config.tenant_entry
    assert config.max_event_bytes == SETTINGS.kafka_message_max_bytes
    assert config.poll_timeout_s == agent.FOLLOW_POLL_S  # idle turns spaced as before the runner


def test_signed_heartbeats_feed_the_table_and_refused_ones_do_not() -> None:
    table, source = InvokerTable(unhealthy_after_s=1e9), MemorySource()
    runner = Follower("health", source, Heartbeats(table), follower_config(SETTINGS.kafka))
    source.push(HEALTH, beat("i0", queue=3), signer=SIGNER)
    source.push(HEALTH, beat("i1"), signer=SIGNER)
    source.push(HEALTH, beat("ghost"))  # unsigned: would steer work to no one
    source.push(HEALTH, beat("ghost"), signer=Signer(b"x" * 32))  # forged
    source.push(HEALTH, b'{"type": "invoker.health"}', signer=SIGNER)  # malformed
    source.push(HEALTH, beat("i1", status="draining"), signer=SIGNER)  # a later beat replaces the last
    turns(runner, 6)
    assert table.states() == {"i0": "up", "i1": "down"}
    assert {v.id: v.queue_length for v in table.views()} == {"i0": 3, "i1": 0}
    assert runner.passed_over == 3 and runner.dead_lettered == 0
    runner.checkpoint.commit()
    assert source.commits == []  # group-less: nothing to commit


def test_signed_completions_acknowledge_and_forged_or_malformed_ones_do_not() -> None:
    unacked = Unacknowledged()
    for aid in ("a" * 32, "b" * 32, "c" * 32):
        unacked.sent("i0", ActivationRequest(aid, "guest", "f"))
    source = MemorySource()
    runner = Follower("acks", source, Acknowledgements(unacked), follower_config(SETTINGS.kafka))
    source.push(COMPLETED, done("a" * 32), signer=SIGNER)
    source.push(COMPLETED, done("b" * 32))  # unsigned: the record sink dead-letters it
    source.push(COMPLETED, done("c" * 32), signer=Signer(b"x" * 32))  # forged
    source.push(COMPLETED, b"[]", signer=SIGNER)  # malformed
    turns(runner, 4)
    assert unacked.completed("a" * 32) and not unacked.completed("b" * 32)
    assert len(unacked) == 2 and runner.passed_over == 3
    runner.checkpoint.commit()
    assert source.commits == []


def test_acks_on_the_followers_thread_and_dispatches_meanwhile_leave_nothing_owed() -> None:
    """The completion follower acknowledges on its thread while the dispatch thread notes
    what it sends: whichever comes first for an id, nothing is left owed, and the gauge
    says so."""
    unacked, source, stop = Unacknowledged(), MemorySource(), threading.Event()
    ids = [f"{n:032x}" for n in range(500)]
    for aid in ids:
        source.push(COMPLETED, done(aid), signer=SIGNER)
    config = follower_config(SETTINGS.kafka)
    runner = Follower("acks", source, Acknowledgements(unacked), config, stop=stop)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    for aid in ids:
        unacked.sent("i0", ActivationRequest(aid, "guest", "f"))
    for _ in range(500):
        if source.pending == 0 and all(unacked.completed(aid) for aid in ids):
            break
        stop.wait(0.01)
    stop.set()
    thread.join(2)
    assert not thread.is_alive() and source.closed
    assert len(unacked) == 0 and REGISTRY.get_sample_value("gleaner_placement_unacknowledged") == 0


class Opened:
    """Stands for EventConsumer: notes how each reader was opened, hands out a memory source."""

    def __init__(self, *records: tuple[str, bytes]) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.source = MemorySource()
        for topic, value in records:
            self.source.push(topic, value, signer=SIGNER)

    def __call__(self, *args: Any, **kwargs: Any) -> MemorySource:
        self.calls.append((args, kwargs))
        return self.source


def in_thread(target: Any, *args: Any) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=target, args=(*args[:2], stop, *args[2:]), daemon=True)
    thread.start()
    return thread, stop


def wait_for(check: Any, stop: threading.Event, thread: threading.Thread) -> None:
    for _ in range(500):
        if check():
            break
        stop.wait(0.01)
    assert check(), "the follower never got there"
    stop.set()
    thread.join(2)
    assert not thread.is_alive()


def test_the_heartbeat_follower_reads_group_less_from_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    opened = Opened((HEALTH, beat("i0")))
    monkeypatch.setattr(agent, "EventConsumer", opened)
    table = InvokerTable(unhealthy_after_s=1e9)
    thread, stop = in_thread(follow_health, SETTINGS, table, "gleaner-gateway-health")
    wait_for(lambda: table.states() == {"i0": "up"}, stop, thread)
    ((args, kwargs),) = opened.calls
    assert args == (SETTINGS.kafka, "gleaner-gateway-health", [HEALTH])
    assert kwargs == {"assign_latest": True, "wait_ms": SETTINGS.kafka_fetch_wait_health_ms}
    assert opened.source.closed


def test_the_completion_follower_reads_group_less_from_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    opened = Opened((COMPLETED, done("a" * 32)))
    monkeypatch.setattr(agent, "EventConsumer", opened)
    unacked = Unacknowledged()
    unacked.sent("i0", ActivationRequest("a" * 32, "guest", "f"))
    bell = object()
    thread, stop = in_thread(follow_completions, SETTINGS, unacked, bell)
    wait_for(lambda: len(unacked) == 0, stop, thread)
    ((args, kwargs),) = opened.calls
    assert args == (SETTINGS.kafka, "gleaner-placement-acks", [COMPLETED])
    assert kwargs == {"assign_latest": True, "hot": False, "bell": bell}
    assert opened.source.closed
