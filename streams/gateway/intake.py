"""Where the gateway's routes hand an accepted request: kept in the outbox, produced to
Kafka, and, for a blocking caller, waited on until its completion comes back.

The routes get this object, not the gateway: it is all they need of the platform behind
them. Its clients are made at start-up, on the running event loop (the waiter's futures
belong to that loop); until then they are None and tests may put fakes in their place.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from gleaner.redis_store import RedisStore
from gleaner.settings_sections import GatewaySettings, KafkaSettings, StoreSettings
from streams.gateway.completions import CompletionWaiter
from streams.kafka.client import EventProducer
from streams.kafka.doorbell import process_bell
from streams.outbox import Outbox, OutboxWriter
from streams.outbox_resend import Resender
from streams.payloads import DataStore

log = logging.getLogger(__name__)


class Intake:
    def __init__(self, settings: GatewaySettings, kafka: KafkaSettings, stores: StoreSettings) -> None:
        self.settings = settings
        self.kafka = kafka
        self.stores = stores
        self.producer: EventProducer | None = None
        self.data: DataStore | None = None
        self.outbox: OutboxWriter | None = None
        self.resender: Resender | None = None
        self.waiter: CompletionWaiter | None = None
        self._stop = threading.Event()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.producer = EventProducer(self.kafka, process_bell(self.kafka, self.stores))
        redis = RedisStore(self.stores)
        self.data = DataStore(redis, self.settings.inline_payload_bytes, self.settings.data_ttl_s)
        if self.settings.outbox:
            outbox = Outbox(redis)
            self.outbox = OutboxWriter(outbox, self.producer)
            self.outbox.start()
            self.resender = Resender(outbox, self.producer)  # after a broker loss (streams.outbox_resend)
            threading.Thread(
                target=self.resender.run, args=(self._stop,), name="outbox-resend", daemon=True
            ).start()
        self.waiter = CompletionWaiter(
            self.kafka,
            loop,
            process_bell(self.kafka, self.stores),
            on_broker_restart=self.resender.broker_lost if self.resender else None,
        )
        self.waiter.start()

    def stop(self) -> None:
        self._stop.set()
        if self.resender:
            self.resender.wake()  # ends its thread
        if self.waiter:
            self.waiter.stop()
        if self.outbox:
            self.outbox.close()  # what it was handed is produced before the producer closes
        if self.producer:
            self.producer.close()

    async def accept(self, topic: str, activation_id: str, value: bytes) -> None:
        """Keep an accepted event in the outbox, then produce it: a broker crash cannot lose
        it (:mod:`streams.outbox`). Both happen on the outbox's writer thread, so the loop
        never waits on Redis. Without Redis it is still accepted, and the log says so."""
        assert self.producer is not None
        if self.outbox is None:
            self.producer.produce(topic, value, key=activation_id)
            return
        await asyncio.wrap_future(self.outbox.submit(activation_id, topic, value))

    async def submit(
        self, topic: str, activation_id: str, value: bytes, *, blocking: bool
    ) -> dict[str, Any] | None:
        """Accept the event; for a blocking caller, its completion's record if it comes within
        ``blocking_wait_s``. None when the caller is to be answered 202 with the id."""
        assert self.waiter is not None
        waiting = self.waiter.expect(activation_id) if blocking else None
        await self.accept(topic, activation_id, value)
        if waiting is None:
            return None
        try:
            return await asyncio.wait_for(waiting, self.settings.blocking_wait_s)
        except TimeoutError:
            self.waiter.forget(activation_id)
            return None
