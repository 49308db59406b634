"""A background reader that lives as long as its component.

Placement's completion and heartbeat readers are plain threads, not runners:
one uncaught exception would end them without a word, and from then on no
activation is acknowledged or no invoker seen alive. :func:`follow` keeps
reading whatever happens: a record its handler fails on is logged and
skipped, and a Kafka error (or any other failure of the consumer) closes the
consumer and opens a new one after a backoff. Records produced while no
consumer is open are not read (the readers start at the end).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Protocol

from gleaner.errors import KafkaError
from streams.kafka.client import Record

log = logging.getLogger(__name__)

BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 10.0


class Reader(Protocol):
    def poll(self, timeout_s: float) -> Record | None: ...

    def close(self) -> None: ...


def follow(
    name: str,
    open_reader: Callable[[], Reader],
    on_record: Callable[[Record], None],
    stop: threading.Event,
    *,
    poll_s: float = 0.2,
    backoff_initial_s: float = BACKOFF_INITIAL_S,
    backoff_max_s: float = BACKOFF_MAX_S,
) -> None:
    """Hand every record to ``on_record`` until ``stop`` is set; never ends before."""
    delay = backoff_initial_s
    while not stop.is_set():
        reader: Reader | None = None
        try:
            reader = open_reader()
            while not stop.is_set():
                rec = reader.poll(poll_s)
                delay = backoff_initial_s  # the consumer works again
                if rec is None:
                    continue
                try:
                    on_record(rec)
                except Exception:  # one record's trouble never ends the reader
                    log.exception("%s: record %s[%d]@%d failed", name, rec.topic, rec.partition, rec.offset)
        except KafkaError as exc:
            log.warning("%s: %s; a new consumer in %.1fs", name, exc, delay)
        except Exception:
            log.exception("%s: the consumer failed; a new one in %.1fs", name, delay)
        finally:
            if reader is not None:
                with contextlib.suppress(Exception):
                    reader.close()
        if stop.wait(delay):
            return
        delay = min(backoff_max_s, delay * 2)
