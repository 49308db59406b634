"""Waits for completions on behalf of blocking HTTP callers.

Every gateway replica reads every completion (group-less, from the end), so
a caller is answered by whichever replica it reached. Recent records are kept
so a read right after a blocking invoke does not depend on the record sink
having written to CouchDB yet. Only completions signed by a Gleaner
component count: a forged one (any Kafka client can write the topic) never
answers a caller nor becomes a record read here.

The reading is the consume runner's (:class:`~streams.kafka.runner.Follower`):
it checks each record's signature and size, and passes over, with a log line,
what it refuses; the record sink, the topic's own consumer, dead-letters it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from gleaner.settings_sections import KafkaSettings
from streams.events import ActivationCompleted, decode
from streams.kafka.client import EventConsumer, Record
from streams.kafka.doorbell import Bell
from streams.kafka.follow import follow
from streams.kafka.runner import Handler, RunnerConfig, Source, Ticket

RECENT = 10_000


def completions_reader(
    settings: KafkaSettings, bell: Bell | None = None, on_broker_restart: Callable[[], object] | None = None
) -> EventConsumer:
    """Every completion from now on, group-less (it rewinds a partition the broker restarted,
    and then calls ``on_broker_restart``)."""
    return EventConsumer(
        settings,
        "gleaner-gateway",
        [settings.completed_topic],
        assign_latest=True,
        bell=bell,
        # Our own requests' rings: awake before their completions come.
        wake_on=[settings.invocations_topic, settings.dag_requests_topic],
        on_restart=on_broker_restart,  # the outbox sends again what may be lost
    )


class Completions(Handler):
    """Answers the futures of waiting callers and keeps the recent records. The futures and
    the records are touched on the gateway's event loop only; :meth:`handle` runs on the
    runner's thread and hands each completion over to the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def expect(self, activation_id: str) -> asyncio.Future[dict[str, Any]]:
        """Register interest before producing the request, so no completion is missed."""
        fut: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._waiting[activation_id] = fut
        return fut

    def forget(self, activation_id: str) -> None:
        self._waiting.pop(activation_id, None)

    def recent(self, namespace: str, activation_id: str) -> dict[str, Any] | None:
        record = self._recent.get(activation_id)
        return record if record is not None and record.get("namespace") == namespace else None

    def recent_records(self, namespace: str) -> list[dict[str, Any]]:
        """The records of ``namespace`` seen complete lately (at most RECENT, oldest first):
        the activation list merges them, as the record sink writes them later."""
        return [r for r in self._recent.values() if r.get("namespace") == namespace]

    def handle(self, record: Record, ticket: Ticket) -> None:
        # A malformed completion raises MalformedEvent: the runner logs it and goes on.
        event = ActivationCompleted.from_dict(decode(record.value))
        self._loop.call_soon_threadsafe(self._resolve, event.activation_id, event.record)

    def _resolve(self, activation_id: str, record: dict[str, Any]) -> None:
        self._recent[activation_id] = record
        while len(self._recent) > RECENT:
            self._recent.popitem(last=False)
        fut = self._waiting.pop(activation_id, None)
        if fut is not None and not fut.done():
            fut.set_result(record)


class CompletionWaiter:
    """The :class:`Completions` handler behind a follower runner on a thread of its own,
    kept alive (:func:`streams.kafka.follow.follow`): a failing consumer is replaced."""

    def __init__(
        self,
        settings: KafkaSettings,
        loop: asyncio.AbstractEventLoop,
        bell: Bell | None = None,
        on_broker_restart: Callable[[], object] | None = None,
        *,
        source: Source | None = None,
    ) -> None:
        self.completions = Completions(loop)
        self._stop = threading.Event()

        def open_reader() -> Source:
            return source if source is not None else completions_reader(settings, bell, on_broker_restart)

        self._thread = threading.Thread(
            target=follow,
            args=("completions", open_reader, self.completions, self._stop),
            kwargs={"config": RunnerConfig.for_settings(settings)},
            name="completions",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def expect(self, activation_id: str) -> asyncio.Future[dict[str, Any]]:
        """Register interest before producing the request, so no completion is missed."""
        return self.completions.expect(activation_id)

    def forget(self, activation_id: str) -> None:
        self.completions.forget(activation_id)

    def recent(self, namespace: str, activation_id: str) -> dict[str, Any] | None:
        """The completed record of ``activation_id`` read here lately, if it is ``namespace``'s."""
        return self.completions.recent(namespace, activation_id)

    def recent_records(self, namespace: str) -> list[dict[str, Any]]:
        """The records of ``namespace`` read here lately, oldest first (read-your-writes)."""
        return self.completions.recent_records(namespace)
