"""The component registry: each long-running part of the platform, by name, and how to
build and run it. ``gleaner run <name>`` (gleaner/cli/main.py) starts one from here, and
``gleaner up`` (deploy/procs.py) starts them all in this order.

A new consumer is its module (a ``build(settings) -> ConsumeRunner``) plus one line here;
the topic table (streams/topics.py) names it among the readers of what it consumes, and
gleaner/metrics.py gives it a metrics port (tests check both). Entries are dotted names,
imported only when the component is built, so that importing the registry (every
``gleaner`` command does) stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

# runner: the entry returns a ConsumeRunner, which the caller runs until SIGTERM/SIGINT;
# blocking: the entry runs the component itself until it is stopped.
Kind = Literal["runner", "blocking"]


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    entry: str  # "module:function", called as function(settings, **options)
    kind: Kind
    consumes: tuple[str, ...] = ()  # topic table bases it reads (streams/topics.py)
    options: tuple[str, ...] = ()  # the `gleaner run` options its entry takes, by keyword
    per_invoker: bool = False  # one process per invoker (invoker, invoker1...), its id in its settings

    def resolve(self) -> Callable[..., Any]:
        """The entry function, imported now."""
        module, _, function = self.entry.partition(":")
        entry: Callable[..., Any] = getattr(importlib.import_module(module), function)
        return entry

    def arguments(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments its entry takes, picked from all the command's options."""
        return {name: options[name] for name in self.options}


# In start order: consumers of a topic before its producers; the gateway last (it gates readiness).
COMPONENTS: tuple[Component, ...] = (
    Component("records", "streams.record_sink:build", "runner", consumes=("activations.completed",)),
    Component(
        "placement",
        "streams.placement.agent:build",
        "runner",
        # invocations and prewarm through its runner; heartbeats and completions (acks) followed
        consumes=("invocations", "prewarm", "invokers.health", "activations.completed"),
        options=("policy",),
    ),
    Component(
        "composition",
        "streams.composition.agent:build",
        "runner",
        consumes=("dag.plans", "activations.completed"),
    ),
    Component(
        "predictor",
        "streams.predictor_stream.app:run",
        "blocking",
        consumes=("dag.requests",),
        options=("log_level",),
    ),
    Component("invoker", "invoker_agent.agent:build", "runner", consumes=("invoker",), per_invoker=True),
    Component(
        "gateway",
        "streams.gateway.app:serve",
        "blocking",
        consumes=("activations.completed", "invokers.health"),  # completion waiter, heartbeats
    ),
)
NAMES: tuple[str, ...] = tuple(c.name for c in COMPONENTS)


def component(name: str) -> Component:
    """The registered component ``name``; KeyError naming the known ones otherwise."""
    for c in COMPONENTS:
        if c.name == name:
            return c
    raise KeyError(f"no component {name!r} (known: {', '.join(NAMES)})")
