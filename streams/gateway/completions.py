"""Waits for completions on behalf of blocking HTTP callers.

Every gateway replica reads every completion (group-less, from the end), so
a caller is answered by whichever replica it reached. Recent records are kept
so a read right after a blocking invoke does not depend on the record sink
having written to CouchDB yet. Only completions signed by a Gleaner
component count: a forged one (any Kafka client can write the topic) never
answers a caller nor becomes a record read here.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from typing import Any

from gleaner.errors import MalformedEvent
from gleaner.settings import Settings
from streams.events import ActivationCompleted, decode
from streams.kafka.client import EventConsumer, signature_rejects
from streams.kafka.doorbell import Bell
from streams.kafka.signing import Signer

log = logging.getLogger(__name__)
RECENT = 10_000


class CompletionWaiter:
    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop, bell: Bell | None = None) -> None:
        self._settings = settings
        self._loop = loop
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._stop = threading.Event()
        self._signer = Signer.for_settings(settings)
        self._consumer = EventConsumer(
            settings,
            "gleaner-gateway",
            [settings.completed_topic],
            assign_latest=True,
            bell=bell,
            # Our own requests' rings: awake before their completions come.
            wake_on=[settings.invocations_topic, settings.dag_requests_topic],
        )
        self._thread = threading.Thread(target=self._listen, name="completions", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

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

    def _listen(self) -> None:
        try:
            while not self._stop.is_set():
                rec = self._consumer.poll(0.1)
                if rec is None:
                    continue
                forged = signature_rejects(self._signer, rec)
                if forged is not None:  # the record sink dead-letters it
                    log.warning(
                        "ignoring completion at %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, forged
                    )
                    continue
                try:
                    event = ActivationCompleted.from_dict(decode(rec.value))
                except MalformedEvent as exc:
                    log.warning("ignoring malformed completion: %s", exc)
                    continue
                self._loop.call_soon_threadsafe(self._resolve, event.activation_id, event.record)
        finally:
            self._consumer.close()

    def _resolve(self, activation_id: str, record: dict[str, Any]) -> None:
        self._recent[activation_id] = record
        while len(self._recent) > RECENT:
            self._recent.popitem(last=False)
        fut = self._waiting.pop(activation_id, None)
        if fut is not None and not fut.done():
            fut.set_result(record)
