"""Recorded ``dag.requests`` events as a trace: re-produced with their
original spacing (as ReSC replays recorded triggers).

Each recorded request keeps its DAG, its input and its policy, and arrives at
the same offset from the first one as it did when it was recorded (its
``submitted_ms``). It gets a new request id when replayed, so the platform
runs it again instead of treating it as a duplicate.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from gleaner.errors import GleanerError, MalformedEvent
from gleaner.harvest_policies import requested_policy
from streams.events import DagRequest, decode
from streams.replay.trace import TraceEntry


def entries_from_events(
    values: Sequence[bytes | None],
    *,
    timestamps: Sequence[int | None] | None = None,
    dag: str | None = None,
    namespace: str | None = None,
    resolve: Any = None,
    limit: int = 0,
) -> tuple[list[TraceEntry], int]:
    """(entries in arrival order, events skipped). An event without ``submitted_ms``
    takes its Kafka timestamp from ``timestamps``, or is skipped; so is one whose input
    was held by reference and has expired. ``resolve(input, namespace)`` turns an
    input held by reference back into its value, as the request's namespace may;
    profiling runs are skipped, and so is anything that does not decode as a DAG request."""
    requests: list[DagRequest] = []
    skipped = 0
    for i, value in enumerate(values):
        try:
            data = decode(value)
            if not isinstance(data.get("submitted_ms"), int):
                # A producer may leave the time out; then the broker's timestamp says when it arrived.
                stamp = timestamps[i] if timestamps is not None else None
                if stamp is None:
                    skipped += 1
                    continue
                data = {**data, "submitted_ms": stamp}
            req = DagRequest.from_dict(data, fallback_id="0" * 32)
        except MalformedEvent:
            skipped += 1
            continue
        if req.profile or (dag and req.dag != dag) or (namespace and req.namespace != namespace):
            skipped += 1
            continue
        requests.append(req)
    requests.sort(key=lambda r: r.submitted_ms)
    entries: list[TraceEntry] = []
    first: int | None = None
    for req in requests:
        if limit and len(entries) >= limit:
            break
        try:
            body = resolve(req.input, req.namespace) if resolve else req.input
        except GleanerError:  # held by reference and expired, or not the namespace's to read
            skipped += 1
            continue
        first = req.submitted_ms if first is None else first
        entries.append(
            TraceEntry(
                offset_s=(req.submitted_ms - first) / 1000,
                dag=req.dag,
                input=body if isinstance(body, dict) else {},
                policy=requested_policy(req.policy, req.harvest),  # from_dict refused contradictions
                line=len(entries) + 1,
            )
        )
    return entries, skipped


def known(entries: Sequence[TraceEntry], dags: Collection[str]) -> list[str]:
    """The DAGs named by ``entries`` that are not among ``dags``."""
    return sorted({e.dag for e in entries} - set(dags))
