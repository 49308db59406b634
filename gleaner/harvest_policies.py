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
  someone queues (never charged to the request);
- ``openwhisk``: what OpenWhisk's own invoker does, the baseline a user of
  OpenWhisk knows: user allocations, admission by memory only, CPU by shares
  proportional to memory and no CPU quota.

Each is one :class:`HarvestPolicy` in :data:`REGISTRY`; everything else (the
planner, the invoker, the gateway's and the CLI's checks) reads the registry. It is
a table of the kernel, not of the predictor: the wire format (:mod:`streams.events`)
checks each request's policy against it.

Replay and evaluation take a policy per run, so policies are compared side by
side on the same trace. The legacy per-request ``harvest`` switch maps onto
this axis: ``true`` is the default harvesting policy, ``false`` is ``off``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gleaner.errors import BadRequest

# How the planner sizes a parallel stage (predictor.plan):
# user: nothing planned; validator: thesis Fig. 3.5; peak: each at its own peak;
# work: the stage budget divided by predicted work.
Sizing = Literal["user", "validator", "peak", "work"]


@dataclass(frozen=True, slots=True)
class HarvestPolicy:
    """One harvesting policy: how its requests are planned and what the invoker may do live.
    A new policy is one entry in :data:`REGISTRY` (and, if it sizes stages a new way, one
    sizing function in :mod:`predictor.plan`)."""

    name: str
    sizing: Sizing
    summary: str
    live: bool = False  # start now, grow, timely release (invoker_agent.ledger)
    safeguard: bool = False  # the safeguard and the OOM re-run at the user allocation
    borrows: bool = False  # borrows idle cores while nobody waits on its invoker
    # OpenWhisk's own invoker: admission by memory alone, CPU by shares proportional to
    # memory, no CPU quota (what a user of OpenWhisk runs today).
    cpu_by_shares: bool = False


OFF = "off"
THESIS = "thesis"
LIBRA = "libra"
GLEANER = "gleaner"
GLEANER_IDLE = "gleaner-idle"  # gleaner, and it borrows idle cores while nobody waits
OPENWHISK = "openwhisk"

REGISTRY: dict[str, HarvestPolicy] = {
    p.name: p
    for p in (
        HarvestPolicy(OFF, "user", "every function at its user allocation, a hard CPU quota"),
        HarvestPolicy(THESIS, "validator", "peak-ratio validator inside the stage budget (thesis 3.5)"),
        HarvestPolicy(LIBRA, "peak", "each function at its own predicted peak, no budget", safeguard=True),
        HarvestPolicy(
            GLEANER,
            "work",
            "stage budget divided by predicted work; start now, grow, timely release",
            live=True,
            safeguard=True,
        ),
        HarvestPolicy(
            GLEANER_IDLE,
            "work",
            "gleaner, and idle cores borrowed while nobody waits",
            live=True,
            safeguard=True,
            borrows=True,
        ),
        HarvestPolicy(
            OPENWHISK,
            "user",
            "OpenWhisk's invoker: admission by memory only, CPU shares by memory, no quota",
            cpu_by_shares=True,
        ),
    )
}
HARVEST_POLICIES: tuple[str, ...] = tuple(REGISTRY)
# What `harvest: true` and the global switch mean: the policy that measured best over the
# three workloads at three loads (docs/eval/*.md): thesis and gleaner tie on mean speedup
# (0.12 / 0.13), thesis is far better on the worst request (mean of mins -0.47 / -1.40).
DEFAULT_HARVEST_POLICY = THESIS
LIVE_POLICIES: frozenset[str] = frozenset(n for n, p in REGISTRY.items() if p.live)
SAFEGUARD_POLICIES: frozenset[str] = frozenset(n for n, p in REGISTRY.items() if p.safeguard)
BORROWING_POLICIES: frozenset[str] = frozenset(n for n, p in REGISTRY.items() if p.borrows)
SHARES_POLICIES: frozenset[str] = frozenset(n for n, p in REGISTRY.items() if p.cpu_by_shares)
PLANNED_POLICIES: frozenset[str] = frozenset(n for n, p in REGISTRY.items() if p.sizing != "user")


def policy_named(name: str) -> HarvestPolicy:
    """The registered policy; ValueError naming the known ones otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown harvesting policy {name!r} (known: {', '.join(HARVEST_POLICIES)})"
        ) from None


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
    return policy_named(policy).name


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
