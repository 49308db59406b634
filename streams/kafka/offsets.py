"""Which offsets are safe to commit when records finish out of order.

An invoker runs many activations at once; a later record can finish before an
earlier one. Committing the later offset would lose the earlier record on a
crash, so only the lowest contiguous run of finished offsets per partition is
committable.
"""

from __future__ import annotations

import heapq
import threading

TopicPartition = tuple[str, int]


class OffsetTracker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[TopicPartition, list[int]] = {}  # heap of started, unfinished offsets
        self._done: dict[TopicPartition, set[int]] = {}
        self._high: dict[TopicPartition, int] = {}  # highest offset seen
        self._committed: dict[TopicPartition, int] = {}

    def started(self, tp: TopicPartition, offset: int) -> None:
        with self._lock:
            heapq.heappush(self._pending.setdefault(tp, []), offset)
            self._high[tp] = max(self._high.get(tp, -1), offset)

    def done(self, tp: TopicPartition, offset: int) -> None:
        with self._lock:
            if tp in self._pending:  # a late finish on a revoked partition is the next owner's
                self._done.setdefault(tp, set()).add(offset)

    def in_flight(self) -> int:
        with self._lock:
            return sum(len(h) - len(self._done.get(tp, ())) for tp, h in self._pending.items())

    def committable(self, *, advance: bool = True) -> dict[TopicPartition, int]:
        """``{tp: next offset}`` that moved since the last commit. With
        ``advance=False`` the caller says when the commit held (:meth:`committed`),
        so a failed commit is tried again next time."""
        out: dict[TopicPartition, int] = {}
        with self._lock:
            for tp, heap in self._pending.items():
                done = self._done.get(tp, set())
                while heap and heap[0] in done:
                    done.discard(heapq.heappop(heap))
                nxt = heap[0] if heap else self._high[tp] + 1
                if nxt > self._committed.get(tp, -1) and nxt > 0:
                    if advance:
                        self._committed[tp] = nxt
                    out[tp] = nxt
        return out

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        with self._lock:
            for tp, nxt in offsets.items():
                self._committed[tp] = max(self._committed.get(tp, -1), nxt)

    def forget(self, tps: list[TopicPartition]) -> None:
        """Drop revoked partitions: their unfinished records belong to the next owner."""
        with self._lock:
            for tp in tps:
                for table in (self._pending, self._done, self._high, self._committed):
                    table.pop(tp, None)
