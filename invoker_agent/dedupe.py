"""Run each activation id at most once per invoker, across restarts.

A claim in Redis says who runs an activation: ``running:<invoker>:<incarnation>``
then ``done``. A duplicate delivery finds the claim and is skipped. After a
crash, Kafka redelivers what was not committed; the restarted invoker (same
id, new incarnation) finds its own stale ``running`` claim and takes the
activation over, so nothing Kafka still holds is lost. An activation that
placement re-dispatched from a silent invoker is taken over the same way by
the invoker it went to; once that one holds it, the silent invoker's late
copy (when it comes back) finds the claim and is skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from gleaner.errors import RedisError
from gleaner.redis_store import RedisStore

log = logging.getLogger(__name__)
_TTL_S = 24 * 3600


class Claim(Enum):
    RUN = "run"
    TAKEOVER = "takeover"  # run it, but first ask the previous holder's containers for an answer
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class Holder:
    """Who held an activation before a takeover: an invoker and one run of it."""

    invoker: str
    incarnation: str


def _key(activation_id: str) -> str:
    return f"gleaner:activation:{activation_id}"


class ActivationClaims:
    def __init__(self, store: RedisStore, invoker_id: str, incarnation: str) -> None:
        self._store = store
        self._invoker = invoker_id
        self._mine = f"running:{invoker_id}:{incarnation}".encode()
        self._holders: dict[str, Holder] = {}

    def claim(self, activation_id: str, takeover_from: str | None = None) -> Claim:
        """RUN if this invoker should run it. ``takeover_from`` names an invoker that
        went silent holding it (placement re-dispatched it here): its unfinished
        claim passes to us; a finished one stays a duplicate."""
        try:
            if self._store.set_if_absent(_key(activation_id), self._mine, _TTL_S):
                return Claim.RUN
            held = (self._store.get(_key(activation_id)) or b"").decode()
        except RedisError as exc:
            # Availability first: run it; the record's id still dedupes in CouchDB.
            log.warning("claim check skipped for %s: %s", activation_id, exc)
            return Claim.RUN
        state, _, rest = held.partition(":")
        owner, _, incarnation = rest.partition(":")
        if state == "running" and owner == self._invoker and held.encode() != self._mine:
            log.info("taking over %s from a previous incarnation of %s", activation_id, owner)
        elif state == "running" and takeover_from is not None and owner == takeover_from:
            log.info("taking over %s from silent invoker %s", activation_id, owner)
        else:
            return Claim.DUPLICATE
        try:
            self._store.set(_key(activation_id), self._mine, _TTL_S)
        except RedisError as exc:
            log.warning("takeover of %s not recorded: %s", activation_id, exc)
        self._holders[activation_id] = Holder(owner, incarnation)
        return Claim.TAKEOVER

    def previous_holder(self, activation_id: str) -> Holder | None:
        """Who held ``activation_id`` before this invoker took it over (asked once)."""
        return self._holders.pop(activation_id, None)

    def finished(self, activation_ids: list[str]) -> None:
        if not activation_ids:
            return
        try:
            self._store.set_many({_key(a): b"done" for a in activation_ids}, _TTL_S)
        except RedisError as exc:
            log.warning("could not mark %d activations done: %s", len(activation_ids), exc)
