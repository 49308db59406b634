"""Run one activation: permits, container, cgroup sampling, record.

Every outcome, good or bad, ends in an activation record: a raised error or
a failed init (statusCode 2), a timeout (statusCode 2 plus the ``timeout``
annotation), an OOM kill (statusCode 2, ``gleaner.oom_killed``), a request
the invoker cannot serve (statusCode 3).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from gleaner.actions import Limits
from gleaner.errors import ContainerError, DockerError, GleanerError, InvalidLimits
from gleaner.records import DEVELOPER_ERROR, INTERNAL_ERROR, RecordDraft, build_record, status_of
from gleaner.settings import Settings
from invoker_agent.action_store import ActionStore
from invoker_agent.container_pool import ContainerPool, Lease
from invoker_agent.permits import ResourcePermits
from invoker_agent.proxy_client import ActionProxyClient, InitError
from monitor.cgroups import CgroupSampler, UsageSummary
from streams.allocations import AllocationStore
from streams.events import ActivationRequest, now_ms
from streams.payloads import DataStore, size_of

log = logging.getLogger(__name__)

TIMEOUT_MSG = "The action exceeded its time limits of {ms} milliseconds."
OOM_MSG = "The action exhausted its memory and was aborted."
CRASH_MSG = "The action did not produce a valid response and exited unexpectedly."


@dataclass(frozen=True, slots=True)
class Allocation:
    cpu: float
    memory_mb: int
    origin: str  # user | harvest | accelerate | safeguard
    predicted: dict[str, Any] | None = None  # what the predictor expected this function to use
    reason: str | None = None  # why the user's allocation was kept, when a plan could not be applied


class ActionMissing(GleanerError):
    pass


class ActivationExecutor:
    def __init__(
        self,
        settings: Settings,
        actions: ActionStore,
        pool: ContainerPool,
        permits: ResourcePermits,
        data: DataStore,
        allocations: AllocationStore | None = None,
    ) -> None:
        self.settings = settings
        self.data = data
        self.allocations = allocations
        self.actions = actions
        self.pool = pool
        self.permits = permits
        self.running = 0
        self._running_lock = threading.Lock()

    def allocation_for(self, req: ActivationRequest, limits: Limits) -> Allocation:
        """The allocation the predictor planned for this function of its DAG
        request, read from Redis; else the user's. Prediction never fails a run."""
        user = Allocation(limits.cpu, limits.memory_mb, "user")
        if self.allocations is None or req.caused_by is None or req.stage is None or req.index is None:
            return user
        try:
            planned = self.allocations.read(req.caused_by, req.stage, req.index)
        except GleanerError as exc:
            return Allocation(
                limits.cpu, limits.memory_mb, "user", reason=f"allocation store unreachable: {exc}"
            )
        if planned is None:
            return user
        try:
            cpu, memory = float(planned["cpu"]), int(planned["memory"])
        except (KeyError, TypeError, ValueError):
            return Allocation(
                limits.cpu, limits.memory_mb, "user", reason=f"malformed planned allocation {planned}"
            )
        if not self.permits.fits_ever(cpu, memory):
            reason = f"planned {cpu} cores / {memory} MB exceed this invoker's capacity"
            return Allocation(limits.cpu, limits.memory_mb, "user", reason=reason)
        origin = str(planned.get("origin") or ("accelerate" if cpu > limits.cpu else "harvest"))
        return Allocation(cpu, memory, origin, predicted=planned.get("predicted"))

    def execute(self, req: ActivationRequest) -> dict[str, Any]:
        """Run ``req`` and return its activation record. Never raises for the
        action's own failures; raises :class:`ActionMissing` for an unknown action."""
        doc = self.actions.get(req.namespace, req.action, req.rev)
        if doc is None:
            raise ActionMissing(f"action {req.namespace}/{req.action} does not exist")
        limits = Limits.from_json(doc["limits"])
        alloc = self.allocation_for(req, limits)
        draft = RecordDraft(
            activation_id=req.activation_id,
            namespace=req.namespace,
            name=req.action,
            version=doc.get("version", "0.0.1"),
            kind=doc["exec"]["kind"],
            start_ms=now_ms(),
            end_ms=0,
            status_code=INTERNAL_ERROR,
            result={},
            limits=doc["limits"],
            caused_by=req.caused_by,
        )
        draft.gleaner = {
            "allocation": {"cpu": alloc.cpu, "memory": alloc.memory_mb},
            "origin": alloc.origin,
            "predicted": alloc.predicted,
            "allocation_reason": alloc.reason,
            "user_allocation": {"cpu": limits.cpu, "memory": limits.memory_mb},
            "invoker": self.settings.invoker_id,
            "composition": req.composition,
            "dag_request": req.caused_by,
            "input_size": size_of(req.params),  # a reference counts as what it names
            "stage": req.stage,
            "index": req.index,
            "oom_killed": False,
        }
        try:
            # Inputs that travel by reference are fetched here, so the function sees plain values.
            params = {p["key"]: p["value"] for p in doc.get("parameters", [])}
            params.update(self.data.resolve(req.params))
        except GleanerError as exc:
            return self._finish(draft, INTERNAL_ERROR, {"error": f"cannot fetch the input: {exc}"})
        try:
            granted = self.permits.acquire(
                alloc.cpu, alloc.memory_mb, timeout_s=self.settings.timeout_max_ms / 1000
            )
        except InvalidLimits as exc:
            return self._finish(draft, INTERNAL_ERROR, {"error": str(exc)})
        if not granted:
            return self._finish(draft, INTERNAL_ERROR, {"error": "no resources became free in time"})
        with self._running_lock:
            self.running += 1
        try:
            return self._run(req, doc, params, alloc, limits, draft)
        finally:
            with self._running_lock:
                self.running -= 1
            self.permits.release(alloc.cpu, alloc.memory_mb)

    def _run(
        self,
        req: ActivationRequest,
        doc: dict[str, Any],
        params: dict[str, Any],
        alloc: Allocation,
        limits: Limits,
        draft: RecordDraft,
    ) -> dict[str, Any]:
        exec_ = doc["exec"]

        def init(client: ActionProxyClient) -> None:
            client.init(
                name=req.action,
                main=exec_.get("main", "main"),
                code=exec_["code"],
                binary=bool(exec_.get("binary")),
                env={},
            )

        draft.start_ms = now_ms()
        draft.wait_ms = max(0, draft.start_ms - req.submitted_ms) if req.submitted_ms else None
        try:
            lease = self.pool.acquire(
                f"{req.namespace}/{req.action}@{doc['_rev']}",
                cpu=alloc.cpu,
                memory_mb=alloc.memory_mb,
                init=init,
            )
        except InitError as exc:
            return self._finish(draft, DEVELOPER_ERROR, {"error": f"The action failed to initialize: {exc}"})
        except DockerError as exc:
            log.error("container start failed for %s: %s", req.activation_id, exc)
            return self._finish(draft, INTERNAL_ERROR, {"error": f"Failed to start a container: {exc}"})
        if lease.cold:
            draft.init_ms = round(lease.init_ms or 0)
        draft.gleaner["container"] = lease.container.name
        draft.gleaner["cold"] = lease.cold
        sampler = CgroupSampler(
            lease.container.pid, self.settings.monitor_interval_ms, self.settings.cpu_window_ms
        )
        sampler.start()
        run_start = time.monotonic()
        try:
            resp = lease.client.run(
                args=params,
                namespace=req.namespace,
                action_name=f"/{req.namespace}/{req.action}",
                activation_id=req.activation_id,
                deadline_ms=now_ms() + limits.timeout_ms,
                api_host=self.settings.api_host,
                timeout_s=limits.timeout_ms / 1000,
                log_limit_bytes=limits.logs_mb * 2**20,
            )
        except ContainerError as exc:
            usage = sampler.stop()
            return self._failed(lease, draft, exc, usage, limits)
        usage = sampler.stop()
        self.pool.release(lease)
        draft.logs = resp.logs
        draft.gleaner["run_ms"] = round((time.monotonic() - run_start) * 1000, 3)
        self._usage(draft, usage)
        if resp.ok and resp.result is not None:
            status = status_of(resp.result, None)
            try:
                result = self.data.offload(req.activation_id, resp.result)  # large results by reference
            except GleanerError as exc:
                return self._finish(draft, INTERNAL_ERROR, {"error": f"cannot store the result: {exc}"})
            return self._finish(draft, status, result)
        return self._finish(draft, DEVELOPER_ERROR, {"error": resp.error or CRASH_MSG})

    def _failed(
        self, lease: Lease, draft: RecordDraft, exc: ContainerError, usage: UsageSummary, limits: Limits
    ) -> dict[str, Any]:
        self._usage(draft, usage)
        oom = exc.oom_killed
        if not oom and not exc.timed_out:
            try:
                oom = self.pool.engine.oom_killed(lease.container.id)
            except DockerError:
                oom = False
        self.pool.destroy(lease)  # a stuck or dead container is never reused
        if exc.timed_out:
            draft.timed_out = True
            return self._finish(draft, DEVELOPER_ERROR, {"error": TIMEOUT_MSG.format(ms=limits.timeout_ms)})
        if oom:
            draft.gleaner["oom_killed"] = True
            return self._finish(draft, DEVELOPER_ERROR, {"error": OOM_MSG})
        return self._finish(draft, DEVELOPER_ERROR, {"error": f"{CRASH_MSG} ({exc})"})

    @staticmethod
    def _usage(draft: RecordDraft, usage: UsageSummary) -> None:
        draft.gleaner["measured"] = {
            "peak_cpu": round(usage.peak_cpu, 4),
            "peak_cpu_raw": round(usage.peak_cpu_raw, 4),  # before clamping to the CFS limit
            "cpu_limit": usage.cpu_limit,
            "peak_memory": round(usage.peak_memory_mb, 2),
            "mean_cpu": round(usage.mean_cpu, 4),
            "samples": usage.samples,
        }
        draft.gleaner["trajectory"] = [
            [round(t, 1), round(c, 3), round(m, 1)] for t, c, m in usage.trajectory
        ]

    @staticmethod
    def _finish(draft: RecordDraft, status: int, result: dict[str, Any]) -> dict[str, Any]:
        draft.end_ms = now_ms()
        draft.status_code = status
        draft.result = result
        return build_record(draft)
