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

OFF = "off"
THESIS = "thesis"
HARVEST_POLICIES: tuple[str, ...] = (OFF, THESIS)
DEFAULT_HARVEST_POLICY = THESIS  # what `harvest: true` and the global switch mean


def resolve_policy(policy: str | None, harvest: bool | None, enabled_by_setting: bool) -> str:
    """The policy a request runs under: its own, else its harvest switch, else the setting."""
    if policy is not None:
        return policy
    if harvest is not None:
        return DEFAULT_HARVEST_POLICY if harvest else OFF
    return DEFAULT_HARVEST_POLICY if enabled_by_setting else OFF


def check_policy(policy: str) -> str:
    """``policy`` if known; ValueError naming the known ones otherwise."""
    if policy not in HARVEST_POLICIES:
        raise ValueError(f"unknown harvesting policy {policy!r} (known: {', '.join(HARVEST_POLICIES)})")
    return policy
