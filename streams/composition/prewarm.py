"""Which functions a DAG request should have pre-warmed, and when, pure (Xanadu, ReSC).

When a request starts, its first stage runs at once; each later stage runs only
after the one before it. Its containers can start meanwhile, so a request that
arrives after the keep-alive expired sees one cold start (its first stage's)
instead of one per stage: no cascade.

Just in time: a stage's functions are hinted when they are about to be needed,
not all when the request starts (those starts would contend with the first
stage's own cold start, and hold memory long before use). When stage ``k``
starts, the stages up to ``k + lookahead`` are hinted (one hint per request and
stage: a replay or a redelivery sends the same id, which the invoker drops),
and further stages too when the stages before them are known to run shorter
than a container takes to start (then waiting for the next stage would be too
late). A hint may carry a delay: the time its stage is known to be away, less
what a start takes, so a container is ready at its turn rather than early.
What a stage takes and what a cold start takes are learned from the requests'
own completions (:class:`StageTimes`); unknown times count as zero, so every
estimate errs towards early, never towards another cold start.

Counts: a function that also runs in the stage just before is asked for only
beyond that stage's containers of it (free again by its turn; an idle or
warming container of it counts on the invoker anyway). A map's width is known
only at run time; the plan's allocations for the stage say how wide it was
planned, else one container per body function.
"""

from __future__ import annotations

import functools
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from composer.model import Node
from composer.stages import StageInfo, analyze
from gleaner.allocation import Allocation, Slot
from streams.events import MAX_PREWARM_COUNT, MAX_PREWARM_DELAY_MS, PrewarmFunction, PrewarmHint, now_ms

AllocationOf = Callable[[int, int], Allocation | None]  # (stage, index) -> planned allocation

# A start must begin this many typical cold starts before its stage: starts on a loaded
# box take longer than the typical one, and a run that waits for its container is a cold start.
START_MARGIN = 1.5
RECENT_COLD_STARTS = 32  # the estimate is the longest of these: a run that waited on a pre-warm saw less
RUN_WEIGHT = 0.5  # EWMA weight of a stage's newest run time
MAX_DAGS = 1024  # DAG versions whose stage times are kept (least recently seen go first)


@functools.lru_cache(maxsize=MAX_DAGS)
def stages_of(tree: Node) -> tuple[StageInfo, ...]:
    """The DAG's stages, analysed once per tree (a few hundred microseconds each time)."""
    return analyze(tree).stages


def stage_functions(
    stages: Sequence[StageInfo], stage: int, allocation_of: AllocationOf, planned_slots: Counter[int]
) -> tuple[PrewarmFunction, ...]:
    """The functions of ``stage``, each with how many containers it needs at once."""
    info = stages[stage]
    width = 1
    if info.kind == "map" and info.slots:
        width = max(1, planned_slots.get(stage, 0) // len(info.slots))
    before = Counter(slot.action for slot in stages[stage - 1].slots) if stage > 0 else Counter()
    wanted = Counter(slot.action for slot in info.slots)
    first_index: dict[str, int] = {}
    for slot in info.slots:
        first_index.setdefault(slot.action, slot.index)
    out = []
    for action, n in wanted.items():
        count = min(MAX_PREWARM_COUNT, n * width - before.get(action, 0))
        if count > 0:
            out.append(PrewarmFunction(action, count, stage, allocation_of(stage, first_index[action])))
    return tuple(out)


def slots_per_stage(allocations: Collection[Slot]) -> Counter[int]:
    """How many functions the plan gave an allocation, per stage."""
    return Counter(stage for stage, _ in allocations)


def hint_id_for(request_id: str, stage: int) -> str:
    """One id per request and stage, the same on every replay (32 hex characters)."""
    return uuid.uuid5(uuid.NAMESPACE_OID, f"{request_id}/prewarm/{stage}").hex


# -- when ------------------------------------------------------------------------------------


def last_stage_to_hint(
    entered: int, depth: int, lookahead: int, runs: Mapping[int, float], cold_start_ms: float | None
) -> int:
    """When stage ``entered`` starts, stages ``entered + 1`` up to this one are due a hint.

    Beyond the lookahead, stage ``j`` is due when the stages between the next one and it
    are all known to run shorter, together, than a start takes: at the next stage's
    start it would be too late."""
    last = min(depth - 1, entered + lookahead)
    if cold_start_ms is None:
        return last
    horizon = START_MARGIN * cold_start_ms
    between = sum(runs[s] for s in range(entered + 1, last + 1) if s in runs)
    if any(s not in runs for s in range(entered + 1, last + 1)):
        return last
    while last + 1 < depth and between < horizon:
        last += 1
        if last not in runs:
            break
        between += runs[last]
    return last


def stages_due(
    entered: int, depth: int, lookahead: int, runs: Mapping[int, float], cold_start_ms: float | None
) -> range:
    """The stages to hint when ``entered`` starts: those due now and not already due
    when the stage before started (every stage is due once, at the latest when the
    stage before it starts: the lookahead is at least 1)."""
    last = last_stage_to_hint(entered, depth, lookahead, runs, cold_start_ms)
    if entered == 0:
        return range(1, last + 1)
    before = last_stage_to_hint(entered - 1, depth, lookahead, runs, cold_start_ms)
    return range(max(before, entered) + 1, last + 1)


def hint_delay_ms(entered: int, stage: int, runs: Mapping[int, float], cold_start_ms: float | None) -> int:
    """How long the invoker may wait before starting ``stage``'s containers, hinted when
    ``entered`` starts: the known run time of the stages before it, less a start with margin."""
    if cold_start_ms is None:
        return 0
    ahead = sum(runs.get(s, 0.0) for s in range(entered, stage))
    return max(0, min(MAX_PREWARM_DELAY_MS, int(ahead - START_MARGIN * cold_start_ms)))


# -- what was seen ----------------------------------------------------------------------------


class StageTimes:
    """What the composition stream has seen: each DAG version's stage run times (an
    activation's duration without its initTime, EWMA) and recent cold starts."""

    def __init__(self, max_dags: int = MAX_DAGS) -> None:
        self._max_dags = max_dags
        self._runs: OrderedDict[str, dict[int, float]] = OrderedDict()
        self._cold: deque[float] = deque(maxlen=RECENT_COLD_STARTS)

    def observe(self, dag: str, stage: int, duration_ms: float, init_ms: float | None) -> None:
        if init_ms is not None and init_ms > 0:
            self._cold.append(float(init_ms))
        run = max(0.0, float(duration_ms) - float(init_ms or 0))
        runs = self._runs.setdefault(dag, {})
        self._runs.move_to_end(dag)
        old = runs.get(stage)
        runs[stage] = run if old is None else RUN_WEIGHT * run + (1 - RUN_WEIGHT) * old
        while len(self._runs) > self._max_dags:
            self._runs.popitem(last=False)

    def observe_record(self, dag: str, stage: int, record: Mapping[str, Any]) -> None:
        """One completed activation's record: its ``duration`` and ``initTime`` annotation
        (a record without a usable duration tells nothing and is skipped)."""
        duration = record.get("duration")
        if isinstance(duration, bool) or not isinstance(duration, int | float) or duration < 0:
            return
        init = None
        for note in record.get("annotations") or ():
            if isinstance(note, dict) and note.get("key") == "initTime":
                value = note.get("value")
                if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                    init = float(value)
        self.observe(dag, stage, float(duration), init)

    def runs(self, dag: str) -> dict[int, float]:
        return dict(self._runs.get(dag, {}))

    def cold_start_ms(self) -> float | None:
        return max(self._cold) if self._cold else None


# -- the hints ----------------------------------------------------------------------------------


def prewarm_hints(
    request_id: str,
    namespace: str,
    tree: Node,
    entered: Sequence[int],
    allocation_of: AllocationOf,
    allocations: Collection[Slot],
    *,
    lookahead: int,
    runs: Mapping[int, float],
    cold_start_ms: float | None,
) -> list[PrewarmHint]:
    """One hint per stage due now, the request having just started the ``entered`` stages
    (in order; several when a map over nothing was passed through)."""
    if not entered:
        return []
    stages = stages_of(tree)
    planned = slots_per_stage(allocations)
    hints = []
    for k in entered:
        for stage in stages_due(k, len(stages), lookahead, runs, cold_start_ms):
            functions = stage_functions(stages, stage, allocation_of, planned)
            if not functions:
                continue
            hints.append(
                PrewarmHint(
                    hint_id=hint_id_for(request_id, stage),
                    namespace=namespace,
                    functions=functions,
                    # The key placement caches the request's top-level stages under (see the agent).
                    composition=f"{request_id}:root",
                    submitted_ms=now_ms(),
                    delay_ms=hint_delay_ms(k, stage, runs, cold_start_ms),
                )
            )
    return hints
