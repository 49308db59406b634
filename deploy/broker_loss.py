"""What follows a broker that started without its log (the embedded memory broker after a
crash, or the first start after a reboot): its topics again, then the loss noted in the
outbox and whatever the gateway accepted and no record shows yet produced again
(:mod:`streams.outbox_resend`).

Used by ``gleaner up`` when it had to start the broker and by the supervisor when it
restarted it. This sends once; the gateway's resender sends again, with backoff, what
stays unsettled (an event accepted while the broker was away, or before its topics were
back, may have been dropped by its producer). Every consumer is idempotent on the ids,
so sending an entry that was not lost after all changes nothing.
"""

from __future__ import annotations

import logging

from deploy import services
from gleaner.errors import GleanerError
from gleaner.redis_store import RedisStore
from gleaner.settings import Settings
from streams.kafka.client import EventProducer
from streams.outbox import Outbox
from streams.outbox_resend import Resender

log = logging.getLogger(__name__)


def after_broker_loss(settings: Settings) -> int:
    """Re-create the topics, note the loss and send the outbox again; how many events were
    sent again. Redis away: nothing is sent (logged); the gateway's resender notes the loss
    itself when its completion reader sees the log restarted."""
    services.ensure_platform_topics(settings)
    try:
        store = RedisStore(settings.stores)
    except GleanerError as exc:
        log.warning("outbox not read after the broker restarted: %s", exc)
        return 0
    producer = EventProducer(settings.kafka)
    try:
        resender = Resender(Outbox(store), producer, flush=True)
        resender.broker_lost()
        return resender.resend_due()
    except GleanerError as exc:
        log.warning("outbox not sent again after the broker restarted: %s", exc)
        return 0
    finally:
        producer.close()
        store.close()
