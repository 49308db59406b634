"""Open-loop replay: produce each trace entry to ``dag.requests`` at its
arrival time, and collect what every request came to.

A sender thread keeps the schedule: it never waits for an earlier request to
finish, so arrivals stay independent of the platform (open loop, as the
thesis's evaluation and ReSC's trigger replay). The calling thread listens to
``dag.results`` and ``activations.completed`` from their current end, keeps
only the events of this replay's request ids (so two replays never mix their
results), and ends when every request has its DAG-level record, or when the
deadline passes; what never finished is reported as ``unfinished``.

Clients are passed in (a producer, a listener factory, an input offloader),
so the whole loop runs against in-memory fakes in unit tests.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tqdm import tqdm

from gleaner.errors import MalformedEvent
from streams.events import DagRequest, decode, now_ms
from streams.payloads import size_of
from streams.replay.outcomes import UNFINISHED, RequestOutcome, settle
from streams.replay.trace import TraceEntry

log = logging.getLogger(__name__)
CHILD_GRACE_S = 5.0  # after the DAG record, how long to wait for its functions' records


class Producer(Protocol):
    def produce(self, topic: str, value: bytes, key: str | bytes | None = None) -> None: ...
    def flush(self, timeout_s: float = 10.0) -> None: ...


class Received(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def value(self) -> bytes | None: ...


class Listener(Protocol):
    def poll(self, timeout_s: float) -> Received | None: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Topics:
    requests: str
    results: str
    completed: str


@dataclass(slots=True)
class _Tracked:
    outcome: RequestOutcome
    body: dict[str, Any]  # the input as it goes on the wire (may be a reference)
    record: dict[str, Any] | None = None
    record_s: float = 0.0  # seconds since the start, when the DAG record arrived
    result_s: float | None = None  # ... and when its dag.result arrived
    success: bool | None = None
    children: dict[str, dict[str, Any]] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    unsent: bool = False  # its send failed: nothing will ever come back for it

    @property
    def ok(self) -> bool:
        """Succeeded, as far as the events seen so far tell."""
        if self.success is not None:
            return self.success
        return self.record is not None and self.record.get("statusCode") == 0

    def complete(self, elapsed: float) -> bool:
        if self.unsent:
            return True
        if self.record is None:
            return False
        if elapsed - self.record_s > CHILD_GRACE_S:
            return True
        logs = self.record.get("logs") or []
        return self.result_s is not None and all(a in self.children for a in logs)


@dataclass(slots=True)
class ReplayRun:
    policy: str
    outcomes: list[RequestOutcome]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # request id -> result (keep_results)

    @property
    def unfinished(self) -> list[RequestOutcome]:
        return [o for o in self.outcomes if not o.finished]

    @property
    def failed(self) -> list[RequestOutcome]:
        return [o for o in self.outcomes if o.finished and not o.succeeded]

    def latency_by_seq(self) -> dict[str, float | None]:
        """Trace position -> latency (ms) of each request, None unless it succeeded: runs of one
        trace pair up by position, whatever their request ids."""
        return {str(o.seq): (o.latency_ms if o.succeeded else None) for o in self.outcomes}


class Replayer:
    def __init__(
        self,
        producer: Producer,
        listen: Callable[[], Listener],
        topics: Topics,
        namespace: str,
        *,
        offload: Callable[[dict[str, Any], str], dict[str, Any]] | None = None,
    ) -> None:
        self.producer = producer
        self.listen = listen
        self.topics = topics
        self.namespace = namespace
        self.offload = offload

    def run(
        self,
        entries: Sequence[TraceEntry],
        *,
        policy: str,
        speed: float = 1.0,
        deadline_s: float = 630.0,
        progress: bool = True,
        keep_results: bool = False,
        label: str = "replay",
    ) -> ReplayRun:
        """Replay ``entries`` (sorted by offset) under ``policy`` (an entry's own
        policy wins); ``deadline_s`` counts from the last arrival."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        tracked = self._prepare(entries, policy, speed)
        by_id = {t.outcome.request_id: t for t in tracked}
        listener = self.listen()  # listening before the first send: no result can slip by
        start = time.monotonic()
        sender = threading.Thread(target=self._send, args=(tracked, start), name="replay-sender", daemon=True)
        last_arrival = max((t.outcome.scheduled_s for t in tracked), default=0.0)
        deadline = start + last_arrival + deadline_s
        pending = list(tracked)
        failed = 0
        bar = tqdm(total=len(tracked), desc=label, unit="req", disable=not progress, leave=True)
        try:
            sender.start()
            while pending and time.monotonic() < deadline:
                msg = listener.poll(0.1)
                elapsed = time.monotonic() - start
                if msg is not None:
                    self._take(msg, by_id, elapsed)
                finished = [t for t in pending if t.complete(elapsed)]
                if finished:
                    pending = [t for t in pending if t not in finished]
                    failed += sum(not t.ok for t in finished)
                    bar.update(len(finished))
                    bar.set_postfix(failed=failed, refresh=False)
        finally:
            bar.close()
            listener.close()
            sender.join(timeout=5)
        results: dict[str, dict[str, Any]] = {}
        for t in tracked:
            if t.record is not None:
                received = t.result_s if t.result_s is not None else t.record_s
                settle(
                    t.outcome, t.record, t.children.values(), received_s=received, result_success=t.success
                )
            if keep_results and t.result is not None:
                results[t.outcome.request_id] = t.result
        return ReplayRun(policy, [t.outcome for t in tracked], results)

    def _prepare(self, entries: Sequence[TraceEntry], policy: str, speed: float) -> list[_Tracked]:
        """Read every input before the clock starts: no disk I/O on the schedule."""
        tracked = []
        for seq, entry in enumerate(entries):
            rid = uuid.uuid4().hex
            value = entry.load_input()
            outcome = RequestOutcome(
                seq=seq,
                request_id=rid,
                dag=entry.dag,
                policy=entry.policy or policy,
                input=entry.input_path.name if entry.input_path else "inline",
                input_size=size_of(value),
                scheduled_s=round(entry.offset_s / speed, 3),
            )
            tracked.append(_Tracked(outcome, value))
        tracked.sort(key=lambda t: t.outcome.scheduled_s)
        return tracked

    def _send(self, tracked: list[_Tracked], start: float) -> None:
        for t in tracked:
            o = t.outcome
            delay = start + o.scheduled_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                body = self.offload(t.body, self.namespace) if self.offload else t.body
                event = DagRequest(
                    request_id=o.request_id,
                    namespace=self.namespace,
                    dag=o.dag,
                    input=body,
                    policy=o.policy,
                    submitted_ms=now_ms(),
                )
                sent = round(time.monotonic() - start, 4)
                self.producer.produce(self.topics.requests, event.to_bytes(), key=o.request_id)
                o.sent_s = sent
            except Exception as exc:  # one bad send must not stop the schedule
                log.error("request %d (%s) not sent: %s", o.seq, o.request_id, exc)
                o.error = f"not sent: {exc}"
                t.unsent = True
            t.body = {}  # the input is no longer needed; free it during long runs
        try:
            self.producer.flush(30)
        except Exception as exc:
            log.error("flushing the replay's requests failed: %s", exc)

    def _take(self, msg: Received, by_id: dict[str, _Tracked], elapsed: float) -> None:
        try:
            event = decode(msg.value)
        except MalformedEvent:
            return  # not ours to judge: the platform dead-letters malformed events
        if msg.topic == self.topics.results:
            t = by_id.get(str(event.get("request_id")))
            if t is not None and t.result_s is None:
                t.result_s = elapsed
                t.success = bool(event.get("success"))
                result = event.get("result")
                t.result = result if isinstance(result, dict) else None
            return
        aid, caused_by = str(event.get("activation_id")), event.get("caused_by")
        record = event.get("record")
        if not isinstance(record, dict):
            return
        if caused_by is None and aid in by_id:
            t = by_id[aid]
            if t.record is None:
                t.record, t.record_s = record, elapsed
        elif isinstance(caused_by, str) and caused_by in by_id:
            by_id[caused_by].children.setdefault(aid, record)


def outcome_line(o: RequestOutcome) -> str:
    """One line per request that did not succeed, for reports."""
    what = "never finished" if o.status == UNFINISHED else o.status
    return f"#{o.seq} {o.request_id} ({o.input}): {what}{': ' + o.error if o.error else ''}"
