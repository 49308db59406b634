"""Harvesting policies a request can ask for.

A policy names how a DAG request's parallel stages are sized. Today:

- ``off``: every function at its user allocation (the baseline);
- ``thesis``: ML1 -> ML2 -> normalizer -> validator, decided once at container
  start (thesis §3.5).

Replay and evaluation take a policy per run, so policies are compared side by
side on the same trace. The legacy per-request ``harvest`` switch maps onto
this axis: ``true`` is ``thesis``, ``false`` is ``off``.
"""

from __future__ import annotations

from gleaner.errors import BadRequest

OFF = "off"
THESIS = "thesis"
HARVEST_POLICIES: tuple[str, ...] = (OFF, THESIS)
DEFAULT_HARVEST_POLICY = THESIS  # what `harvest: true` and the global switch mean


def requested_policy(policy: str | None, harvest: bool | None) -> str | None:
    """What a request asks for: its policy, else what its harvest switch means;
    None when it asks nothing. ValueError when the two contradict each other."""
    if harvest is None:
        return policy
    implied = DEFAULT_HARVEST_POLICY if harvest else OFF
    if policy is not None and policy != implied:
        raise ValueError(f"harvest {str(harvest).lower()} contradicts policy {policy!r}")
    return implied


def resolve_policy(policy: str | None, harvest: bool | None, enabled_by_setting: bool) -> str:
    """The policy a request runs under: its own, else its harvest switch, else the setting.
    (Events with both were checked for contradictions when decoded; here the policy wins.)"""
    asked = policy if policy is not None else requested_policy(None, harvest)
    if asked is not None:
        return asked
    return DEFAULT_HARVEST_POLICY if enabled_by_setting else OFF


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
