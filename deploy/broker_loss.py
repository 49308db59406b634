"""What follows a broker that started without its log (the embedded memory broker after a
crash, or the first start after a reboot): its topics again, then whatever the gateway
accepted and no record shows yet, produced again from the outbox (:mod:`streams.outbox`).

Used by ``gleaner up`` when it had to start the broker and by the supervisor when it
restarted it. Every consumer is idempotent on the ids, so sending an entry that was not
lost after all changes nothing.
"""

from __future__ import annotations

import logging

from deploy import services
from gleaner.errors import GleanerError
from gleaner.redis_store import RedisStore
from gleaner.settings import Settings
from streams.kafka.client import EventProducer
from streams.outbox import Outbox
from streams.topics import all_topics

log = logging.getLogger(__name__)


def after_broker_loss(settings: Settings) -> int:
    """Re-create the topics and send the outbox again; how many events were sent again.
    Redis away: nothing is sent now (logged); its entries wait for the next broker start."""
    services.ensure_topics(settings, all_topics(settings), settings.topic_partitions)
    try:
        store = RedisStore(settings)
    except GleanerError as exc:
        log.warning("outbox not read after the broker restarted: %s", exc)
        return 0
    producer = EventProducer(settings)
    try:
        return Outbox(store).send_again(producer)
    except GleanerError as exc:
        log.warning("outbox not sent again after the broker restarted: %s", exc)
        return 0
    finally:
        producer.close()
        store.close()
