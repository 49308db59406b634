"""A group-less reader that lives as long as its component.

Placement's completion and heartbeat readers and the gateway's completion waiter
are handlers behind :class:`~streams.kafka.runner.Follower` runners, each on a
thread of its own. A runner ends when its consumer fails; unkept, from then on no
activation would be acknowledged, no invoker seen alive, no blocking caller
answered. :func:`follow` keeps reading whatever
happens: a record its handler fails on is passed over by the runner, and a Kafka
error (or any other failure of the consumer) closes the consumer and opens a new
one, behind a new runner, after a backoff. Records produced while no consumer is
open are not read (the readers start at the end).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from gleaner.errors import KafkaError
from streams.kafka.runner import DeadLetterSink, Follower, Handler, RunnerConfig, Source

log = logging.getLogger(__name__)

BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 10.0


def follow(
    name: str,
    open_source: Callable[[], Source],
    handler: Handler,
    stop: threading.Event,
    *,
    config: RunnerConfig,
    deadletters: DeadLetterSink | None = None,
    backoff_initial_s: float = BACKOFF_INITIAL_S,
    backoff_max_s: float = BACKOFF_MAX_S,
) -> None:
    """Run ``handler`` behind a follower of ``open_source()`` until ``stop`` is set;
    never ends before. ``deadletters``: this follower parks what it refuses."""
    delay = backoff_initial_s
    while not stop.is_set():
        runner: Follower | None = None
        try:
            runner = Follower(name, open_source(), handler, config, deadletters=deadletters, stop=stop)
            runner.run()  # until ``stop``, or it raises; its consumer is closed either way
        except Exception as exc:
            if runner is not None and runner.turns:
                delay = backoff_initial_s  # this consumer worked: the backoff starts over
            if isinstance(exc, KafkaError):
                log.warning("%s: %s; a new consumer in %.1fs", name, exc, delay)
            else:
                log.exception("%s: the consumer failed; a new one in %.1fs", name, delay)
        if stop.wait(delay):
            return
        delay = min(backoff_max_s, delay * 2)
