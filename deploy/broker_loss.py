"""What follows a broker that started without its log (the embedded memory broker after a
crash, or the first start after a reboot): its topics again, then whatever the gateway
accepted and no record shows yet, produced again from the outbox (:mod:`streams.outbox`).

Used by ``gleaner up`` when it had to start the broker and by the supervisor when it
restarted it. Every consumer is idempotent on the ids, so sending an entry that was not
lost after all changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time

from deploy import services
from gleaner.errors import GleanerError
from gleaner.redis_store import RedisStore
from gleaner.settings import Settings
from streams.kafka.client import EventProducer
from streams.outbox import Outbox

log = logging.getLogger(__name__)


AGAIN_AFTER_S = (10.0, 30.0)


def after_broker_loss(settings: Settings, *, again_after_s: tuple[float, ...] = AGAIN_AFTER_S) -> int:
    """Re-create the topics and send the outbox again; how many events were sent again now.
    The outbox is sent once more after each of ``again_after_s`` (a daemon thread): an event
    the gateway accepted while the broker was away, or before its topics were back, may
    have been dropped by its producer after this first send. Redis away: nothing is sent
    now (logged); its entries wait for the next broker start."""
    services.ensure_platform_topics(settings)
    if again_after_s:
        threading.Thread(
            target=_send_later, args=(settings, again_after_s), name="outbox-again", daemon=True
        ).start()
    return _send_outbox(settings)


def _send_later(settings: Settings, delays: tuple[float, ...]) -> None:
    waited = 0.0
    for delay in delays:
        time.sleep(max(0.0, delay - waited))
        waited = delay
        _send_outbox(settings)


def _send_outbox(settings: Settings) -> int:
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
