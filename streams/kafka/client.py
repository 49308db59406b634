"""The one boundary to Kafka: typed wrappers over confluent-kafka.

Commit order for at-least-once (as quix-streams' checkpoint writes it down):
a consumer first produces everything an input caused, then flushes the
producer, and only then commits the input's offset. A crash between the two
replays the input; consumers are idempotent on the event's id, so the replay
changes nothing.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import confluent_kafka
import orjson
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from gleaner.errors import EventTooLarge, KafkaError, SettingsError
from gleaner.metrics import CONSUMER_LAG, consumer_lags
from gleaner.settings_sections import KafkaSettings
from streams.kafka.doorbell import Bell
from streams.kafka.doze import PAUSE, Doze
from streams.kafka.signing import Headers, Signer, normalize_headers

log = logging.getLogger(__name__)

PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


def security_config(settings: KafkaSettings) -> dict[str, Any]:
    """librdkafka's SASL properties for a broker that wants them (empty for PLAINTEXT)."""
    protocol = settings.kafka_security_protocol.upper()
    if protocol not in PROTOCOLS:
        raise SettingsError(f"GLEANER_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}")
    if protocol == "PLAINTEXT":
        return {}
    mechanism = settings.kafka_sasl_mechanism.upper()
    if mechanism not in SASL_MECHANISMS:
        raise SettingsError(f"GLEANER_KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}")
    if not settings.kafka_sasl_username:
        raise SettingsError(f"{protocol} needs GLEANER_KAFKA_SASL_USERNAME and _PASSWORD")
    config = {
        "security.protocol": protocol,
        "sasl.mechanism": mechanism,
        "sasl.username": settings.kafka_sasl_username,
        "sasl.password": settings.kafka_sasl_password,
    }
    if protocol == "SASL_SSL" and settings.kafka_ssl_ca_location:
        config["ssl.ca.location"] = settings.kafka_ssl_ca_location
    return config


def _common(settings: KafkaSettings) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "message.max.bytes": settings.kafka_message_max_bytes,
        "log_level": 3,
        **security_config(settings),
    }


def producer_config(settings: KafkaSettings) -> dict[str, Any]:
    # linger 0: the hot path sends one event at a time and waits on it.
    # murmur2 like the Java client: a key lands on the same partition whoever produced it.
    return {
        **_common(settings),
        "linger.ms": 0,
        "acks": "all",
        "enable.idempotence": False,
        "partitioner": "murmur2_random",
    }


def fetch_wait_ms(settings: KafkaSettings, hot: bool, override_ms: int | None = None) -> int:
    """A consumer's fetch wait: its own if given, else the hot path's or the off-path one."""
    if override_ms is not None:
        return override_ms
    return settings.kafka_fetch_wait_max_ms if hot else settings.kafka_fetch_wait_idle_ms


def consumer_config(
    settings: KafkaSettings,
    group_id: str,
    *,
    from_beginning: bool = True,
    hot: bool = True,
    wait_ms: int | None = None,
) -> dict[str, Any]:
    return {
        **_common(settings),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "session.timeout.ms": settings.kafka_session_timeout_ms,
        "heartbeat.interval.ms": settings.kafka_heartbeat_interval_ms,
        # Long fetch waits are the usual cause of slow hops (DESIGN.md).
        "fetch.wait.max.ms": fetch_wait_ms(settings, hot, wait_ms),
        "fetch.max.bytes": settings.kafka_message_max_bytes * 2,
        "max.partition.fetch.bytes": settings.kafka_message_max_bytes,
    }


def _record_lag(group: str, raw: str) -> None:
    try:
        stats = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return
    for topic, partition, lag in consumer_lags(stats):
        CONSUMER_LAG.labels(group, topic, partition).set(lag)


def member_id(component: str) -> str:
    """A stable group instance id for ``component`` on this host."""
    return f"{component}@{socket.gethostname()}"


class RebalanceListener(Protocol):
    def assigned(self, tps: list[tuple[str, int]]) -> None: ...

    def revoked(self, tps: list[tuple[str, int]]) -> None: ...


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed Kafka record, detached from librdkafka's Message."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None  # the broker's or producer's time, when the record has one
    headers: Headers = ()  # (name, value) pairs: the platform signature or a tenant's credential


def oversize(value: bytes | None, limit: int | None) -> str | None:
    """Why an event is too large to read on, or None: every first consumer's one size rule."""
    size = len(value or b"")
    if limit is None or size <= limit:
        return None
    return f"an event of {size} bytes is above the limit of {limit} bytes"


def signature_rejects(signer: Signer, record: Record) -> str | None:
    """Why ``record`` was not written by a Gleaner component, or None when it was."""
    return signer.rejects(record.topic, record.key, record.value, record.headers)


def _record(msg: Any) -> Record:
    key = msg.key()
    kind, stamp = msg.timestamp()
    return Record(
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        key=key if isinstance(key, bytes) else None,
        value=msg.value(),
        timestamp_ms=stamp if kind != confluent_kafka.TIMESTAMP_NOT_AVAILABLE else None,
        headers=normalize_headers(msg.headers()),
    )


class EventProducer:
    """Thread-safe producer; a background thread serves delivery callbacks. Every
    event carries the platform signature, so its first consumer knows Gleaner wrote it.
    With a ``bell`` it rings each topic it writes to (paced by the bell), so the
    topic's dozing consumers wake before the record lands."""

    def __init__(self, settings: KafkaSettings, bell: Bell | None = None) -> None:
        self.max_bytes = settings.kafka_message_max_bytes
        self._bell = bell
        self._signer = Signer.for_settings(settings)
        try:
            self._producer = confluent_kafka.Producer(producer_config(settings))
        except confluent_kafka.KafkaException as exc:
            raise KafkaError(f"cannot create producer for {settings.kafka_bootstrap}: {exc}") from exc
        self._errors: list[str] = []
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="kafka-producer-poll", daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        # poll returns as soon as a delivery report is due: the timeout only bounds close()
        while not self._stop.is_set():
            self._producer.poll(0.5)

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def produce(
        self,
        topic: str,
        value: bytes,
        key: str | bytes | None = None,
        on_delivered: Callable[[], None] | None = None,
    ) -> None:
        """Queue one event. ``on_delivered`` runs (on the poll thread) once the broker has it."""
        callback: Callable[[Any, Any], None] = self._on_delivery
        if on_delivered is not None:

            def delivered(err: Any, msg: Any) -> None:
                self._on_delivery(err, msg)
                if err is None:
                    on_delivered()

            callback = delivered

        headers = self._signer.headers(topic, key, value)
        if self._bell is not None:
            self._bell.ring(topic)
        try:
            self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=callback)
        except BufferError:
            self._producer.flush(5)
            self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=callback)
        except confluent_kafka.KafkaException as exc:
            if exc.args and exc.args[0].code() == confluent_kafka.KafkaError.MSG_SIZE_TOO_LARGE:
                # Permanent for this event: the caller dead-letters what caused it.
                raise EventTooLarge(
                    f"an event of {len(value)} bytes for {topic} is above the limit of {self.max_bytes} bytes"
                ) from exc
            raise KafkaError(f"produce to {topic} failed: {exc}") from exc

    def flush(self, timeout_s: float = 10.0) -> None:
        left = self._producer.flush(timeout_s)
        if left:
            raise KafkaError(f"{left} events not delivered within {timeout_s}s")
        if self._errors:
            errors, self._errors = self._errors, []
            raise KafkaError(f"delivery failed: {errors[0]} ({len(errors)} events)")

    def close(self) -> None:
        try:
            self._producer.flush(5)
        finally:
            self._stop.set()
            self._poller.join(1)


FOLLOW_CHECK_S = 1.0  # how often an idle group-less reader checks for a restarted log
FOLLOW_QUERY_S = 0.5


def restarted_partitions(
    seen_ends: dict[tuple[str, int], int], ends: dict[tuple[str, int], tuple[int, int]]
) -> dict[tuple[str, int], int]:
    """Partitions whose log end went back below the end seen before (a living log only
    grows: the broker lost it and began again), each with the offset to read again from,
    the log's start. Pure."""
    out = {}
    for tp, (low, high) in ends.items():
        if 0 <= high < seen_ends.get(tp, -1):
            out[tp] = max(0, low)
    return out


class EventConsumer:
    """A consumer in a group (``group_id``) or, with ``assign_latest``, a
    group-less reader of every partition from the end (for listeners that
    each need every event, such as a gateway waiting on completions).

    It dozes at idle (:mod:`streams.kafka.doze`). With a ``bell`` it wakes when
    one of its topics, or of ``wake_on`` (topics whose records cause records on
    its own, written by a producer that rings no bell), rings, and then probes
    only every ``kafka_doorbell_probe_every_ms``. A reader calls ``on_restart``
    (on its polling thread) when it sees the broker restarted without its log."""

    def __init__(
        self,
        settings: KafkaSettings,
        group_id: str,
        topics: Iterable[str],
        *,
        from_beginning: bool = True,
        assign_latest: bool = False,
        hot: bool = True,
        co_partitioned: bool = False,
        instance_id: str | None = None,
        wait_ms: int | None = None,
        bell: Bell | None = None,
        wake_on: Iterable[str] = (),
        on_restart: Callable[[], object] | None = None,
    ) -> None:
        self.topics = list(topics)
        self._on_restart = on_restart
        self._follows = assign_latest
        self._last_follow_check = time.monotonic()
        self._seen_ends: dict[tuple[str, int], int] = {}  # a reader's partitions: their log end
        self._listener: RebalanceListener | None = None
        self._held = False  # paused by the caller (a retry hold): never resumed by dozing
        self._doze: Doze | None = None
        # The doze state, shared by the polling thread and the bell's thread; never held
        # across a librdkafka call (see _rung).
        self._lock = threading.Lock()
        self._unlisten: Callable[[], None] | None = None
        if settings.kafka_idle_after_ms > 0:
            wait_s = fetch_wait_ms(settings, hot, wait_ms) / 1000
            probe_every_ms = settings.kafka_doze_probe_every_ms
            if bell is not None:
                probe_every_ms = max(probe_every_ms, settings.kafka_doorbell_probe_every_ms)
            self._doze = Doze(
                idle_after_s=settings.kafka_idle_after_ms / 1000,
                probe_every_s=probe_every_ms / 1000,
                # Long enough for the resumed fetcher to send a fetch and get its answer.
                probe_for_s=3 * wait_s + 0.005,
                last_record=time.monotonic(),
            )
        config = consumer_config(settings, group_id, from_beginning=from_beginning, hot=hot, wait_ms=wait_ms)
        if instance_id and settings.kafka_static_membership:
            # Static membership (KIP-345): a restarted member with the same id gets its
            # partitions back at once instead of waiting out the dead member's session.
            config["group.instance.id"] = instance_id
        if settings.kafka_stats_interval_ms > 0 and not assign_latest:
            # Consumer lag per partition for the metrics (a few KB of JSON per interval).
            config["statistics.interval.ms"] = settings.kafka_stats_interval_ms
            config["stats_cb"] = functools.partial(_record_lag, group_id)
        if co_partitioned:
            # range gives a member the same partition numbers of every topic it reads
            config["partition.assignment.strategy"] = "range"
        try:
            self._consumer = confluent_kafka.Consumer(config)
            if assign_latest:
                parts = []
                meta = self._consumer.list_topics(timeout=10)
                for topic in self.topics:
                    if topic not in meta.topics:
                        raise KafkaError(f"topic {topic} does not exist")
                    for p in meta.topics[topic].partitions:
                        # The end as a number, not OFFSET_END: a logical offset is resolved at
                        # the first fetch, and events produced before it would be skipped.
                        tp = confluent_kafka.TopicPartition(topic, p)
                        _low, high = self._consumer.get_watermark_offsets(tp, timeout=10)
                        parts.append(confluent_kafka.TopicPartition(topic, p, high))
                        self._seen_ends[(topic, p)] = high
                self._consumer.assign(parts)
            else:
                self._consumer.subscribe(self.topics, on_assign=self._assigned, on_revoke=self._revoked)
        except confluent_kafka.KafkaException as exc:
            raise KafkaError(f"cannot consume {self.topics}: {exc}") from exc
        if bell is not None and self._doze is not None:
            self._unlisten = bell.listen([*self.topics, *wake_on], self._rung)

    def _rung(self) -> None:
        """A doorbell rang (on the bell's thread): resume now, not at the next poll."""
        with self._lock:
            if self._doze is None or self._held:
                return
            change = self._doze.rung(time.monotonic())
        # librdkafka is called outside the lock: inside a rebalance it blocks this thread
        # until the polling thread's callback returns, and that callback takes the lock
        # (held across the call, the two waited on each other for good after a broker pause).
        self._apply(change)

    def listen(self, listener: RebalanceListener) -> None:
        """Tell ``listener`` which partitions this member gains and loses
        (called from inside :meth:`poll`, on the polling thread)."""
        self._listener = listener

    def _assigned(self, consumer: Any, parts: list[Any]) -> None:
        # On the polling thread, inside poll: a ring meanwhile waits for the lock.
        with self._lock:
            wake = self._doze is not None and not self._held
            if self._doze is not None and wake:
                self._doze.wake(time.monotonic())
        if wake:
            # A partition paused while this member dozed may come back still paused:
            # a new assignment fetches, and counts as fresh traffic.
            with contextlib.suppress(confluent_kafka.KafkaException):
                consumer.resume(parts)
        if self._listener is not None:
            self._listener.assigned([(tp.topic, tp.partition) for tp in parts])

    def _revoked(self, _consumer: Any, parts: list[Any]) -> None:
        if self._listener is not None:
            self._listener.revoked([(tp.topic, tp.partition) for tp in parts])

    def pause(self) -> None:
        """Stop fetching (polls keep the membership alive) until :meth:`resume`."""
        with self._lock:
            self._held = True
        try:
            self._consumer.pause(self._consumer.assignment())
        except confluent_kafka.KafkaException as exc:
            raise KafkaError(f"pause failed: {exc}") from exc

    def resume(self) -> None:
        with self._lock:
            self._held = False
            if self._doze is not None:
                self._doze.wake(time.monotonic())
        try:
            parts = self._consumer.assignment()
            self._consumer.resume(parts)
        except confluent_kafka.KafkaException as exc:
            raise KafkaError(f"resume failed: {exc}") from exc
        self._kick(parts)

    def poll(self, timeout_s: float) -> Record | None:
        doze = None if self._held else self._doze
        if doze is not None:
            now = time.monotonic()
            with self._lock:
                change = doze.step(now)
                timeout_s = doze.wait_s(now, timeout_s)
            self._apply(change)
        msg = self._consumer.poll(timeout_s)
        if msg is None:
            self._follow_check(time.monotonic(), soon=False)
            return None
        err = msg.error()
        if err is not None:
            if err.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                return None
            if err.retriable() or not err.fatal():
                self._follow_check(time.monotonic(), soon=True)
                return None
            raise KafkaError(f"consume failed: {err}")
        if doze is not None:  # a probe's partitions are already resumed; a new assignment's too
            with self._lock:
                change = doze.seen(time.monotonic())
            self._apply(change)
        return _record(msg)

    def _follow_check(self, now: float, *, soon: bool) -> None:
        """A group-less reader (``assign_latest``) rewinds a partition whose log restarted.

        A broker that lost its log (the embedded memory broker after a crash) starts each
        partition again at 0, while this reader still waits at its old offset: librdkafka sees
        no error from Tansu, so without this it would hear nothing ever again. A group member
        needs none of this: its group and committed offsets went with the broker, and it
        re-joins from the start. Checked when idle, every FOLLOW_CHECK_S (a quarter of it
        after a broker error); one unanswered query ends a check."""
        if not self._follows or now - self._last_follow_check < FOLLOW_CHECK_S / (4 if soon else 1):
            return
        self._last_follow_check = now
        try:
            positions = self._consumer.position(self._consumer.assignment())
            ends: dict[tuple[str, int], tuple[int, int]] = {}
            for tp in positions:
                ends[(tp.topic, tp.partition)] = self._consumer.get_watermark_offsets(
                    tp, timeout=FOLLOW_QUERY_S, cached=False
                )
        except confluent_kafka.KafkaException as exc:  # broker away or topic not back yet
            log.debug("follow check of %s failed: %s", self.topics, exc)
            return
        where = {(tp.topic, tp.partition): tp.offset for tp in positions}
        rewind = restarted_partitions(self._seen_ends, ends)
        self._seen_ends.update({tp: high for tp, (_low, high) in ends.items()})
        if not rewind:
            return
        log.warning("the broker restarted %s; reading them again from their start", sorted(rewind))
        parts = [confluent_kafka.TopicPartition(t, p, rewind.get((t, p), where[(t, p)])) for (t, p) in where]
        with contextlib.suppress(confluent_kafka.KafkaException):
            self._consumer.assign(parts)
        if self._on_restart is not None:
            try:
                self._on_restart()
            except Exception:  # the watcher's trouble must not stop this reader
                log.exception("telling of the broker restart failed")

    def _apply(self, change: str | None) -> None:
        """Pause or resume for dozing; a failure only costs the idle saving."""
        if change is None:
            return
        try:
            parts = self._consumer.assignment()
            if change == PAUSE:
                self._consumer.pause(parts)
            else:
                self._consumer.resume(parts)
                self._kick(parts)
        except (confluent_kafka.KafkaException, RuntimeError) as exc:  # RuntimeError: closed meanwhile
            log.debug("doze %s failed: %s", change, exc)

    def _kick(self, parts: list[Any]) -> None:
        """Fetch now. librdkafka's broker thread notices a resume only when it next wakes,
        up to ~1 s later (measured here: 0.2-1 s); a request to the partition's leader wakes
        it, and the first fetch goes out within ~5 ms. (With several brokers, the others'
        partitions still wait for their thread's next wake.)"""
        if parts:
            with contextlib.suppress(confluent_kafka.KafkaException):
                self._consumer.get_watermark_offsets(parts[0], timeout=1, cached=False)

    def assigned_partitions(self) -> set[int]:
        try:
            return {tp.partition for tp in self._consumer.assignment()}
        except confluent_kafka.KafkaException:
            return set()

    def partition_count(self, topic: str) -> int:
        meta = self._consumer.list_topics(topic, timeout=10)
        if topic not in meta.topics:
            raise KafkaError(f"topic {topic} does not exist")
        return len(meta.topics[topic].partitions)

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Commit ``{(topic, partition): next_offset_to_read}`` synchronously."""
        if not offsets:
            return
        parts = [confluent_kafka.TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            self._consumer.commit(offsets=parts, asynchronous=False)
        except confluent_kafka.KafkaException as exc:
            raise KafkaError(f"offset commit failed: {exc}") from exc

    def close(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
        with self._lock:  # no ring resumes a closed consumer
            self._doze = None
        self._consumer.close()


def read_topic(settings: KafkaSettings, topic: str, *, timeout_s: float = 30.0) -> list[Record]:
    """Every record of ``topic`` present now, from the beginning of each
    partition up to its end when called, without joining a group."""
    try:
        consumer = confluent_kafka.Consumer(consumer_config(settings, "gleaner-reader", hot=True))
    except confluent_kafka.KafkaException as exc:
        raise KafkaError(f"cannot read {topic}: {exc}") from exc
    try:
        meta = consumer.list_topics(topic, timeout=10)
        if topic not in meta.topics or meta.topics[topic].error is not None:
            raise KafkaError(f"topic {topic} does not exist")
        ends: dict[int, int] = {}
        parts = []
        for p in meta.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
                parts.append(confluent_kafka.TopicPartition(topic, p, low))
        consumer.assign(parts)
        out: list[Record] = []
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            record = _record(msg)
            out.append(record)
            if record.offset + 1 >= ends.get(record.partition, 0):
                ends.pop(record.partition, None)
        if ends:
            raise KafkaError(f"reading {topic} timed out after {timeout_s}s ({len(out)} records read)")
        return out
    except confluent_kafka.KafkaException as exc:
        raise KafkaError(f"cannot read {topic}: {exc}") from exc
    finally:
        consumer.close()


def ensure_topics(settings: KafkaSettings, names: Iterable[str], partitions: int | None = None) -> list[str]:
    """Create the topics that do not exist yet; return the ones created."""
    admin = AdminClient(_common(settings))
    try:
        existing = set(admin.list_topics(timeout=10).topics)
    except confluent_kafka.KafkaException as exc:
        raise KafkaError(f"cannot list topics on {settings.kafka_bootstrap}: {exc}") from exc
    wanted = [n for n in dict.fromkeys(names) if n not in existing]
    if not wanted:
        return []
    count = partitions or settings.topic_partitions
    futures = admin.create_topics([NewTopic(n, num_partitions=count, replication_factor=1) for n in wanted])
    for name, fut in futures.items():
        try:
            fut.result(15)
        except confluent_kafka.KafkaException as exc:
            if exc.args and exc.args[0].code() == confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise KafkaError(f"cannot create topic {name}: {exc}") from exc
    return wanted
