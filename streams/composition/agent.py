"""The composition stream: ``dag.plans`` + ``activations.completed`` ->
``invocations``, ``dag.results`` and the DAG-level record.

Per event: load the request's compositions from Redis, let the pure state
machine say what runs next, produce those events, flush, save the state,
and only then commit the offsets. A crash after producing but before saving
replays the event: the machine yields the same activation ids, which the
invoker runs at most once. Redis or CouchDB trouble is retried by the runner
with a backoff; the stream stays up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from composer.jsonio import from_json
from composer.model import Node
from composer.statemachine import Finish, Invoke, Machine, RequestState
from gleaner.allocation import Allocation, Slot
from gleaner.couchdb import DAGS, CouchDB
from gleaner.errors import GleanerError, MalformedEvent
from gleaner.redis_store import RedisStore
from gleaner.settings import Settings
from gleaner.settings_sections import CompositionSettings
from gleaner.ttlcache import ByRevision, TTLCache
from streams.composition.prewarm import StageTimes, prewarm_hints, stages_of
from streams.composition.records import dag_record
from streams.composition.state import CompositionStore
from streams.composition.urgency import RequestTimes, planned_stage_ms
from streams.events import (
    ActivationCompleted,
    ActivationRequest,
    DagPlan,
    DagRequest,
    DagResult,
    allocations_from_wire,
    decode,
    now_ms,
)
from streams.kafka.client import EventConsumer, EventProducer, Record, member_id
from streams.kafka.deadletter import DeadLetters
from streams.kafka.doorbell import process_bell
from streams.kafka.partitioning import partition_for
from streams.kafka.runner import ConsumeRunner, Handler, RunnerConfig, Sink, Ticket
from streams.payloads import DataStore, ForeignReference, size_of

log = logging.getLogger(__name__)
GROUP = "gleaner-composition"
MAX_VERSIONS = 1024  # DAG versions whose documents are kept by revision (oldest seen go first)


def planned_allocation(
    allocations: Mapping[Slot, Allocation], stage: int | None, index: int | None
) -> Allocation | None:
    """The allocation the request's plan gave one function: it travels on the
    function's invocation, the one source the invoker reads."""
    return None if stage is None or index is None else allocations.get((stage, index))


def stored_allocations(dag: Mapping[str, Any]) -> dict[Slot, Allocation]:
    """The planned allocations of a request's stored plan, typed (Redis keeps the plan's
    summary, whose allocations are in their wire form: the record and the dashboard show it)."""
    raw = (dag.get("harvest") or {}).get("allocations")
    if not raw:
        return {}
    try:
        return allocations_from_wire(raw)
    except MalformedEvent as exc:  # checked when the plan was decoded; kept safe anyway
        log.warning("planned allocations ignored: %s", exc)
        return {}


class Planned:
    """One request's planned allocations for the event at hand: decoded from its stored
    plan at most once, and only if the event invokes or pre-warms something."""

    __slots__ = ("_dag", "_typed")

    def __init__(self, dag: Mapping[str, Any], typed: Mapping[Slot, Allocation] | None = None) -> None:
        self._dag = dag
        self._typed = typed

    def allocations(self) -> Mapping[Slot, Allocation]:
        if self._typed is None:
            self._typed = stored_allocations(self._dag)
        return self._typed


def slo_of(doc: dict[str, Any]) -> int | None:
    """The DAG document's latency SLO in ms (checked when it was stored); None: none."""
    slo = doc.get("slo_ms")
    return slo if isinstance(slo, int) and not isinstance(slo, bool) and slo > 0 else None


def _dag_key(state: RequestState, dag: dict[str, Any]) -> str:
    """A DAG version: its stages are numbered per revision."""
    return f"{state.namespace}/{state.dag}@{dag.get('rev')}"


class CompositionAgent(Handler):
    def __init__(
        self,
        settings: CompositionSettings,
        producer: Sink,
        redis: RedisStore,
        db: CouchDB,
        partitions: int,
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.store = CompositionStore(redis)
        self.data = DataStore(redis, settings.inline_payload_bytes, settings.data_ttl_s)
        self.db = db
        self._trees: dict[str, Node] = {}
        self._stage_times = StageTimes()  # what pre-warm knows of each DAG's stages
        self._dags: TTLCache[str, dict[str, Any]] = TTLCache(settings.action_cache_ttl_s)
        self._versions = ByRevision(MAX_VERSIONS)  # "ns/dag@rev" -> that version's document
        self._partitions = partitions
        self._owned: set[int] = set()  # partitions of dag.plans this member holds
        self._last_sweep = time.monotonic()

    # -- runner hooks ---------------------------------------------------------------
    def handle(self, record: Record, ticket: Ticket) -> None:
        # Redis/CouchDB trouble raises ServiceError: the runner retries this event with a
        # backoff and holds the ones behind it (the machine re-derives the same ids).
        if record.topic == self.settings.dag_plans_topic:
            self._on_plan(record, ticket)
        else:
            self._on_completion(record)

    def tick(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= 1.0:
            self._last_sweep = now
            self._expire(set(self._owned))

    def assigned(self, tps: list[tuple[str, int]]) -> None:
        self._owned |= {p for t, p in tps if t == self.settings.dag_plans_topic}

    def revoked(self, tps: list[tuple[str, int]]) -> None:
        # State lives in Redis per request; only the sweep's ownership is per partition.
        self._owned -= {p for t, p in tps if t == self.settings.dag_plans_topic}

    def _on_plan(self, rec: Record, ticket: Ticket) -> None:
        plan = DagPlan.from_dict(decode(rec.value))
        req = DagRequest.from_dict(plan.request)
        home = partition_for(req.request_id, self._partitions)
        if home != rec.partition:
            # Keyed elsewhere: move it to the partition its completions will use.
            self.producer.produce(self.settings.dag_plans_topic, plan.to_bytes(), key=req.request_id)
            self.producer.flush()
            return
        loaded = self.store.load(req.request_id)
        if loaded is not None:
            self._resume(*loaded, rec.partition)
            return
        doc = self._dag_doc(req)
        state = RequestState(
            request_id=req.request_id,
            namespace=req.namespace,
            dag=req.dag,
            started_ms=now_ms(),
            deadline_ms=now_ms() + int(self.settings.dag_timeout_s * 1000),
        )
        # Measured once, where the request entered (the gateway, or the predictor for a planned
        # request produced straight to Kafka); here only when nobody has yet.
        input_size = req.input_size if req.input_size is not None else size_of(req.input)
        if doc is None:
            state.status, state.ended_ms = "failed", state.started_ms
            state.result = {"error": f"The DAG {req.dag} does not exist."}
            self._publish_finish(state, {"version": "0.0.0"}, input_size, Finish("failed", state.result))
            ticket.dead_letter(f"DAG {req.namespace}/{req.dag} does not exist")
            return
        dag = {
            "version": doc.get("version", "0.0.1"),
            "rev": doc["_rev"],
            "composition": doc["composition"],
            "input_size": input_size,
            "harvest": plan.summary(),
            "profile": req.profile,
            "slo_ms": slo_of(doc),
        }
        machine = self._machine(dag, state.namespace)
        commands = machine.start(state, req.input)
        planned = Planned(dag, plan.allocations)  # typed as decoded: no second decoding
        self._prewarm(state, dag, planned, machine.root, 0)
        self._carry_out(state, dag, commands, rec.partition, planned)

    def _resume(self, state: RequestState, dag: dict[str, Any], partition: int) -> None:
        """A request seen before came again: a duplicate, or the outbox sending it again after
        the broker lost its events. What is in flight is sent again, and a finished request's
        record and result are published again; every consumer is idempotent on the ids."""
        if state.status == "running":
            commands: list[Any] = self._machine(dag, state.namespace).resume(state)
            log.info("DAG request %s came again: %d invocations sent again", state.request_id, len(commands))
        else:
            result = state.result or {}
            commands = [Finish(state.status, result)]
            log.info("DAG request %s came again: its %s end published again", state.request_id, state.status)
        if commands:
            self._carry_out(state, dag, commands, partition)

    def _prewarm(
        self, state: RequestState, dag: dict[str, Any], planned: Planned, tree: Node, seen: int
    ) -> None:
        """Ask placement to start the containers of the stages due a hint now that the request
        entered the stages after its first ``seen`` (just in time). Flushed with the entered
        stages' invocations; a replay sends the same hint ids again."""
        entered = [int(s["index"]) for s in state.stages[seen:]]
        # A profiling run gives every function the invoker's maximum allocation, so its
        # containers fill the invoker: pre-warm would evict the run's own idle containers
        # for the next stage's (measured: every profile run cold, 76 s instead of 20 s
        # to profile the demo DAG). Its runs are measurements; they need no head start.
        if not self.settings.prewarm or not entered or dag.get("profile"):
            return
        allocations = planned.allocations()
        hints = prewarm_hints(
            state.request_id,
            state.namespace,
            tree,
            entered,
            lambda stage, index: allocations.get((stage, index)),
            allocations,
            lookahead=self.settings.prewarm_lookahead,
            runs=self._stage_times.runs(_dag_key(state, dag)),
            cold_start_ms=self._stage_times.cold_start_ms(),
        )
        for hint in hints:
            self.producer.produce(self.settings.prewarm_topic, hint.to_bytes(), key=state.request_id)

    def _on_completion(self, rec: Record) -> None:
        event = ActivationCompleted.from_dict(decode(rec.value))
        if event.caused_by is None or event.caused_by == event.activation_id:
            return  # a single-action activation, or a DAG's own record
        loaded = self.store.load(event.caused_by)
        if loaded is None:
            log.warning("completion %s for unknown DAG request %s", event.activation_id, event.caused_by)
            return
        state, dag = loaded
        if event.namespace != state.namespace:  # never another namespace's result into this DAG
            log.warning(
                "completion %s of %s ignored for %s's DAG",
                event.activation_id,
                event.namespace,
                state.namespace,
            )
            return
        response = event.record.get("response", {})
        result = response.get("result") if isinstance(response.get("result"), dict) else {}
        info = state.activations.get(event.activation_id)
        if info is not None and not info.done:
            self._stage_times.observe_record(_dag_key(state, dag), info.stage, event.record)
        seen, machine = len(state.stages), self._machine(dag, state.namespace)
        commands = machine.complete(
            state, event.activation_id, int(response.get("statusCode", 3)), result or {}, now_ms()
        )
        planned = Planned(dag)
        self._prewarm(state, dag, planned, machine.root, seen)
        # Saves even when a branch only reported in.
        self._carry_out(state, dag, commands, rec.partition, planned)

    def _expire(self, partitions: set[int]) -> None:
        for partition in partitions:
            try:
                for request_id in self.store.expired(partition, now_ms()):
                    loaded = self.store.load(request_id)
                    if loaded is None:
                        continue
                    state, dag = loaded
                    commands = self._machine(dag, state.namespace).expire(state, now_ms())
                    self._carry_out(state, dag, commands, partition)
            except GleanerError as exc:
                log.error("deadline sweep of partition %d failed: %s", partition, exc)

    def _dag_doc(self, req: DagRequest) -> dict[str, Any] | None:
        """The DAG document the request runs: the version its ``dag_rev`` names when this
        process has seen it (read and parsed once per version, not again per request),
        else the current one (a request nobody read the document for yet, or a version
        this process has not seen)."""
        doc_id = f"{req.namespace}/{req.dag}"
        return self._versions.get(
            doc_id, req.dag_rev, lambda: self._dags.get_or_load(doc_id, lambda: self.db.get_doc(DAGS, doc_id))
        )

    # -- effects -------------------------------------------------------------------
    def _machine(self, dag: dict[str, Any], namespace: str) -> Machine:
        key = str(dag["rev"])
        if key not in self._trees:
            self._trees[key] = from_json(dag["composition"])

        def resolve(value: Any) -> Any:
            # Only the request's own namespace's values: another's reference (a function may
            # return one) is not read, and the step that needed it fails with the reason.
            try:
                return self.data.resolve(value, namespace)
            except ForeignReference as exc:
                log.warning("DAG of %s named a reference it does not own: %s", namespace, exc)
                return {"error": str(exc)}

        return Machine(self._trees[key], resolve=resolve, max_map_width=self.settings.max_map_width)

    def _carry_out(
        self,
        state: RequestState,
        dag: dict[str, Any],
        commands: list[Any],
        partition: int,
        planned: Planned | None = None,
    ) -> None:
        planned = planned or Planned(dag)
        times: RequestTimes | None = None  # worked out at the event's first invocation
        for cmd in commands:
            if isinstance(cmd, Invoke):
                state.activations[cmd.activation_id].input_size = size_of(cmd.params)
                times = times or self._request_times(state, dag, planned.allocations())
                urgent = times.of(cmd.stage)
                event = ActivationRequest(
                    activation_id=cmd.activation_id,
                    namespace=state.namespace,
                    action=cmd.action,
                    params=cmd.params,
                    caused_by=state.request_id,
                    composition=f"{state.request_id}:{cmd.composition}",
                    stage=cmd.stage,
                    index=cmd.index,
                    submitted_ms=now_ms(),
                    allocation=planned_allocation(planned.allocations(), cmd.stage, cmd.index),
                    policy=(dag.get("harvest") or {}).get("policy"),
                    request_ms=state.started_ms,
                    deadline_ms=urgent.deadline_ms,
                    remaining_ms=urgent.remaining_ms,
                    run_ms=urgent.run_ms,
                )
                self.producer.produce(
                    self.settings.invocations_topic, event.to_bytes(), key=cmd.activation_id
                )
            elif isinstance(cmd, Finish):
                self._publish_finish(state, dag, int(dag.get("input_size", 0)), cmd)
        if commands:
            self.producer.flush()  # events first, state after: a replay re-derives the same ids
        self.store.save(state, dag, partition)

    def _request_times(
        self, state: RequestState, dag: dict[str, Any], allocations: Mapping[Slot, Allocation]
    ) -> RequestTimes:
        """Deadline and stage times for the invoker's least-slack order."""
        tree = self._trees.get(str(dag["rev"]))
        slo = dag.get("slo_ms")
        return RequestTimes.build(
            state.started_ms,
            len(stages_of(tree)) if tree is not None else 0,
            self._stage_times.runs(_dag_key(state, dag)),
            planned_stage_ms(allocations),
            slo if isinstance(slo, int) else None,
            self.settings.dag_slo_factor,
        )

    def _publish_finish(self, state: RequestState, dag: dict[str, Any], input_size: int, cmd: Finish) -> None:
        failing = cmd.result.get("activationId")
        code = None
        if state.status == "failed" and isinstance(failing, str) and failing in state.activations:
            code = state.activations[failing].status_code
        record = dag_record(
            state,
            version=str(dag.get("version", "0.0.1")),
            input_size=input_size,
            harvest=dag.get("harvest"),
            status_code=code,
        )
        completed = ActivationCompleted(
            activation_id=state.request_id,
            namespace=state.namespace,
            action=state.dag,
            invoker="",
            record=record,
        )
        self.producer.produce(self.settings.completed_topic, completed.to_bytes(), key=state.request_id)
        result = DagResult(
            request_id=state.request_id,
            namespace=state.namespace,
            dag=state.dag,
            success=cmd.status == "success",
            result=cmd.result,
            duration_ms=(state.ended_ms or state.started_ms) - state.started_ms,
        )
        self.producer.produce(self.settings.dag_results_topic, result.to_bytes(), key=state.request_id)
        log.info("DAG request %s %s in %d ms", state.request_id, cmd.status, result.duration_ms)


def build(settings: Settings) -> ConsumeRunner:
    bell = process_bell(settings.kafka, settings.stores)
    producer = EventProducer(settings.kafka, bell)
    topics = [settings.dag_plans_topic, settings.completed_topic]
    consumer = EventConsumer(
        settings.kafka,
        GROUP,
        topics,
        co_partitioned=True,
        instance_id=member_id("composition"),
        bell=bell,
        # The predictor's Faust producer rings no bell: its input's ring means a plan is coming.
        wake_on=[settings.dag_requests_topic],
    )
    deadletters = DeadLetters(settings.kafka, producer)
    agent = CompositionAgent(
        settings.composition,
        producer,
        RedisStore(settings.stores),
        CouchDB(settings.stores),
        consumer.partition_count(settings.dag_plans_topic),
    )
    return ConsumeRunner(
        "composition", consumer, producer, deadletters, agent, RunnerConfig.for_settings(settings.kafka)
    )
