"""From a DAG request to its plan: the I/O around ``predictor.plan``.

Input size only, never the content: the request's input is measured (a
reference counts as the size it names) and passed through ML1 -> ML2 ->
normalizer -> validator. Every way this can go wrong ends in the same place:
the request runs at the user allocations, with the reason in its plan. It
never fails because of prediction.

The plan goes on in ``dag.plans``; the allocations travel on it and then on each
function's invocation event (nothing is written to Redis here).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from composer import Analysis, analyze, from_json
from gleaner.allocation import Allocation, Slot
from gleaner.couchdb import DAGS, WHISKS, CouchDB
from gleaner.errors import GleanerError
from gleaner.harvest_policies import GLEANER, GLEANER_IDLE, OFF, PLANNED_POLICIES, THESIS, resolve_policy
from gleaner.metrics import HARVEST_DECISIONS
from gleaner.settings import Settings
from gleaner.ttlcache import ByRevision, TTLCache
from predictor.allocation import EPS_STEPS, AllowedValues, NormalizedDemand
from predictor.inference import Prediction, Predictor
from predictor.plan import Selection, check_policy, normalize_batch, plan_predicted, select_stages
from predictor.store import ModelLoadError, dag_dir, load_current
from predictor.validator import Demand
from streams.events import DagPlan, DagRequest
from streams.payloads import size_of

log = logging.getLogger(__name__)
MIN_MEASURABLE_BYTES = 3  # "{}" says nothing about the work
RELOAD_CHECK_S = 2.0
MAX_VERSIONS = 1024  # DAG versions whose documents are kept by revision (oldest seen go first)
NORMALIZING = frozenset({THESIS, GLEANER, GLEANER_IDLE})  # policies that start from the normalizer
_REQUEST_FIELDS = tuple(f.name for f in fields(DagRequest))


class _Models:
    """The current model of each DAG, reloaded when ``gleaner train`` moves
    the ``current`` pointer."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._loaded: dict[
            tuple[str, str], tuple[float, float, Predictor | None, str | None, int | None]
        ] = {}

    def get(self, namespace: str, dag: str) -> tuple[Predictor | None, str | None, int | None]:
        key = (namespace, dag)
        now = time.monotonic()
        hit = self._loaded.get(key)
        if hit and now - hit[0] < RELOAD_CHECK_S:
            return hit[2], hit[3], hit[4]
        pointer = dag_dir(self.root, namespace, dag) / "current"
        mtime = pointer.stat().st_mtime if pointer.exists() else -1.0
        if hit and hit[1] == mtime:
            self._loaded[key] = (now, *hit[1:])
            return hit[2], hit[3], hit[4]
        predictor: Predictor | None = None
        error: str | None = None
        version: int | None = None
        try:
            trained = load_current(self.root, namespace, dag)
            if trained is None:
                error = f"no trained model for {namespace}/{dag} (run: gleaner train {dag})"
            else:
                predictor, version = Predictor(trained), trained.version
        except ModelLoadError as exc:
            error = f"the model of {namespace}/{dag} failed to load: {exc}"
        self._loaded[key] = (now, mtime, predictor, error, version)
        return predictor, error, version


@dataclass(slots=True)
class _Draft:
    """One request on its way to a plan. ``spent_s`` is its share of the
    planning time: its own steps, plus an even share of the predict calls it
    was batched into."""

    req: DagRequest
    policy: str
    reasons: list[str]
    spent_s: float = 0.0
    done: DagPlan | None = None  # decided without the models (profile, off, a fallback)
    predictor: Predictor | None = None
    version: int | None = None
    input_size: int | None = None  # as carried on the request, else measured here (once)
    dag_rev: str | None = None  # as carried on the request, else the revision read here
    selection: Selection | None = None
    user: dict[Slot, Demand] = field(default_factory=dict)
    predictions: list[Prediction] | None = None
    normalized: list[NormalizedDemand] | None = None  # the batch's normalizer output for its predictions


def _request_dict(draft: _Draft) -> dict[str, Any]:
    """The request as produced (``req.to_dict()`` without its deep copy, which cost
    more than the models' arithmetic: the plan is serialized right away), with its input
    size when it was measured here, so that the composition stream does not measure again."""
    out = {name: getattr(draft.req, name) for name in _REQUEST_FIELDS}
    for name, value in (("input_size", draft.input_size), ("dag_rev", draft.dag_rev)):
        if value is None:
            del out[name]  # not known yet: off the wire, as DagRequest.to_dict leaves it
        else:
            out[name] = value
    return out


def _kept(exc: Exception) -> str:
    """Why a request keeps its user allocations after ``exc``."""
    if isinstance(exc, GleanerError):  # CouchDB trouble
        return f"user allocations kept: {exc}"
    return f"user allocations kept: prediction failed: {type(exc).__name__}: {exc}"


# What every request of one DAG needs before the models: its predictor, model version,
# user allocations per function, the stages to plan and the DAG document's revision they
# come from (RequestPlanner._dag_inputs).
_DagInputs = tuple[Predictor, int | None, dict[Slot, Demand], Selection, str | None]
_DagKey = tuple[str, str, str | None]  # namespace, DAG, the revision the request carries

# A model that cannot predict an input, or a store that cannot be read, costs the
# request its harvest; anything else is a bug, and the event goes to the dead letters.
_KEPT = (GleanerError, ValueError, TypeError, KeyError)


class RequestPlanner:
    """Plans DAG requests a batch at a time: each request's own steps (documents,
    stages, policy) one by one, the models once per DAG for the whole batch.

    ``inference_ms`` of a plan is the request's share of the planning time: its
    own steps plus the predict calls of its DAG's group divided evenly among the
    group's requests (a lone request: its whole planning time, as before).
    """

    def __init__(self, settings: Settings, db: CouchDB) -> None:
        self.settings = settings
        self.db = db
        self.allowed = AllowedValues.from_settings(settings)
        self.models = _Models(settings.models_root)
        self._docs: TTLCache[str, dict[str, Any]] = TTLCache(settings.action_cache_ttl_s)
        self._analyses: dict[str, Analysis] = {}
        self._versions = ByRevision(MAX_VERSIONS)  # "ns/dag@rev" -> that version's document
        self._decisions: dict[tuple[str, str], Any] = {}  # HARVEST_DECISIONS' children, looked up once

    def plan(self, req: DagRequest) -> DagPlan:
        """The plan of one request; an exception is a bug (the caller parks the event)."""
        out = self.plan_batch([req])[0]
        if isinstance(out, Exception):
            raise out
        return out

    def plan_batch(self, reqs: Sequence[DagRequest]) -> list[DagPlan | Exception]:
        """The plan of each request, in order, or the exception (a bug) that stopped
        it; one request's failure never touches another's plan."""
        out: list[DagPlan | Exception | None] = [None] * len(reqs)
        drafts: dict[int, _Draft] = {}
        dags: dict[_DagKey, _DagInputs | str] = {}  # each DAG's documents and model, once a batch
        for i, req in enumerate(reqs):
            try:
                drafts[i] = self._draft(req, dags)
            except Exception as exc:
                out[i] = exc
        self._predict(drafts, out)
        self._normalize(drafts)
        for i, draft in drafts.items():
            if out[i] is not None:
                continue
            try:
                plan = self._finish(draft)
            except Exception as exc:
                out[i] = exc
                continue
            self._count(draft, plan)
            out[i] = plan
        return [o if o is not None else RuntimeError("not planned") for o in out]

    def _count(self, draft: _Draft, plan: DagPlan) -> None:
        labels = ("profile" if draft.req.profile else plan.policy, "yes" if plan.harvest else "no")
        counter = self._decisions.get(labels)
        if counter is None:
            counter = self._decisions[labels] = HARVEST_DECISIONS.labels(*labels)
        counter.inc()

    def _draft(self, req: DagRequest, dags: dict[_DagKey, _DagInputs | str]) -> _Draft:
        start = time.perf_counter()
        policy = resolve_policy(
            req.policy, req.harvest, self.settings.harvest_enabled, self.settings.harvest_policy
        )
        draft = _Draft(req, policy, [], input_size=req.input_size, dag_rev=req.dag_rev)
        if req.profile:
            try:
                profiled = self._profile(draft)
            except GleanerError as exc:
                draft.reasons.append(f"profile allocations not written: {exc}")
                profiled = {}
            draft.done = DagPlan(
                request=_request_dict(draft), harvest=False, allocations=profiled, reasons=draft.reasons
            )
        else:
            try:
                self._prepare(draft, dags)
            except _KEPT as exc:
                draft.reasons.append(_kept(exc))
                draft.predictor = None
            if draft.predictor is None:
                draft.done = self._kept_plan(draft)
        draft.spent_s += time.perf_counter() - start
        return draft

    def _kept_plan(self, draft: _Draft) -> DagPlan:
        """The request runs at its user allocations, with the reasons."""
        return DagPlan(
            request=_request_dict(draft), harvest=False, reasons=draft.reasons, policy=draft.policy
        )

    def _predict(self, drafts: dict[int, _Draft], out: list[DagPlan | Exception | None]) -> None:
        """One predict call per model for each DAG's requests of the batch. If a
        group's call fails, each of its requests predicts alone, so only the
        requests the model cannot predict lose their harvest."""
        groups: dict[int, list[tuple[int, _Draft]]] = {}
        for i, draft in drafts.items():
            if draft.done is None and draft.predictor is not None:
                groups.setdefault(id(draft.predictor), []).append((i, draft))
        for group in groups.values():
            predictor = group[0][1].predictor
            assert predictor is not None
            start = time.perf_counter()
            batch: list[list[Prediction] | None] = [None] * len(group)
            with contextlib.suppress(Exception):  # sorted out request by request below
                batch = list(
                    predictor.predict_many(
                        [(d.input_size or 0, d.selection.slots if d.selection else []) for _, d in group]
                    )
                )
            share = (time.perf_counter() - start) / len(group)
            for (i, draft), predictions in zip(group, batch, strict=True):
                draft.spent_s += share
                if predictions is not None:
                    draft.predictions = predictions
                    continue
                alone = time.perf_counter()
                try:
                    slots = draft.selection.slots if draft.selection else []
                    draft.predictions = predictor.predict(draft.input_size or 0, slots)
                except _KEPT as exc:
                    draft.reasons.append(_kept(exc))
                    draft.done = self._kept_plan(draft)
                except Exception as exc:
                    out[i] = exc
                draft.spent_s += time.perf_counter() - alone

    def _normalize(self, drafts: dict[int, _Draft]) -> None:
        """The normalizer once for the batch's predicted requests whose policy starts
        from it (numpy, the same numbers); if that fails, each normalizes alone."""
        todo = [d for d in drafts.values() if d.done is None and d.predictions and d.policy in NORMALIZING]
        if not todo:
            return
        start = time.perf_counter()
        normalized: list[list[NormalizedDemand] | None] = [None] * len(todo)
        with contextlib.suppress(Exception):  # plan_predicted normalizes the request itself
            margin = self.settings.harvest_memory_margin
            predictions = [d.predictions or [] for d in todo]
            normalized = list(normalize_batch(predictions, self.allowed, memory_margin=margin))
        share = (time.perf_counter() - start) / len(todo)
        for draft, demands in zip(todo, normalized, strict=True):
            draft.normalized = demands
            draft.spent_s += share

    def _finish(self, draft: _Draft) -> DagPlan:
        start = time.perf_counter()
        if draft.done is None:
            try:
                assert draft.selection is not None and draft.predictions is not None
                plan = plan_predicted(
                    draft.selection,
                    draft.predictions,
                    draft.user,
                    self.allowed,
                    memory_margin=self.settings.harvest_memory_margin,
                    # gleaner-idle plans as gleaner: its borrowing happens live, in the invoker.
                    policy=GLEANER if draft.policy == GLEANER_IDLE else draft.policy,
                    capacity=(
                        self.settings.invoker_cpu_capacity,
                        float(self.settings.invoker_memory_capacity_mb),
                    ),
                    normalized=draft.normalized,
                )
            except _KEPT as exc:
                draft.reasons.append(_kept(exc))
                draft.done = self._kept_plan(draft)
            else:
                stages = plan.stage_summaries()
                draft.spent_s += time.perf_counter() - start
                # Built once, with its time (dataclasses.replace cost more than the validator).
                return DagPlan(
                    request=_request_dict(draft),
                    harvest=bool(plan.allocations),
                    allocations=plan.allocations,
                    stages=stages,
                    reasons=draft.reasons + plan.reasons,
                    model_version=f"v{draft.version}" if draft.version is not None else None,
                    inference_ms=round(draft.spent_s * 1000, 3),
                    policy=draft.policy,
                )
        draft.spent_s += time.perf_counter() - start
        return replace(draft.done, inference_ms=round(draft.spent_s * 1000, 3))

    def _profile(self, draft: _Draft) -> dict[Slot, Allocation]:
        """Every function at the maximum allowed allocation, bounded by an
        invoker's capacity, so the profiler sees each function's true peak; or,
        with ``profile_cpu`` (the profiler's CPU sweep), at that many cores."""
        req, reasons = draft.req, draft.reasons
        dag = self._dag_doc(req.namespace, req.dag, req.dag_rev)
        if dag is None:
            reasons.append(f"profile: DAG {req.dag} does not exist")
            return {}
        draft.dag_rev = dag.get("_rev")  # the version profiled is the version run
        s = self.settings
        cpu = min(s.cpu_max, s.invoker_cpu_capacity)
        if req.profile_cpu is not None:
            cpu = self._profile_cpu(req.profile_cpu, cpu, reasons)
        memory = min(s.memory_max_mb, s.invoker_memory_capacity_mb)
        profile = Allocation(float(cpu), int(memory), "profile")
        reasons.append(f"profile: every function at {cpu} cores / {memory} MB")
        return {(f.stage, f.index): profile for f in self._analysis(dag).functions}

    def _profile_cpu(self, asked: float, top: float, reasons: list[str]) -> float:
        """The cores of a profile request that asks for ``asked``: at most ``top`` (the
        profile maximum, bounded by an invoker's capacity), else A(asked) on the CPU grid,
        or the grid's largest value within ``top`` when A(asked) is above it."""
        grid = self.allowed.cpu
        slack = EPS_STEPS * grid.step
        if asked >= top - slack:
            cpu = top
        else:
            cpu = grid.at_least(asked)
            if cpu > top + slack:
                cpu = grid.value(grid.floor_units(top))
        if abs(cpu - asked) > slack:
            reasons.append(
                f"profile: {asked:g} cores asked, {cpu:g} given (at most {top:g}, "
                f"on the grid {grid.minimum:g} to {grid.top:g} in steps of {grid.step:g})"
            )
        return cpu

    def _prepare(self, draft: _Draft, dags: dict[_DagKey, _DagInputs | str]) -> None:
        """Everything a request needs before the models; sets ``draft.predictor``
        only when the request is to be predicted. ``dags`` holds what the batch's
        earlier requests found for their DAGs."""
        req, reasons = draft.req, draft.reasons
        if draft.policy == OFF:
            asked = req.policy is not None or req.harvest is not None
            reasons.append("harvesting is off " + ("for this request" if asked else "(setting)"))
            return
        if draft.policy not in PLANNED_POLICIES:  # e.g. openwhisk: the invoker decides, not a plan
            reasons.append(f"policy {draft.policy}: user allocations, nothing planned")
            return
        reasons.append(f"policy {draft.policy}")
        if draft.input_size is None:  # a request produced straight to Kafka: measured here, once
            draft.input_size = size_of(req.input)
        if draft.input_size < MIN_MEASURABLE_BYTES:
            reasons.append("user allocations kept: the request has no measurable input size")
            return
        key = (req.namespace, req.dag, req.dag_rev)
        inputs = dags.get(key)
        if inputs is None:  # an exception is not remembered: the next request tries again
            inputs = dags[key] = self._dag_inputs(*key)
        if isinstance(inputs, str):
            reasons.append(inputs)
            return
        check_policy(GLEANER if draft.policy == GLEANER_IDLE else draft.policy)
        draft.predictor, draft.version, draft.user, draft.selection, draft.dag_rev = inputs

    def _dag_inputs(self, namespace: str, name: str, rev: str | None) -> _DagInputs | str:
        """What every request of one DAG version needs before the models (its model, its
        functions' user allocations, the stages to plan), or why it keeps its user
        allocations; the same for each request of the DAG in a batch."""
        dag = self._dag_doc(namespace, name, rev)
        if dag is None:
            return f"user allocations kept: DAG {name} does not exist"
        predictor, error, version = self.models.get(namespace, name)
        if predictor is None:
            return f"user allocations kept: {error}"
        analysis = self._analysis(dag)
        user: dict[Slot, Demand] = {}
        for stage in analysis.stages:
            if stage.kind != "parallel":
                continue
            for slot in stage.slots:
                action = self._doc(WHISKS, f"{namespace}/{slot.action}")
                if action is None:
                    return f"user allocations kept: action {slot.action} does not exist"
                user[(slot.stage, slot.index)] = (
                    float(action["limits"]["cpu"]),
                    float(action["limits"]["memory"]),
                )
        return predictor, version, user, select_stages(analysis, user), dag.get("_rev")

    def _dag_doc(self, namespace: str, name: str, rev: str | None) -> dict[str, Any] | None:
        """The DAG document of version ``rev`` (carried on the request from where it entered)
        when this process has seen it: read and parsed once per version, not per request;
        else the current one, which the plan's request then carries on."""
        doc_id = f"{namespace}/{name}"
        return self._versions.get(doc_id, rev, lambda: self._doc(DAGS, doc_id))

    def _doc(self, db: str, doc_id: str) -> dict[str, Any] | None:
        return self._docs.get_or_load(f"{db}/{doc_id}", lambda: self.db.get_doc(db, doc_id))

    def _analysis(self, dag: dict[str, Any]) -> Analysis:
        rev = str(dag.get("_rev"))
        if rev not in self._analyses:
            self._analyses[rev] = analyze(from_json(dag["composition"]))
        return self._analyses[rev]
