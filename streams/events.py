"""Event records on Kafka: one schema per topic, each with a ``type`` and a ``version``.

Events are JSON (orjson). Decoding validates every field and raises
:class:`MalformedEvent` with a reason a human can act on; consumers send such
events to the dead-letter topic and keep going.

Schemas (version 1)::

    invocations / invoker.<id>      ActivationRequest
      {"type": "activation.request", "version": 1,
       "activation_id": "32 hex chars" (optional: derived from the Kafka position),
       "namespace": "guest", "action": "hello", "params": {...},
       "rev": "CouchDB revision to pin" | null, "blocking": false,
       "caused_by": null, "composition": null, "submitted_ms": 1700000000000,
       "allocation": {"cpu": 0.5, "memory": 256, "origin": "harvest",
                      "predicted": {...}, "cap": 1.0} | null,
       "policy": "off" | "thesis" | "libra" | "gleaner" | null}

    activations.completed           ActivationCompleted
      {"type": "activation.completed", "version": 1, "activation_id": ...,
       "namespace": ..., "action": ..., "invoker": ..., "record": {OpenWhisk record}}

    prewarm / invoker.<id>          PrewarmHint (platform-signed only)
      {"type": "prewarm.hint", "version": 1, "hint_id": "32 hex chars",
       "namespace": "guest", "composition": "<request id>:root" | null,
       "functions": [{"action": "b", "count": 1, "stage": 1,
                      "allocation": {...} | null}],
       "submitted_ms": ..., "delay_ms": 0 (start no earlier than submitted_ms + delay_ms)}

    dag.requests                    DagRequest
      {"type": "dag.request", "version": 1, "request_id": "32 hex chars" (optional),
       "namespace": "guest", "dag": "pipeline", "input": {...}, "harvest": null,
       "policy": null, "profile": false, "submitted_ms": ...,
       "profile_cpu": 1.0 (optional), "input_size": 1234 (optional: measured at entry),
       "dag_rev": "3-abc" (optional: the DAG document's revision, as read at entry)}

    dag.plans                       DagPlan (platform-signed only)
      {"type": "dag.plan", "version": 1, "request": {the DagRequest},
       "harvest": true, "allocations": {"stage.index": {allocation}}, "stages": [...],
       "reasons": [...], "model_version": "v3" | null, "inference_ms": 1.2, "policy": "gleaner"}

    invokers.health                 InvokerHealth
    deadletter                      DeadLetter

Versions: a field added later is optional (absent reads as "not known", and an older
reader ignores it), so an event already in Kafka still decodes and a new one still
reads in an older build; ``version`` changes only when a field changes meaning.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, TypeVar

import orjson

from gleaner.actions import is_entity_name
from gleaner.allocation import Allocation, Slot
from gleaner.errors import MalformedEvent
from gleaner.harvest_policies import check_policy, requested_policy

VERSION = 1
_ACTIVATION_ID = re.compile(r"^[0-9a-f]{32}$")


def new_activation_id() -> str:
    return uuid.uuid4().hex


def derived_activation_id(topic: str, partition: int, offset: int, timestamp_ms: int | None = None) -> str:
    """A stable id for a request produced without one: a redelivery of the
    same Kafka record yields the same id, so consumers stay idempotent. The
    record's timestamp is part of it: a memory-only broker starts offsets at 0
    again after a restart, while Redis remembers the ids it has seen."""
    stamp = "" if timestamp_ms is None else f"@{timestamp_ms}"
    return uuid.uuid5(uuid.NAMESPACE_URL, f"kafka://{topic}/{partition}/{offset}{stamp}").hex


def now_ms() -> int:
    return int(time.time() * 1000)


def decode(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise MalformedEvent("empty message (no value)")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent(f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedEvent(f"event must be a JSON object, got {type(data).__name__}")
    return data


def _field(data: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = True) -> Any:
    if name not in data or data[name] is None:
        if required:
            raise MalformedEvent(f"missing field '{name}'")
        return None
    value = data[name]
    # bool is an int subclass; never accept it where a number is expected
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise MalformedEvent(f"field '{name}' must be {kind}, got bool")
    if not isinstance(value, kind):
        raise MalformedEvent(
            f"field '{name}' must be {getattr(kind, '__name__', kind)}, got {type(value).__name__}"
        )
    return value


def _check_type(data: dict[str, Any], expected: str) -> None:
    kind = data.get("type")
    if kind != expected:
        raise MalformedEvent(f"expected type '{expected}', got {kind!r}")
    version = data.get("version", VERSION)
    if version != VERSION:
        raise MalformedEvent(f"unsupported version {version!r} of '{expected}' (this build reads {VERSION})")


def _name(data: dict[str, Any], key: str) -> str:
    value: str = _field(data, key, str)
    if not is_entity_name(value):
        raise MalformedEvent(f"field '{key}' is not a valid entity name: {value!r}")
    return value


def _policy(data: dict[str, Any]) -> str | None:
    policy: str | None = _field(data, "policy", str, required=False)
    try:
        if policy is not None:
            check_policy(policy)
        requested_policy(policy, _field(data, "harvest", bool, required=False))
    except ValueError as exc:
        raise MalformedEvent(f"field 'policy': {exc}") from exc
    return policy


E = TypeVar("E", bound="Event")


def _plain(value: Any) -> Any:
    """A nested dataclass (or a list of them) as JSON-ready values; anything else as is."""
    if is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        return to_dict() if callable(to_dict) else asdict(value)
    if isinstance(value, list) and value and is_dataclass(value[0]):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Event:
    def to_dict(self) -> dict[str, Any]:
        # Shallow: asdict's deep copy of a completion's record cost the invoker more than
        # the whole /run of a warm no-op (py-spy); orjson reads the values as they are.
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    def to_bytes(self) -> bytes:
        try:
            return orjson.dumps(self.to_dict())
        except orjson.JSONEncodeError as exc:  # nested past 254 levels, or an integer past 64 bits
            raise MalformedEvent(f"the event cannot be written as JSON: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ActivationRequest(Event):
    activation_id: str
    namespace: str
    action: str
    params: dict[str, Any] = field(default_factory=dict)
    rev: str | None = None
    blocking: bool = False
    caused_by: str | None = None  # the DAG request this activation belongs to
    composition: str | None = None  # the (child) composition, for composition-aware placement
    stage: int | None = None  # position of the function in its DAG, for records and the predictor
    index: int | None = None
    submitted_ms: int = 0
    allocation: Allocation | None = None  # planned by the predictor; None: the action's own limits
    policy: str | None = None  # the DAG request's harvesting policy (what may change live)
    request_ms: int | None = None  # when its DAG request started (an invoker may serve older first)
    redispatched_from: str | None = None  # the silent invoker placement took it back from
    # What the invoker's least-slack scheduler needs (None: not known, it is served as it queued):
    deadline_ms: int | None = None  # its DAG request's deadline, epoch ms (arrival + SLO or prediction)
    remaining_ms: int | None = None  # predicted critical path of the request from this function on
    run_ms: int | None = None  # predicted run of this function (its stage's learned time)
    type: str = "activation.request"
    version: int = VERSION

    def to_dict(self) -> dict[str, Any]:
        out = Event.to_dict(self)
        out["allocation"] = None if self.allocation is None else self.allocation.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, fallback_id: str | None = None) -> ActivationRequest:
        _check_type(data, "activation.request")
        activation_id = str(_field(data, "activation_id", str, required=fallback_id is None) or fallback_id)
        if not _ACTIVATION_ID.match(activation_id):
            raise MalformedEvent(f"activation_id must be 32 lowercase hex characters, got {activation_id!r}")
        params = _field(data, "params", dict, required=False) or {}
        return cls(
            activation_id=activation_id,
            namespace=_name(data, "namespace"),
            action=_name(data, "action"),
            params=params,
            rev=_field(data, "rev", str, required=False),
            blocking=bool(_field(data, "blocking", bool, required=False)),
            caused_by=_field(data, "caused_by", str, required=False),
            composition=_field(data, "composition", str, required=False),
            stage=_field(data, "stage", int, required=False),
            index=_field(data, "index", int, required=False),
            submitted_ms=_field(data, "submitted_ms", int, required=False) or now_ms(),
            allocation=_allocation(data),
            policy=_policy(data),
            request_ms=_field(data, "request_ms", int, required=False),
            redispatched_from=_field(data, "redispatched_from", str, required=False),
            deadline_ms=_field(data, "deadline_ms", int, required=False),
            remaining_ms=_non_negative(data, "remaining_ms"),
            run_ms=_non_negative(data, "run_ms"),
        )


def _non_negative(data: dict[str, Any], name: str) -> int | None:
    value: int | None = _field(data, name, int, required=False)
    if value is not None and value < 0:
        raise MalformedEvent(f"field '{name}' must not be negative, got {value}")
    return value


def _plan_policy(data: dict[str, Any]) -> str:
    """A plan's resolved policy (its ``harvest`` says whether a plan applied, not a switch)."""
    policy: str = _field(data, "policy", str, required=False) or "off"
    try:
        return check_policy(policy)
    except ValueError as exc:
        raise MalformedEvent(f"field 'policy': {exc}") from exc


_SLOT_KEY = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")


def allocations_to_wire(allocations: Mapping[Slot, Allocation]) -> dict[str, Any]:
    """A plan's allocations as they travel (and as records show them): ``"stage.index"
    -> allocation``. The one codec of that form, with :func:`allocations_from_wire`."""
    return {f"{stage}.{index}": a.to_dict() for (stage, index), a in allocations.items()}


def allocations_from_wire(raw: Any, name: str = "allocations") -> dict[Slot, Allocation]:
    """A plan's allocations from their wire form, typed, in their order; a key that is no
    ``"stage.index"`` or a value that is no allocation raises :class:`MalformedEvent`."""
    if not isinstance(raw, dict):
        raise MalformedEvent(f"field '{name}' must be dict, got {type(raw).__name__}")
    out: dict[Slot, Allocation] = {}
    for key, value in raw.items():
        where = f"field '{name}.{key}'"
        found = _SLOT_KEY.match(key)
        if found is None:
            raise MalformedEvent(f"{where}: the key is not 'stage.index'")
        try:
            out[(int(found[1]), int(found[2]))] = Allocation.from_dict(value)
        except MalformedEvent as exc:
            raise MalformedEvent(f"{where}: {exc}") from exc
    return out


def _allocations(data: dict[str, Any]) -> dict[Slot, Allocation]:
    """A plan's allocations, decoded once here: typed from there on."""
    raw = data.get("allocations")
    return {} if raw is None else allocations_from_wire(raw)


def _allocation(data: dict[str, Any]) -> Allocation | None:
    raw = data.get("allocation")
    if raw is None:
        return None
    try:
        return Allocation.from_dict(raw)
    except MalformedEvent as exc:
        raise MalformedEvent(f"field 'allocation': {exc}") from exc


@dataclass(frozen=True, slots=True)
class ActivationCompleted(Event):
    activation_id: str
    namespace: str
    action: str
    invoker: str
    record: dict[str, Any]
    caused_by: str | None = None  # the DAG request, when the activation is part of one
    type: str = "activation.completed"
    version: int = VERSION

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActivationCompleted:
        _check_type(data, "activation.completed")
        return cls(
            activation_id=_field(data, "activation_id", str),
            namespace=_field(data, "namespace", str),
            action=_field(data, "action", str),
            invoker=_field(data, "invoker", str),
            record=_field(data, "record", dict),
            caused_by=_field(data, "caused_by", str, required=False),
        )


@dataclass(frozen=True, slots=True)
class DagRequest(Event):
    """A request to run a registered DAG (topic ``dag.requests``)."""

    request_id: str
    namespace: str
    dag: str
    input: dict[str, Any] = field(default_factory=dict)  # may hold a data-store reference
    harvest: bool | None = None  # per-request switch; None = the global setting
    policy: str | None = None  # harvesting policy (gleaner.harvest_policies); wins over ``harvest``
    profile: bool = False  # run every function at the maximum allocation (the profiler's runs)
    # With ``profile``: every function at this many cores instead of the maximum (the
    # profiler's CPU sweep); None: the maximum. Left off the wire when None.
    profile_cpu: float | None = None
    submitted_ms: int = 0
    # The input's serialized size in bytes (a reference counts as the size it names), measured
    # once where the request enters (the gateway; for a request produced straight to Kafka, the
    # first stream that needs it) and carried on. None: not measured yet. Left off the wire when None.
    input_size: int | None = None
    # The revision of the DAG document the request runs, as read where it entered (the
    # gateway; for a request produced straight to Kafka, the first stream that reads the
    # document): later streams use the version they parsed for it, without reading it again.
    # None: not read yet. Left off the wire when None.
    dag_rev: str | None = None
    type: str = "dag.request"
    version: int = VERSION

    def to_dict(self) -> dict[str, Any]:
        out = Event.to_dict(self)
        for name in ("profile_cpu", "input_size", "dag_rev"):
            if out[name] is None:
                del out[name]  # an event without it reads the same in any version
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, fallback_id: str | None = None) -> DagRequest:
        _check_type(data, "dag.request")
        request_id = str(_field(data, "request_id", str, required=fallback_id is None) or fallback_id)
        if not _ACTIVATION_ID.match(request_id):
            raise MalformedEvent(f"request_id must be 32 lowercase hex characters, got {request_id!r}")
        profile = bool(_field(data, "profile", bool, required=False))
        return cls(
            request_id=request_id,
            namespace=_name(data, "namespace"),
            dag=_name(data, "dag"),
            input=_field(data, "input", dict, required=False) or {},
            harvest=_field(data, "harvest", bool, required=False),
            policy=_policy(data),
            profile=profile,
            profile_cpu=_profile_cpu(data, profile),
            submitted_ms=_field(data, "submitted_ms", int, required=False) or now_ms(),
            input_size=_non_negative(data, "input_size"),
            dag_rev=_field(data, "dag_rev", str, required=False),
        )


def _profile_cpu(data: dict[str, Any], profile: bool) -> float | None:
    """A DAG request's ``profile_cpu``: positive, finite cores, and only on a profile request."""
    value: int | float | None = _field(data, "profile_cpu", (int, float), required=False)
    if value is None:
        return None
    if not 0 < value < float("inf"):  # NaN fails this too
        raise MalformedEvent(f"field 'profile_cpu' must be a positive, finite number of cores, got {value}")
    if not profile:
        raise MalformedEvent("field 'profile_cpu' is only meaningful with 'profile': true")
    return float(value)


@dataclass(frozen=True, slots=True)
class DagPlan(Event):
    """A DAG request with the predictor's harvesting decision (topic ``dag.plans``).

    ``allocations`` (``(stage, index) -> Allocation``; on the wire ``"stage.index" ->
    {cpu, memory, origin, ...}``) travel on: the composition stream puts each
    function's on its invocation event.
    """

    request: dict[str, Any]  # the DagRequest, as produced
    harvest: bool  # whether a plan was applied
    allocations: dict[Slot, Allocation] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    model_version: str | None = None
    inference_ms: float = 0.0
    policy: str = "off"  # the policy the request runs under, as resolved by the predictor
    type: str = "dag.plan"
    version: int = VERSION

    def to_dict(self) -> dict[str, Any]:
        out = Event.to_dict(self)
        out["allocations"] = allocations_to_wire(self.allocations)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DagPlan:
        _check_type(data, "dag.plan")
        return cls(
            request=_field(data, "request", dict),
            harvest=bool(_field(data, "harvest", bool)),
            allocations=_allocations(data),
            stages=_field(data, "stages", list, required=False) or [],
            reasons=_field(data, "reasons", list, required=False) or [],
            model_version=_field(data, "model_version", str, required=False),
            inference_ms=float(_field(data, "inference_ms", (int, float), required=False) or 0.0),
            policy=_plan_policy(data),
        )

    def summary(self) -> dict[str, Any]:
        """What the DAG-level record keeps of the decision."""
        return {
            "applied": self.harvest,
            "allocations": allocations_to_wire(self.allocations),
            "stages": self.stages,
            "reasons": self.reasons,
            "model_version": self.model_version,
            "inference_ms": self.inference_ms,
            "policy": self.policy,
        }


@dataclass(frozen=True, slots=True)
class DagResult(Event):
    """The outcome of a DAG request (topic ``dag.results``)."""

    request_id: str
    namespace: str
    dag: str
    success: bool
    result: dict[str, Any]
    duration_ms: int
    type: str = "dag.result"
    version: int = VERSION


MAX_PREWARM_COUNT = 64  # containers one hint may ask for, per function
MAX_PREWARM_DELAY_MS = 60_000  # how long a hint may ask the invoker to wait before starting
PREWARM_HINT = "prewarm.hint"  # the hint's ``type``: consumers of its topics branch on it


@dataclass(frozen=True, slots=True)
class PrewarmFunction:
    """One function a DAG request will run later: start ``count`` containers for it."""

    action: str
    count: int = 1
    stage: int | None = None  # the first later stage it runs in, for logs
    allocation: Allocation | None = None  # planned; None: the action's own limits

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "count": self.count,
            "stage": self.stage,
            "allocation": None if self.allocation is None else self.allocation.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> PrewarmFunction:
        if not isinstance(data, dict):
            raise MalformedEvent(f"a pre-warm function must be an object, got {type(data).__name__}")
        count: int | None = _field(data, "count", int, required=False)
        count = 1 if count is None else count
        if not 1 <= count <= MAX_PREWARM_COUNT:
            raise MalformedEvent(f"field 'count' must be 1..{MAX_PREWARM_COUNT}, got {count}")
        return cls(
            action=_name(data, "action"),
            count=count,
            stage=_field(data, "stage", int, required=False),
            allocation=_allocation(data),
        )


@dataclass(frozen=True, slots=True)
class PrewarmHint(Event):
    """Start containers now for functions a DAG request runs later (topic ``prewarm``,
    then ``invoker.<id>``). Only the platform sends it; it never runs anything."""

    hint_id: str  # per DAG request and stage: a redelivered hint is recognised
    namespace: str
    functions: tuple[PrewarmFunction, ...]
    composition: str | None = None  # placement key of the request's top-level stages
    submitted_ms: int = 0
    delay_ms: int = 0  # just in time: start no earlier than submitted_ms + delay_ms
    type: str = PREWARM_HINT
    version: int = VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "hint_id": self.hint_id,
            "namespace": self.namespace,
            "functions": [f.to_dict() for f in self.functions],
            "composition": self.composition,
            "submitted_ms": self.submitted_ms,
            "delay_ms": self.delay_ms,
            "type": self.type,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrewarmHint:
        _check_type(data, PREWARM_HINT)
        hint_id: str = _field(data, "hint_id", str)
        if not _ACTIVATION_ID.match(hint_id):
            raise MalformedEvent(f"hint_id must be 32 lowercase hex characters, got {hint_id!r}")
        raw: list[Any] = _field(data, "functions", list)
        if not raw:
            raise MalformedEvent("field 'functions' is empty: a hint names at least one function")
        delay_ms: int = _field(data, "delay_ms", int, required=False) or 0
        if not 0 <= delay_ms <= MAX_PREWARM_DELAY_MS:
            raise MalformedEvent(f"field 'delay_ms' must be 0..{MAX_PREWARM_DELAY_MS}, got {delay_ms}")
        functions = []
        for k, item in enumerate(raw):
            try:
                functions.append(PrewarmFunction.from_dict(item))
            except MalformedEvent as exc:
                raise MalformedEvent(f"field 'functions[{k}]': {exc}") from exc
        return cls(
            hint_id=hint_id,
            namespace=_name(data, "namespace"),
            functions=tuple(functions),
            composition=_field(data, "composition", str, required=False),
            submitted_ms=_field(data, "submitted_ms", int, required=False) or now_ms(),
            delay_ms=delay_ms,
        )


@dataclass(frozen=True, slots=True)
class InvokerHealth(Event):
    invoker: str
    incarnation: str
    ts_ms: int
    cpu_capacity: float
    memory_capacity_mb: int
    cpu_free: float
    memory_free_mb: int
    queue_length: int
    running: int
    status: str = "up"  # "up" | "draining"
    # The scheduler's state (absent from older invokers' heartbeats: read as 0).
    waiting: int = 0  # activations waiting for permits
    cpu_lent: float = 0.0  # cores running activations have lent to others
    type: str = "invoker.health"
    version: int = VERSION

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InvokerHealth:
        _check_type(data, "invoker.health")
        return cls(
            invoker=_field(data, "invoker", str),
            incarnation=_field(data, "incarnation", str),
            ts_ms=_field(data, "ts_ms", int),
            cpu_capacity=float(_field(data, "cpu_capacity", (int, float))),
            memory_capacity_mb=_field(data, "memory_capacity_mb", int),
            cpu_free=float(_field(data, "cpu_free", (int, float))),
            memory_free_mb=_field(data, "memory_free_mb", int),
            queue_length=_field(data, "queue_length", int),
            running=_field(data, "running", int),
            status=_field(data, "status", str, required=False) or "up",
            waiting=int(cls._optional_amount(data, "waiting", int)),
            cpu_lent=float(cls._optional_amount(data, "cpu_lent", (int, float))),
        )

    @staticmethod
    def _optional_amount(data: dict[str, Any], name: str, kinds: Any) -> float:  # a type, or a tuple
        """A non-negative number, or 0 when the heartbeat has none (an older invoker)."""
        value: float | None = _field(data, name, kinds, required=False)
        if value is None:
            return 0
        if not 0 <= value < float("inf"):  # NaN fails this too
            raise MalformedEvent(f"field '{name}' must be a non-negative number, got {value}")
        return value


@dataclass(frozen=True, slots=True)
class DeadLetter(Event):
    reason: str
    source_topic: str
    partition: int
    offset: int
    payload: str  # the original bytes, decoded as UTF-8 with replacement
    ts_ms: int
    type: str = "deadletter"
    version: int = VERSION
