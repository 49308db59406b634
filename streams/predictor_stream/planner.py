"""From a DAG request to its plan: the I/O around ``predictor.plan``.

Input size only, never the content: the request's input is measured (a
reference counts as the size it names) and passed through ML1 -> ML2 ->
normalizer -> validator. Every way this can go wrong ends in the same place:
the request runs at the user allocations, with the reason in its plan. It
never fails because of prediction.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from composer import Analysis, analyze, from_json
from gleaner.allocation import Allocation
from gleaner.couchdb import DAGS, WHISKS, CouchDB
from gleaner.errors import GleanerError
from gleaner.metrics import HARVEST_DECISIONS
from gleaner.settings import Settings
from gleaner.ttlcache import TTLCache
from predictor.allocation import AllowedValues
from predictor.inference import Predictor
from predictor.plan import Plan, plan_request
from predictor.policies import GLEANER, GLEANER_IDLE, OFF, resolve_policy
from predictor.store import ModelLoadError, dag_dir, load_current
from streams.events import DagPlan, DagRequest
from streams.payloads import size_of

log = logging.getLogger(__name__)
MIN_MEASURABLE_BYTES = 3  # "{}" says nothing about the work
RELOAD_CHECK_S = 2.0


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
        pointer = dag_dir(self.root, namespace, dag) / "current"
        if hit and now - hit[0] < RELOAD_CHECK_S:
            return hit[2], hit[3], hit[4]
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


class RequestPlanner:
    def __init__(self, settings: Settings, db: CouchDB) -> None:
        self.settings = settings
        self.db = db
        self.allowed = AllowedValues.from_settings(settings)
        self.models = _Models(settings.models_root)
        self._docs: TTLCache[str, dict[str, Any]] = TTLCache(settings.action_cache_ttl_s)
        self._analyses: dict[str, Analysis] = {}

    def plan(self, req: DagRequest) -> DagPlan:
        plan = self._plan_request(req)
        mode = "profile" if req.profile else plan.policy
        HARVEST_DECISIONS.labels(mode, "yes" if plan.harvest else "no").inc()
        return plan

    def _plan_request(self, req: DagRequest) -> DagPlan:
        start = time.perf_counter()
        reasons: list[str] = []
        plan: Plan | None = None
        version: int | None = None
        policy = resolve_policy(
            req.policy, req.harvest, self.settings.harvest_enabled, self.settings.harvest_policy
        )
        if req.profile:
            try:
                profiled = self._profile(req, reasons)
            except GleanerError as exc:
                reasons.append(f"profile allocations not written: {exc}")
                profiled = {}
            elapsed = (time.perf_counter() - start) * 1000
            return DagPlan(
                request=req.to_dict(),
                harvest=False,
                allocations=profiled,
                reasons=reasons,
                inference_ms=round(elapsed, 3),
            )
        try:
            plan, version = self._plan(req, policy, reasons)
        except GleanerError as exc:  # CouchDB or Redis trouble
            reasons.append(f"user allocations kept: {exc}")
            plan = None
        except (ValueError, TypeError, KeyError) as exc:  # a model that cannot predict this input
            reasons.append(f"user allocations kept: prediction failed: {type(exc).__name__}: {exc}")
            plan = None
        elapsed = (time.perf_counter() - start) * 1000
        if plan is None:
            return DagPlan(
                request=req.to_dict(),
                harvest=False,
                reasons=reasons,
                inference_ms=round(elapsed, 3),
                policy=policy,
            )
        summary = plan.to_dict()
        return DagPlan(
            request=req.to_dict(),
            harvest=bool(plan.allocations),
            allocations=summary["allocations"],
            stages=summary["stages"],
            reasons=reasons + summary["reasons"],
            model_version=f"v{version}" if version is not None else None,
            inference_ms=round(elapsed, 3),
            policy=policy,
        )

    def _profile(self, req: DagRequest, reasons: list[str]) -> dict[str, Any]:
        """Every function at the maximum allowed allocation, bounded by an
        invoker's capacity, so the profiler sees each function's true peak."""
        dag = self._doc(DAGS, f"{req.namespace}/{req.dag}")
        if dag is None:
            reasons.append(f"profile: DAG {req.dag} does not exist")
            return {}
        s = self.settings
        cpu = min(s.cpu_max, s.invoker_cpu_capacity)
        memory = min(s.memory_max_mb, s.invoker_memory_capacity_mb)
        profile = Allocation(float(cpu), int(memory), "profile")
        reasons.append(f"profile: every function at {cpu} cores / {memory} MB")
        return {f"{f.stage}.{f.index}": profile.to_dict() for f in self._analysis(dag).functions}

    def _plan(self, req: DagRequest, policy: str, reasons: list[str]) -> tuple[Plan | None, int | None]:
        if policy == OFF:
            asked = req.policy is not None or req.harvest is not None
            reasons.append("harvesting is off " + ("for this request" if asked else "(setting)"))
            return None, None
        reasons.append(f"policy {policy}")
        input_size = size_of(req.input)
        if input_size < MIN_MEASURABLE_BYTES:
            reasons.append("user allocations kept: the request has no measurable input size")
            return None, None
        dag = self._doc(DAGS, f"{req.namespace}/{req.dag}")
        if dag is None:
            reasons.append(f"user allocations kept: DAG {req.dag} does not exist")
            return None, None
        predictor, error, version = self.models.get(req.namespace, req.dag)
        if predictor is None:
            reasons.append(f"user allocations kept: {error}")
            return None, None
        analysis = self._analysis(dag)
        user: dict[tuple[int, int], tuple[float, float]] = {}
        for stage in analysis.stages:
            if stage.kind != "parallel":
                continue
            for slot in stage.slots:
                action = self._doc(WHISKS, f"{req.namespace}/{slot.action}")
                if action is None:
                    reasons.append(f"user allocations kept: action {slot.action} does not exist")
                    return None, None
                user[(slot.stage, slot.index)] = (
                    float(action["limits"]["cpu"]),
                    float(action["limits"]["memory"]),
                )
        plan = plan_request(
            predictor,
            analysis,
            input_size,
            user,
            self.allowed,
            memory_margin=self.settings.harvest_memory_margin,
            # gleaner-idle plans as gleaner: its borrowing happens live, in the invoker.
            policy=GLEANER if policy == GLEANER_IDLE else policy,
            capacity=(self.settings.invoker_cpu_capacity, float(self.settings.invoker_memory_capacity_mb)),
        )
        return plan, version

    def _doc(self, db: str, doc_id: str) -> dict[str, Any] | None:
        return self._docs.get_or_load(f"{db}/{doc_id}", lambda: self.db.get_doc(db, doc_id))

    def _analysis(self, dag: dict[str, Any]) -> Analysis:
        rev = str(dag.get("_rev"))
        if rev not in self._analyses:
            self._analyses[rev] = analyze(from_json(dag["composition"]))
        return self._analyses[rev]
