"""Docker labels on the containers the platform starts: how an invoker and the stack tell
Gleaner's containers (and one invoker's, and one run of it) from any other on the engine."""

from __future__ import annotations

MANAGED_LABEL = "gleaner.managed"
INVOKER_LABEL = "gleaner.invoker"
INCARNATION_LABEL = "gleaner.incarnation"  # which run of the invoker started it
NETWORK_LABEL = "gleaner.network"
