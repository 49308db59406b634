"""Where a pre-warm hint goes, pure: to the invokers that will run the functions.

A composition-aware policy (greedy JSQ, greedy round robin) places a request's
top-level stages on the invoker of its composition, so the hint asks that
policy for the request's composition: its later stages follow there, and a
hint that arrives before the first invocation pins the composition to the
invoker it warms. OpenWhisk's hash placement is asked per action (it is
deterministic). Policies without affinity (JSQ, round robin) cannot say where
a later function will go; the hint goes to the shortest queue, which is where
JSQ would send it now, and leaves round robin's turn alone.

A parallel stage's branches are child compositions, placed by the policy when
they start; with several invokers their pre-warmed containers may sit on
another invoker than the one that runs them (the keep-alive then reaps them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from streams.events import PrewarmFunction, PrewarmHint
from streams.placement.policies import CompositionCache, HashPlacement, InvokerView, Policy, jsq


def prewarm_target(
    policy: Policy, invokers: Sequence[InvokerView], composition: str | None, action: str
) -> str | None:
    """The invoker that will run ``action`` of ``composition``, as far as the policy says."""
    if isinstance(policy, CompositionCache | HashPlacement):
        return policy.choose(invokers, composition, action)
    return jsq(invokers)


def route_hint(hint: PrewarmHint, policy: Policy, invokers: Sequence[InvokerView]) -> dict[str, PrewarmHint]:
    """The hint split by target invoker (same hint id: each invoker drops a redelivery).
    Empty when no invoker is healthy: a hint is never worth waiting for."""
    by_invoker: dict[str, list[PrewarmFunction]] = {}
    for function in hint.functions:
        target = prewarm_target(policy, invokers, hint.composition, function.action)
        if target is not None:
            by_invoker.setdefault(target, []).append(function)
    return {
        invoker: dataclasses.replace(hint, functions=tuple(functions))
        for invoker, functions in by_invoker.items()
    }
