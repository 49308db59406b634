"""The one consume loop every agent runs: poll -> handle -> (dead-letter) ->
flush -> commit, with transient failures retried while the process stays up.

An agent is a :class:`Handler`; the runner owns the Kafka side (clients are
passed in, so tests use :mod:`streams.kafka.testing`). Per record the handler
gets a :class:`Ticket`:

- it returns normally: the record is done and its offset may be committed;
- it raises a transient error (:func:`~gleaner.errors.is_transient`: a
  :class:`~gleaner.errors.ServiceError`, Redis, CouchDB, Docker or Kafka trouble):
  the same record is handled again after a backoff, fetching paused meanwhile so
  order holds; nothing is committed past it;
- it raises anything else (a :class:`~gleaner.errors.MalformedEvent`, a
  container's failure, a DAG that cannot run, a bug): it would fail the same way
  again, so the record is dead-lettered with the reason
  (:func:`dead_letter_reason`) and the stream goes on: a poison event never
  stops a stream;
- it calls :meth:`Ticket.defer` and settles the ticket later from any thread
  (an invoker's activation, a record sink's batch).

With a :class:`~streams.kafka.signing.Signer` in its config (every agent's,
through :meth:`RunnerConfig.for_settings`), the runner is the first check of
who wrote a record: an unsigned or forged one is dead-lettered before the
handler sees it. An entry topic's runner (``tenant_entry``) passes unsigned
records on: its handler proves the tenant's credential itself.

Commits follow :class:`~streams.kafka.checkpoint.Checkpoint`. On a rebalance
the done records of the partitions that go are committed, and the handler is
told so it drops state it kept per partition.

A :class:`Follower` is the runner of a group-less reader (every replica reads
every record from the end, e.g. the gateway's completions): same loop, but it
commits nothing, produces nothing, and only logs what it refuses (or, the one
follower of a topic no group reads, dead-letters it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gleaner.errors import GleanerError, KafkaError, MalformedEvent, is_transient
from gleaner.metrics import DEADLETTERS, KAFKA_HOP_SECONDS
from gleaner.settings_sections import KafkaSettings
from streams.kafka.checkpoint import Checkpoint
from streams.kafka.client import RebalanceListener, Record, oversize, signature_rejects
from streams.kafka.offsets import TopicPartition
from streams.kafka.signing import Signer

log = logging.getLogger(__name__)

# A runner with nothing in flight and no record for QUIET_AFTER_S polls this long
# per turn instead of ``poll_timeout_s``: a record still ends the poll at once,
# only the handler's ticks (timers for work in flight) come less often at idle.
QUIET_AFTER_S = 1.0
QUIET_POLL_TIMEOUT_S = 0.25


class Source(Protocol):
    """What the runner needs of a consumer (:class:`EventConsumer` is one)."""

    def poll(self, timeout_s: float) -> Record | None: ...

    def commit(self, offsets: dict[TopicPartition, int]) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def listen(self, listener: RebalanceListener) -> None: ...

    def close(self) -> None: ...


class Sink(Protocol):
    """What the runner needs of a producer (:class:`EventProducer` is one)."""

    def produce(
        self,
        topic: str,
        value: bytes,
        key: str | bytes | None = None,
        on_delivered: Callable[[], None] | None = None,
    ) -> None: ...

    def flush(self, timeout_s: float = 10.0) -> None: ...

    def close(self) -> None: ...


class DeadLetterSink(Protocol):
    def send(self, record: Record, reason: str) -> None: ...


class Ticket:
    """One record's way to done. Settle it once: :meth:`done` or :meth:`dead_letter`."""

    __slots__ = ("_lock", "_runner", "_settled", "deferred", "record")

    def __init__(self, record: Record, runner: ConsumeRunner) -> None:
        self.record = record
        self._runner = runner
        self.deferred = False
        self._settled = False
        self._lock = threading.Lock()

    def defer(self) -> Ticket:
        """The handler settles this ticket later (from any thread)."""
        self.deferred = True
        return self

    def done(self) -> None:
        if self._settle():
            self._runner._done(self.record)

    def dead_letter(self, reason: str) -> None:
        if self._settle():
            self._runner._dead_letter(self.record, reason)

    @property
    def settled(self) -> bool:
        return self._settled

    def _settle(self) -> bool:
        with self._lock:
            first, self._settled = not self._settled, True
            return first


class Handler:
    """An agent's logic behind the runner. Only :meth:`handle` is required."""

    def handle(self, record: Record, ticket: Ticket) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Before the first poll (start background threads here)."""

    def tick(self) -> None:
        """Every loop turn, between records (timers, retries, batches)."""

    def assigned(self, tps: list[TopicPartition]) -> None:
        """Partitions gained in a rebalance."""

    def revoked(self, tps: list[TopicPartition]) -> None:
        """Partitions lost in a rebalance: drop state kept for them."""

    def committed(self) -> None:
        """After a commit held."""

    def close(self) -> None:
        """After the last commit, once the loop has ended."""


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    poll_timeout_s: float = 0.05
    commit_interval_s: float = 0.2
    max_in_flight: int = 256  # stop fetching beyond this many unsettled records (back-pressure)
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    # Events above this are dead-lettered unread: any Kafka client can produce
    # more than our own producers ever would (the broker's limit may be higher).
    max_event_bytes: int | None = None
    # Records must carry the platform signature (Gleaner's own components wrote them).
    signer: Signer | None = None
    # An entry topic tenants may write to: unsigned records reach the handler, which
    # proves their credential; a signature that is present must still hold.
    tenant_entry: bool = False
    # A member that lost its partitions in a rebalance and is given none back (not even an
    # empty assignment) for this long gives up, so the supervisor starts it afresh: after a
    # broker paused for seconds, Tansu was seen never to finish the group's rejoin.
    rejoin_timeout_s: float = 30.0

    @classmethod
    def for_settings(cls, settings: KafkaSettings, **overrides: Any) -> RunnerConfig:
        fields: dict[str, Any] = {
            "max_event_bytes": settings.kafka_message_max_bytes,
            "signer": Signer.for_settings(settings),
        }
        return cls(**{**fields, **overrides})


@dataclass(slots=True)
class _Retry:
    record: Record
    attempts: int
    at: float  # monotonic time of the next attempt
    error: str


class ConsumeRunner:
    def __init__(
        self,
        name: str,
        source: Source,
        sink: Sink,
        deadletters: DeadLetterSink,
        handler: Handler,
        config: RunnerConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.source = source
        self.sink = sink
        self.deadletters = deadletters
        self.handler = handler
        self.config = config or RunnerConfig()
        self._clock = clock
        self.checkpoint = Checkpoint(source, sink, self.config.commit_interval_s, clock)
        self._backlog: deque[Record] = deque()  # fetched while a retry held the stream
        self._retry: _Retry | None = None
        self._stop = threading.Event()
        self._last_record = clock()
        self._revoked_at: float | None = None  # lost its partitions, none given back since
        self.retries = 0  # transient failures met, for operators and tests
        self.dead_lettered = 0
        source.listen(self)

    # -- lifecycle ---------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def stopping_event(self) -> threading.Event:
        """Set when the runner stops: background threads of the agent end on it."""
        return self._stop

    def run(self) -> None:
        self.handler.start()
        try:
            while not self._stop.is_set():
                self.run_once()
        finally:
            try:
                self._commit()
                self.handler.close()
                self._commit()  # what closing settled
            finally:
                self.source.close()
                self.sink.close()

    def run_once(self) -> None:
        """One turn: a retry that is due, else one record, then tick and commit."""
        if self._retry is not None:
            if self._clock() >= self._retry.at:
                self._attempt(self._retry.record, self._retry.attempts)
            else:
                self._keep_fetched(self.source.poll(min(self.config.poll_timeout_s, self._wait())))
        elif self._backlog:
            self._attempt(self._backlog.popleft(), 0)
        elif self.checkpoint.in_flight() < self.config.max_in_flight:
            record = self.source.poll(self.poll_timeout())
            if record is not None:
                self._last_record = self._clock()
                self._attempt(record, 0)
        else:
            self._stop.wait(0.01)
        self._tick()
        if self.checkpoint.due():
            self._commit()
        if self._revoked_at is not None and self._clock() - self._revoked_at > self.config.rejoin_timeout_s:
            waited = f"{self.config.rejoin_timeout_s:g} s"
            raise KafkaError(f"{self.name}: no partitions given back {waited} after a rebalance; restarting")

    # -- one record --------------------------------------------------------------
    def _attempt(self, record: Record, attempts: int) -> None:
        tp = (record.topic, record.partition)
        if attempts == 0:
            self.checkpoint.started(tp, record.offset)
            if record.timestamp_ms is not None:  # producer's clock: skewed across hosts
                KAFKA_HOP_SECONDS.labels(record.topic).observe(
                    max(0.0, time.time() - record.timestamp_ms / 1000)
                )
        ticket = Ticket(record, self)
        reason = oversize(record.value, self.config.max_event_bytes) or self._forged(record)
        if reason is not None:
            ticket.dead_letter(reason)
            return
        try:
            self.handler.handle(record, ticket)
        except Exception as exc:
            if is_transient(exc):
                if ticket.settled:  # it had already finished its part; the error came after
                    log.warning("%s: %s after settling %s", self.name, exc, _where(record))
                else:
                    self._hold(record, attempts + 1, str(exc))
                return
            # It would fail the same way again: park the event with why, the stream goes on.
            if not isinstance(exc, GleanerError):  # a bug: its trace goes to the log
                log.exception("%s: handler failed on %s", self.name, _where(record))
            elif not isinstance(exc, MalformedEvent):
                log.warning("%s: %s dead-lettered: %s", self.name, _where(record), exc)
            ticket.dead_letter(dead_letter_reason(exc))
        else:
            if not ticket.deferred:
                ticket.done()
        if self._retry is not None and self._retry.record is record:
            self._retry = None
            self.source.resume()
            log.info("%s: %s handled after %d retries", self.name, _where(record), attempts)

    def _forged(self, record: Record) -> str | None:
        signer = self.config.signer
        if signer is None:
            return None
        if self.config.tenant_entry:  # an unsigned event is a tenant's: the handler proves its credential
            return signer.entry_rejects(record.topic, record.key, record.value, record.headers)
        return signature_rejects(signer, record)

    def _hold(self, record: Record, attempts: int, error: str) -> None:
        delay = min(self.config.backoff_max_s, self.config.backoff_initial_s * 2 ** (attempts - 1))
        if self._retry is None:
            self.source.pause()  # later records wait: order per partition holds
        self._retry = _Retry(record, attempts, self._clock() + delay, error)
        self.retries += 1
        log.warning(
            "%s: %s failed (%s); retry %d in %.1fs", self.name, _where(record), error, attempts, delay
        )

    def poll_timeout(self) -> float:
        """How long the next poll may block: longer once the stream is quiet with
        nothing in flight (an idle runner then wakes 4 times a second, not 20)."""
        quiet = self.checkpoint.in_flight() == 0 and self._clock() - self._last_record >= QUIET_AFTER_S
        return max(self.config.poll_timeout_s, QUIET_POLL_TIMEOUT_S) if quiet else self.config.poll_timeout_s

    def _wait(self) -> float:
        return max(0.0, self._retry.at - self._clock()) if self._retry is not None else 0.0

    def _keep_fetched(self, record: Record | None) -> None:
        if record is not None:  # fetched before the pause took effect
            self._backlog.append(record)

    # -- settling (any thread) -----------------------------------------------------
    def _done(self, record: Record) -> None:
        self.checkpoint.done((record.topic, record.partition), record.offset)

    def _dead_letter(self, record: Record, reason: str) -> None:
        if self._park(record, reason):
            self._done(record)

    def _park(self, record: Record, reason: str) -> bool:
        """Send ``record`` to the dead letters with why; False (logged) when that failed."""
        self.dead_lettered += 1
        DEADLETTERS.labels(record.topic).inc()
        try:
            self.deadletters.send(record, reason)
        except Exception as exc:
            log.error("%s: dead letter for %s not sent: %s", self.name, _where(record), exc)
            return False
        return True

    # -- timers and commits --------------------------------------------------------
    def _tick(self) -> None:
        try:
            self.handler.tick()
        except Exception:  # a timer's failure is logged; the next turn tries again
            log.exception("%s: tick failed", self.name)

    def _commit(self) -> None:
        if self.checkpoint.commit():
            self.handler.committed()

    # -- rebalances (called from inside poll) -----------------------------------------
    def assigned(self, tps: list[TopicPartition]) -> None:
        log.info("%s: assigned %s", self.name, tps)
        self._revoked_at = None
        if self._retry is not None:
            self.source.pause()  # new partitions arrive unpaused
        self.handler.assigned(tps)

    def revoked(self, tps: list[TopicPartition]) -> None:
        log.info("%s: revoked %s", self.name, tps)
        self._revoked_at = self._clock()
        gone = set(tps)
        self.checkpoint.revoke(tps)
        self._backlog = deque(r for r in self._backlog if (r.topic, r.partition) not in gone)
        if self._retry is not None and (self._retry.record.topic, self._retry.record.partition) in gone:
            self._retry = None  # the next owner handles it
            self.source.resume()
        self.handler.revoked(tps)


class _NoOutput:
    """A follower's sink and committer: it writes nothing anywhere."""

    def produce(
        self,
        topic: str,
        value: bytes,
        key: str | bytes | None = None,
        on_delivered: Callable[[], None] | None = None,
    ) -> None:
        raise KafkaError(f"a follower produces nothing (asked to write to {topic})")

    def flush(self, timeout_s: float = 10.0) -> None:
        return None

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        return None

    def send(self, record: Record, reason: str) -> None:
        return None

    def close(self) -> None:
        return None


class Follower(ConsumeRunner):
    """The runner of a group-less reader: every replica reads every record of its topics
    from the end. Its source is an :class:`~streams.kafka.client.EventConsumer` with
    ``assign_latest``, which also reads a partition again from its start once the broker
    restarted its log. With no group it commits nothing, and it produces nothing. A record
    it refuses (unsigned or forged, oversize, or its handler failed on it) is logged and
    passed over, not dead-lettered: the topic's own consumer group dead-letters it once,
    where every replica would send it again. A topic no group reads (the heartbeats) has
    one follower given ``deadletters``, which parks what it refuses, and goes on either way.

    With ``stop`` it ends when that event is set (its component's, shared by the followers
    it opens one after another)."""

    def __init__(
        self,
        name: str,
        source: Source,
        handler: Handler,
        config: RunnerConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        deadletters: DeadLetterSink | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        nothing = _NoOutput()
        parks = deadletters if deadletters is not None else nothing
        super().__init__(name, source, nothing, parks, handler, config, clock)
        self.checkpoint = Checkpoint(nothing, nothing, self.config.commit_interval_s, clock)
        self._parks = deadletters is not None
        if stop is not None:
            self._stop = stop
        self.passed_over = 0  # refused records, logged only
        self.turns = 0  # loop turns that ended (their poll went through): the consumer works

    def run_once(self) -> None:
        super().run_once()
        self.turns += 1

    def _dead_letter(self, record: Record, reason: str) -> None:
        if self._parks:
            self._park(record, reason)  # a dead letter not sent is logged; the follower goes on
        else:
            self.passed_over += 1
            log.warning("%s: ignoring %s: %s", self.name, _where(record), reason)
        self._done(record)


def dead_letter_reason(exc: Exception, step: str = "handler") -> str:
    """Why a record is dead-lettered whose handler raised ``exc``, an error not worth
    retrying: a bad event says what is wrong with it, another Gleaner error names its
    cause (an OOM-killed container, a DAG that cannot run), anything else is a bug
    (of ``step``: the runner's handler, the predictor's planning)."""
    if isinstance(exc, MalformedEvent):
        return str(exc)
    if isinstance(exc, GleanerError):
        return f"{type(exc).__name__}: {exc}"
    return f"{step} failed: {type(exc).__name__}: {exc}"


def _where(record: Record) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"
