"""Harvesting policies a request can ask for.

A policy names how a DAG request's parallel stages are sized. Today:

- ``off``: every function at its user allocation (the baseline);
- ``thesis``: ML1 -> ML2 -> normalizer -> peak-ratio validator, decided once at
  container start (thesis §3.5);
- ``libra``: each function sized to its own predicted peak, no stage budget,
  with the safeguard (the Libra / Freyr baseline);
- ``gleaner``: the stage budget divided by predicted work (equal predicted
  finish times), started at once, grown live, cores of finished siblings
  released to the stragglers, with the safeguard and the OOM re-run;
- ``gleaner-idle``: ``gleaner``, and while nobody waits on its invoker a
  function borrows idle cores up to its useful maximum, given back the moment
  someone queues (never charged to the request).

Replay and evaluation take a policy per run, so policies are compared side by
side on the same trace. The legacy per-request ``harvest`` switch maps onto
this axis: ``true`` is the default harvesting policy, ``false`` is ``off``.
"""

from __future__ import annotations

from gleaner.errors import BadRequest

OFF = "off"
THESIS = "thesis"
LIBRA = "libra"
GLEANER = "gleaner"
GLEANER_IDLE = "gleaner-idle"  # gleaner, and it borrows idle cores while nobody waits
HARVEST_POLICIES: tuple[str, ...] = (OFF, THESIS, LIBRA, GLEANER, GLEANER_IDLE)
# What `harvest: true` and the global switch mean: the policy that measured best over the
# three workloads at three loads (docs/eval/*.md): thesis and gleaner tie on mean speedup
# (0.12 / 0.13), thesis is far better on the worst request (mean of mins -0.47 / -1.40).
DEFAULT_HARVEST_POLICY = THESIS
LIVE_POLICIES: frozenset[str] = frozenset({GLEANER, GLEANER_IDLE})  # start now, grow, timely release
SAFEGUARD_POLICIES: frozenset[str] = frozenset({LIBRA, GLEANER, GLEANER_IDLE})  # safeguard, OOM re-run
BORROWING_POLICIES: frozenset[str] = frozenset({GLEANER_IDLE})  # idle capacity, given back on demand


def requested_policy(policy: str | None, harvest: bool | None) -> str | None:
    """What a request asks for: its policy, else what its harvest switch means;
    None when it asks nothing. ValueError when the two contradict each other
    (``harvest: false`` with a harvesting policy, ``harvest: true`` with ``off``)."""
    if harvest is None:
        return policy
    if policy is not None:
        if (policy == OFF) == harvest:
            raise ValueError(f"harvest {str(harvest).lower()} contradicts policy {policy!r}")
        return policy
    return DEFAULT_HARVEST_POLICY if harvest else OFF


def resolve_policy(
    policy: str | None, harvest: bool | None, enabled_by_setting: bool, default: str = DEFAULT_HARVEST_POLICY
) -> str:
    """The policy a request runs under: its own, else its harvest switch, else the
    setting (``default`` when harvesting is on). Events with both were checked for
    contradictions when decoded; here the policy wins."""
    if policy is not None:
        return policy
    if harvest is not None:
        return default if harvest else OFF
    return default if enabled_by_setting else OFF


def check_policy(policy: str) -> str:
    """``policy`` if known; ValueError naming the known ones otherwise."""
    if policy not in HARVEST_POLICIES:
        raise ValueError(f"unknown harvesting policy {policy!r} (known: {', '.join(HARVEST_POLICIES)})")
    return policy


def policies_from(raw: str) -> list[str]:
    """``off,thesis`` -> ["off", "thesis"] (a replay's or an eval's policies); each known, none twice."""
    names = [p.strip() for p in raw.split(",") if p.strip()]
    if not names:
        raise BadRequest("--policy needs at least one policy")
    for name in names:
        try:
            check_policy(name)
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
    if len(set(names)) != len(names):
        raise BadRequest(f"--policy names a policy twice: {raw}")
    return names
