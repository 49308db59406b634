"""Which functions a DAG request should have pre-warmed, pure (Xanadu, ReSC).

When a request starts, its first stage runs at once; the functions of the
later stages run only after it. Their containers can start meanwhile, so a
request that arrives after the keep-alive expired sees one cold start (its
first stage's) instead of one per stage: no cascade.

A function that also runs in the first stage is asked for only beyond the
first stage's containers of it: those are free again by the time it runs.
A map's width is known only at run time; the plan's allocations for the
stage say how wide it was planned, else one container per body function.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from composer.model import Node
from composer.stages import analyze
from gleaner.allocation import Allocation
from streams.events import MAX_PREWARM_COUNT, PrewarmFunction, PrewarmHint, now_ms

AllocationOf = Callable[[int, int], Allocation | None]  # (stage, index) -> planned allocation


def functions_to_prewarm(
    tree: Node, allocation_of: AllocationOf, planned_slots: Counter[int] | None = None
) -> tuple[PrewarmFunction, ...]:
    """The later stages' functions, each with how many containers it needs at once.

    ``planned_slots``: how many allocations the plan holds per stage (a map's planned width).
    """
    stages = analyze(tree).stages
    if len(stages) < 2:
        return ()
    first = Counter(slot.action for slot in stages[0].slots)
    wanted: dict[str, int] = {}
    where: dict[str, tuple[int, int]] = {}  # action -> its first later (stage, index)
    for stage in stages[1:]:
        width = 1
        if stage.kind == "map" and planned_slots and stage.slots:
            width = max(1, planned_slots.get(stage.index, 0) // len(stage.slots))
        per_action = Counter(slot.action for slot in stage.slots)
        for action, n in per_action.items():
            wanted[action] = max(wanted.get(action, 0), n * width)
        for slot in stage.slots:
            where.setdefault(slot.action, (slot.stage, slot.index))
    out = []
    for action, n in wanted.items():
        count = min(MAX_PREWARM_COUNT, n - first.get(action, 0))
        if count > 0:
            at_stage, index = where[action]
            out.append(PrewarmFunction(action, count, at_stage, allocation_of(at_stage, index)))
    return tuple(out)


def slots_per_stage(allocations: dict[str, object]) -> Counter[int]:
    """How many functions the plan gave an allocation, per stage (keys ``"stage.index"``)."""
    counts: Counter[int] = Counter()
    for key in allocations:
        head, _, _ = str(key).partition(".")
        if head.isdigit():
            counts[int(head)] += 1
    return counts


def prewarm_hint(
    request_id: str, namespace: str, tree: Node, allocation_of: AllocationOf, allocations: dict[str, object]
) -> PrewarmHint | None:
    """The hint for one request, or None when nothing runs after its first stage."""
    functions = functions_to_prewarm(tree, allocation_of, slots_per_stage(allocations))
    if not functions:
        return None
    return PrewarmHint(
        hint_id=request_id,
        namespace=namespace,
        functions=functions,
        # The key placement caches the request's top-level stages under (see the composition agent).
        composition=f"{request_id}:root",
        submitted_ms=now_ms(),
    )
