"""The composition state machine: given what happened, what runs next. No I/O.

A DAG request runs as a *parent composition* over the top-level steps of the
(normalized) DAG; each branch of a parallel or map step runs as a *child
composition* (thesis §3.1). The machine is driven only by events: ``start``
on a request, ``complete`` on an activation's completion, ``expire`` when the
DAG-level deadline passes. Each returns the commands to carry out
(:class:`Invoke` a function, :class:`Finish` the request).

Activation ids are derived from the request id and the position in the DAG,
so replaying an event after a crash yields the same ids (the invoker runs an
id at most once), and a duplicate completion finds its activation already
done and changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from composer.model import Action, Map, Node, Parallel, Path, Sequence, actions, at

Status = Literal["running", "success", "failed", "timeout"]
Resolver = Callable[[Any], Any]  # turns a data-store reference into its value


def activation_id_for(request_id: str, composition: str, pc: int) -> str:
    return uuid.uuid5(uuid.NAMESPACE_OID, f"{request_id}/{composition}/{pc}").hex


@dataclass(frozen=True, slots=True)
class Invoke:
    activation_id: str
    action: str
    params: dict[str, Any]
    composition: str
    stage: int
    index: int


@dataclass(frozen=True, slots=True)
class Finish:
    status: Status
    result: dict[str, Any]


Command = Invoke | Finish


@dataclass(slots=True)
class Composition:
    id: str
    steps: list[Path]
    stage: int  # the top-level stage a child runs in; the root's is its pc
    value: Any = None
    pc: int = 0
    parent: str | None = None
    branch: int | None = None
    element: int | None = None  # which map element this child works on
    waiting: str | None = None  # activation id in flight
    children: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)  # branch index (as str, JSON-safe) -> output


@dataclass(slots=True)
class ActivationInfo:
    composition: str
    action: str
    stage: int
    index: int
    dispatched_ms: int
    done: bool = False
    input_size: int = 0  # bytes of the function's input; filled in by the stream
    status_code: int | None = None


@dataclass(slots=True)
class RequestState:
    request_id: str
    namespace: str
    dag: str
    started_ms: int
    deadline_ms: int
    status: Status = "running"
    ended_ms: int | None = None
    result: dict[str, Any] | None = None
    compositions: dict[str, Composition] = field(default_factory=dict)
    activations: dict[str, ActivationInfo] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # activation ids in dispatch order
    stages: list[dict[str, Any]] = field(default_factory=list)  # {index, kind, start, end}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestState:
        data = dict(data)
        data["compositions"] = {
            k: Composition(**{**v, "steps": [tuple(p) for p in v["steps"]]})
            for k, v in data["compositions"].items()
        }
        data["activations"] = {k: ActivationInfo(**v) for k, v in data["activations"].items()}
        return cls(**data)


def _program(root: Node, path: Path) -> list[Path]:
    """The steps a composition runs for the node at ``path``: a sequence's
    steps (nested sequences flattened), or the node itself."""
    node = at(root, path)
    if not isinstance(node, Sequence):
        return [path]
    steps: list[Path] = []
    for i in range(len(node.steps)):
        steps.extend(_program(root, (*path, i)))
    return steps


def _kind(node: Node) -> str:
    return "parallel" if isinstance(node, Parallel) else "map" if isinstance(node, Map) else "action"


class Machine:
    def __init__(self, root: Node, *, resolve: Resolver, max_map_width: int = 64) -> None:
        self.root = root
        self.resolve = resolve
        self.max_map_width = max_map_width
        self._stage_actions: dict[int, list[Path]] = {}

    # -- events ---------------------------------------------------------------
    def start(self, state: RequestState, value: dict[str, Any]) -> list[Command]:
        root = Composition(id="root", steps=_program(self.root, ()), stage=0, value=value)
        state.compositions[root.id] = root
        out: list[Command] = []
        self._run(state, root, out, state.started_ms)
        return out

    def complete(
        self, state: RequestState, activation_id: str, status_code: int, result: dict[str, Any], now_ms: int
    ) -> list[Command]:
        info = state.activations.get(activation_id)
        if state.status != "running" or info is None or info.done:
            return []  # late, unknown or duplicate: changes nothing
        info.done = True
        info.status_code = status_code
        comp = state.compositions[info.composition]
        comp.waiting = None
        if status_code != 0:
            error = result.get("error", result) if isinstance(result, dict) else result
            return self._finish(
                state,
                "failed",
                {"error": error, "activationId": activation_id, "action": info.action},
                now_ms,
            )
        comp.value = result
        comp.pc += 1
        out: list[Command] = []
        self._run(state, comp, out, now_ms)
        return out

    def resume(self, state: RequestState) -> list[Command]:
        """The invocations in flight, again (same ids, same inputs), for a request whose
        events the broker may have lost: each invoker runs an id once, so one that already
        runs or ran it changes nothing. Changes no state."""
        if state.status != "running":
            return []
        out: list[Command] = []
        for comp in state.compositions.values():
            info = state.activations.get(comp.waiting) if comp.waiting else None
            if comp.waiting is None or info is None or info.done:
                continue
            params = comp.value if isinstance(comp.value, dict) else {"value": comp.value}
            out.append(Invoke(comp.waiting, info.action, params, comp.id, info.stage, info.index))
        return out

    def expire(self, state: RequestState, now_ms: int) -> list[Command]:
        if state.status != "running" or now_ms < state.deadline_ms:
            return []
        pending = [i.action for i in state.activations.values() if not i.done]
        limit_ms = state.deadline_ms - state.started_ms
        return self._finish(
            state,
            "timeout",
            {
                "error": f"The DAG request exceeded its time limit of {limit_ms} ms.",
                "pending": pending,
            },
            now_ms,
        )

    # -- stepping -------------------------------------------------------------
    def _run(self, state: RequestState, comp: Composition, out: list[Command], now_ms: int) -> None:
        while state.status == "running":
            if comp.id == "root":
                self._enter_stage(state, comp.pc, now_ms)
            if comp.pc >= len(comp.steps):
                self._composition_done(state, comp, out, now_ms)
                return
            path = comp.steps[comp.pc]
            node = at(self.root, path)
            stage = comp.pc if comp.id == "root" else comp.stage
            if isinstance(node, Action):
                self._invoke(state, comp, node, path, stage, out, now_ms)
                return
            if isinstance(node, Parallel):
                inputs = [comp.value] * len(node.branches)
                bodies = [(*path, i) for i in range(len(node.branches))]
            else:
                assert isinstance(node, Map)
                elements = self._map_elements(state, comp.value, now_ms, out)
                if elements is None:
                    return
                if not elements:
                    comp.value = {"value": []}
                    comp.pc += 1
                    continue
                inputs = [e if isinstance(e, dict) else {"value": e} for e in elements]
                bodies = [(*path, 0)] * len(elements)
            self._fan_out(state, comp, node, bodies, inputs, stage, out, now_ms)
            return

    def _invoke(
        self,
        state: RequestState,
        comp: Composition,
        node: Action,
        path: Path,
        stage: int,
        out: list[Command],
        now_ms: int,
    ) -> None:
        aid = activation_id_for(state.request_id, comp.id, comp.pc)
        index = self._index_in_stage(stage, path, comp.element)
        params = comp.value if isinstance(comp.value, dict) else {"value": comp.value}
        comp.waiting = aid
        if aid not in state.activations:
            state.order.append(aid)
        state.activations[aid] = ActivationInfo(comp.id, node.name, stage, index, now_ms)
        out.append(Invoke(aid, node.name, params, comp.id, stage, index))

    def _fan_out(
        self,
        state: RequestState,
        comp: Composition,
        node: Node,
        bodies: list[Path],
        inputs: list[Any],
        stage: int,
        out: list[Command],
        now_ms: int,
    ) -> None:
        comp.children, comp.results = [], {}
        for i, (body, value) in enumerate(zip(bodies, inputs, strict=True)):
            child = Composition(
                id=f"{comp.id}/{comp.pc}.{i}",
                steps=_program(self.root, body),
                stage=stage,
                value=value,
                parent=comp.id,
                branch=i,
                element=i if isinstance(node, Map) else None,
            )
            state.compositions[child.id] = child
            comp.children.append(child.id)
            self._run(state, child, out, now_ms)

    def _composition_done(
        self, state: RequestState, comp: Composition, out: list[Command], now_ms: int
    ) -> None:
        if comp.parent is None:
            result = comp.value if isinstance(comp.value, dict) else {"value": comp.value}
            out.extend(self._finish(state, "success", result, now_ms))
            return
        parent = state.compositions[comp.parent]
        parent.results[str(comp.branch)] = comp.value
        if len(parent.results) == len(parent.children):
            parent.value = {"value": [parent.results[str(i)] for i in range(len(parent.children))]}
            parent.children, parent.results = [], {}
            parent.pc += 1
            self._run(state, parent, out, now_ms)

    def _map_elements(
        self, state: RequestState, value: Any, now_ms: int, out: list[Command]
    ) -> list[Any] | None:
        resolved = self.resolve(value)
        elements = resolved.get("value") if isinstance(resolved, dict) else None
        if not isinstance(elements, list):
            out.extend(
                self._finish(state, "failed", {"error": "map needs its input's 'value' to be a list"}, now_ms)
            )
            return None
        if len(elements) > self.max_map_width:
            out.extend(
                self._finish(
                    state,
                    "failed",
                    {"error": f"map over {len(elements)} elements exceeds the limit of {self.max_map_width}"},
                    now_ms,
                )
            )
            return None
        return elements

    def _enter_stage(self, state: RequestState, pc: int, now_ms: int) -> None:
        if state.stages and state.stages[-1]["index"] == pc:
            return
        if state.stages and state.stages[-1]["end"] is None:
            state.stages[-1]["end"] = now_ms
        steps = state.compositions["root"].steps
        if pc < len(steps):
            state.stages.append(
                {"index": pc, "kind": _kind(at(self.root, steps[pc])), "start": now_ms, "end": None}
            )

    def _index_in_stage(self, stage: int, path: Path, element: int | None) -> int:
        """Declaration order of ``path`` among its stage's functions (per map element)."""
        if stage not in self._stage_actions:
            top = _program(self.root, ())[stage]
            self._stage_actions[stage] = [(*top, *p) for p, _ in actions(at(self.root, top))]
        paths = self._stage_actions[stage]
        position = paths.index(path) if path in paths else 0
        return position + (element or 0) * len(paths)

    def _finish(
        self, state: RequestState, status: Status, result: dict[str, Any], now_ms: int
    ) -> list[Command]:
        state.status = status
        state.ended_ms = now_ms
        state.result = result
        if state.stages and state.stages[-1]["end"] is None:
            state.stages[-1]["end"] = now_ms
        return [Finish(status, result)]
