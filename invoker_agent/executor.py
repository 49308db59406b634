"""Run one activation: permits, container, cgroup sampling, record.

Every outcome, good or bad, ends in an activation record: a raised error or
a failed init (statusCode 2), a timeout (statusCode 2 plus the ``timeout``
annotation), an OOM kill (statusCode 2, ``gleaner.oom_killed``), a request
the invoker cannot serve (statusCode 3).

Each run gets OpenWhisk's ``__OW_*`` environment; its ``__OW_API_KEY`` is a key minted
for this activation's namespace (:mod:`gleaner.activation_keys`), revoked when the run ends.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from gleaner.actions import Limits
from gleaner.activation_keys import ActivationKeys, MintedKey
from gleaner.allocation import Allocation
from gleaner.errors import ContainerError, DockerError, GleanerError, InvalidLimits
from gleaner.harvest_policies import BORROWING_POLICIES, LIVE_POLICIES, SAFEGUARD_POLICIES, SHARES_POLICIES
from gleaner.metrics import COLD_STARTS
from gleaner.records import DEVELOPER_ERROR, INTERNAL_ERROR, RecordDraft, build_record, status_of
from gleaner.settings import Settings
from invoker_agent.action_store import ActionStore
from invoker_agent.container_pool import PROXY_PORT, ContainerPool, Lease
from invoker_agent.dedupe import Holder
from invoker_agent.docker_engine import DEFAULT_CPU_SHARES
from invoker_agent.ledger import Claim
from invoker_agent.permits import Resizer, ResourcePermits
from invoker_agent.proxy_client import ActionProxyClient, InitError
from invoker_agent.safeguard import SafeguardWatch
from monitor.cgroups import CgroupNotFound, CgroupSampler, UsageSummary, find_cgroup
from streams.events import ActivationRequest, now_ms
from streams.payloads import DataStore, ForeignReference, size_of

log = logging.getLogger(__name__)

TIMEOUT_MSG = "The action exceeded its time limits of {ms} milliseconds."
OOM_MSG = "The action exhausted its memory and was aborted."
CHILD_OOM_NOTE = "a process of the action was killed for memory"
CRASH_MSG = "The action did not produce a valid response and exited unexpectedly."
PLATFORM_MSG = "The invoker failed while running the action"


class ActionMissing(GleanerError):
    pass


PROVIDE_API_KEY = "provide-api-key"


def provides_api_key(doc: dict[str, Any]) -> bool:
    """OpenWhisk's rule: the key is given unless the action's ``provide-api-key``
    annotation says false (a missing annotation gives it)."""
    for item in doc.get("annotations") or []:
        if isinstance(item, dict) and item.get("key") == PROVIDE_API_KEY:
            return item.get("value") is not False
    return True


@dataclass(frozen=True, slots=True)
class _Job:
    """What one activation runs, whichever attempt it is."""

    req: ActivationRequest
    doc: dict[str, Any]
    params: dict[str, Any]
    limits: Limits


RERUN_NOTE = "re-run once at the user allocation: OOM-killed while its memory was harvested"


class ActivationExecutor:
    def __init__(
        self,
        settings: Settings,
        actions: ActionStore,
        pool: ContainerPool,
        permits: ResourcePermits,
        data: DataStore,
        safeguards: SafeguardWatch | None = None,
        keys: ActivationKeys | None = None,
    ) -> None:
        self.settings = settings
        self.keys = keys if keys is not None else ActivationKeys.for_settings(settings.stores)
        # Revoking is off the activation's way (a Redis round trip it need not wait for);
        # a key whose revoke is lost still expires with its deadline.
        self._revoker = ThreadPoolExecutor(1, thread_name_prefix="key-revoke")
        self.data = data
        self.actions = actions
        self.pool = pool
        self.permits = permits
        self.safeguards = safeguards or SafeguardWatch(settings.cpu_window_ms)
        self.running = 0
        self._running_lock = threading.Lock()

    def allocation_for(self, req: ActivationRequest, limits: Limits) -> Allocation:
        """The allocation planned for this function (carried on its event), else the
        user's. A plan this invoker cannot hold falls back to the user's, with why."""
        user = Allocation(limits.cpu, limits.memory_mb, "user")
        planned = req.allocation
        if planned is None:
            return user
        if not self.permits.fits_ever(planned.cpu, planned.memory_mb):
            why = f"planned {planned.cpu} cores / {planned.memory_mb} MB exceed this invoker's capacity"
            return user.with_reason(why)
        return planned

    def execute(self, req: ActivationRequest) -> dict[str, Any]:
        """Run ``req`` and return its activation record. Never raises for the
        action's own failures; raises :class:`ActionMissing` for an unknown action."""
        doc = self.actions.get(req.namespace, req.action, req.rev)
        if doc is None:
            raise ActionMissing(f"action {req.namespace}/{req.action} does not exist")
        limits = Limits.from_json(doc["limits"])
        alloc = self.allocation_for(req, limits)
        draft = self._draft(req, doc, alloc, limits)
        try:
            # Inputs that travel by reference are fetched here, so the function sees plain values.
            params = {p["key"]: p["value"] for p in doc.get("parameters", [])}
            params.update(self.data.resolve(req.params, req.namespace))
        except ForeignReference as exc:  # the caller named a value that is not its namespace's
            return build_record(
                self._finish(draft, DEVELOPER_ERROR, {"error": f"cannot fetch the input: {exc}"})
            )
        except GleanerError as exc:
            return build_record(
                self._finish(draft, INTERNAL_ERROR, {"error": f"cannot fetch the input: {exc}"})
            )
        job = _Job(req, doc, params, limits)
        self._attempt(job, alloc, draft)
        if (
            draft.gleaner["oom_killed"]
            and req.policy in SAFEGUARD_POLICIES
            and alloc.memory_mb < limits.memory_mb
        ):
            # Harvesting must not fail the request: one more run at what the user asked.
            first = {
                "allocation": draft.gleaner["allocation"],
                "start": draft.start_ms,
                "end": draft.end_ms,
                "error": draft.result.get("error"),
                "measured": draft.gleaner.get("measured"),
                "allocation_trajectory": draft.gleaner.get("allocation_trajectory"),
            }
            user = Allocation(limits.cpu, limits.memory_mb, "user", alloc.predicted, RERUN_NOTE)
            draft = self._draft(req, doc, user, limits)
            draft.gleaner["planned"] = alloc.to_dict()  # what the plan said; it runs at ``user``
            draft.gleaner["rerun"] = {"reason": RERUN_NOTE, "first_attempt": first}
            self._attempt(job, user, draft, rerun=True)
        return build_record(draft)

    def recover(self, req: ActivationRequest, holder: Holder) -> dict[str, Any] | None:
        """The record of a run that ``holder`` finished but never reported (it crashed
        between the function's end and its completion), from the answer its container
        kept; None when there is none, and the activation must run."""
        try:
            containers = self.pool.engine.containers_of(holder.invoker, holder.incarnation)
        except DockerError as exc:
            log.warning("cannot look for %s's answer of %s: %s", holder.invoker, req.activation_id, exc)
            return None
        for info in containers:
            client = ActionProxyClient(info.ip, PROXY_PORT, token=info.token)
            try:
                resp = client.finished_run(req.activation_id) if info.ip else None
            finally:
                client.close()
            if resp is None:
                continue
            doc = self.actions.get(req.namespace, req.action, req.rev)
            if doc is None:
                return None
            limits = Limits.from_json(doc["limits"])
            draft = self._draft(req, doc, self.allocation_for(req, limits), limits)
            draft.logs = resp.logs
            draft.gleaner["recovered"] = {
                "from": f"{holder.invoker}/{holder.incarnation}",
                "container": info.name,
            }
            log.info("activation %s: answer recovered from %s", req.activation_id, info.name)
            if resp.ok and resp.result is not None:
                try:
                    result = self.data.offload(resp.result, req.namespace, req.activation_id)
                except GleanerError as exc:
                    return build_record(
                        self._finish(draft, INTERNAL_ERROR, {"error": f"cannot store the result: {exc}"})
                    )
                return build_record(self._finish(draft, status_of(resp.result, None), result))
            return build_record(self._finish(draft, DEVELOPER_ERROR, {"error": resp.error or CRASH_MSG}))
        return None

    def _draft(
        self, req: ActivationRequest, doc: dict[str, Any], alloc: Allocation, limits: Limits
    ) -> RecordDraft:
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
            "policy": req.policy,
            "planned": alloc.to_dict(),
            "predicted": alloc.predicted.to_dict() if alloc.predicted else None,
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
        return draft

    def _claim(self, req: ActivationRequest, alloc: Allocation, limits: Limits, live: bool) -> Claim:
        work = alloc.predicted.work_cpu_s if alloc.predicted else None
        return Claim(
            key=req.activation_id,
            cpu_plan=alloc.cpu,
            memory_mb=alloc.memory_mb,
            # Never wait longer than the user allocation would have (start now, grow later).
            cpu_floor=min(alloc.cpu, limits.cpu) if live else alloc.cpu,
            cap=alloc.cap if alloc.cap is not None else alloc.cpu,
            user_cpu=limits.cpu,
            user_memory_mb=limits.memory_mb,
            live=live,
            borrows=live and req.policy in BORROWING_POLICIES,
            group=(req.caused_by, req.stage) if req.caused_by and req.stage is not None else None,
            work=work or 0.0,
            yields=live and self.settings.harvest_yield,
            priority=float(req.request_ms or req.submitted_ms),
            deadline_ms=None if req.deadline_ms is None else float(req.deadline_ms),
            remaining_ms=float(req.remaining_ms or 0),
            run_ms=None if req.run_ms is None else float(req.run_ms),
            memory_only=req.policy in SHARES_POLICIES,
        )

    def _attempt(self, job: _Job, alloc: Allocation, draft: RecordDraft, *, rerun: bool = False) -> None:
        req, limits = job.req, job.limits
        live = req.policy in LIVE_POLICIES and not rerun
        claim = self._claim(req, alloc, limits, live)
        try:
            granted = self.permits.acquire(claim, timeout_s=self.settings.timeout_max_ms / 1000)
        except InvalidLimits as exc:
            self._finish(draft, INTERNAL_ERROR, {"error": str(exc)})
            return
        if not granted:
            self._finish(draft, INTERNAL_ERROR, {"error": "no resources became free in time"})
            return
        draft.gleaner["allocation"] = {"cpu": claim.cpu, "memory": claim.memory_mb}
        with self._running_lock:
            self.running += 1
        try:
            guard = req.policy in SAFEGUARD_POLICIES and not rerun
            self._run(job, claim, draft, guard)
        finally:
            with self._running_lock:
                self.running -= 1
            self.safeguards.forget(claim.key)
            changes = self.permits.end(claim.key)
            trajectory = [c.to_dict() for c in changes]
            if rerun and trajectory:
                trajectory[0] = {**trajectory[0], "reason": "rerun", "note": RERUN_NOTE}
            draft.gleaner["allocation_trajectory"] = trajectory
            if changes:
                draft.gleaner["allocation_peak"] = max(c.cpu for c in changes)

    def _run(self, job: _Job, claim: Claim, draft: RecordDraft, guard: bool) -> None:
        req, doc = job.req, job.doc
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
        cpu, memory = self.permits.current(claim.key) or (claim.cpu, claim.memory_mb)
        shares = DEFAULT_CPU_SHARES
        if claim.memory_only:  # what its container runs with is the record's allocation
            cpu, shares = self._by_shares(memory)
            draft.gleaner["allocation"] = {"cpu": cpu, "memory": memory, "cpu_shares": shares}
        try:
            lease = self.pool.acquire(
                f"{req.namespace}/{req.action}@{doc['_rev']}",
                cpu=cpu,
                memory_mb=memory,
                init=init,
                cpu_shares=shares,
            )
        except InitError as exc:
            self._finish(draft, DEVELOPER_ERROR, {"error": f"The action failed to initialize: {exc}"})
            return
        except (DockerError, ContainerError) as exc:  # the engine refused, or it never got ready
            log.error("container start failed for %s: %s", req.activation_id, exc)
            self._finish(draft, INTERNAL_ERROR, {"error": f"Failed to start a container: {exc}"})
            return
        if lease.cold:
            draft.init_ms = round(lease.init_ms or 0)
            COLD_STARTS.labels(self.settings.invoker_id).inc()
        draft.gleaner["container"] = lease.container.name
        draft.gleaner["cold"] = lease.cold
        done: list[bool] = []  # set once the lease went back to the pool or was destroyed
        try:
            self._run_leased(job, claim, draft, guard, lease, done)
        except Exception as exc:  # a platform bug still ends in a record, and frees the container
            log.exception("activation %s failed inside the invoker", req.activation_id)
            if not done:
                self.pool.destroy(lease)
            self._finish(draft, INTERNAL_ERROR, {"error": f"{PLATFORM_MSG}: {type(exc).__name__}: {exc}"})

    def _run_leased(
        self, job: _Job, claim: Claim, draft: RecordDraft, guard: bool, lease: Lease, done: list[bool]
    ) -> None:
        req, params, limits = job.req, job.params, job.limits
        if not claim.memory_only:  # OpenWhisk's way holds no cores: nothing to resize live
            self.permits.attach(claim.key, self._resizer(lease), (lease.cpu, lease.memory_mb))
        try:
            if lease.cgroup is None:
                lease.cgroup = find_cgroup(lease.container.pid, container_id=lease.container.id)
            sampler: CgroupSampler | None = CgroupSampler(
                lease.container.pid,
                self.settings.monitor_interval_ms,
                self.settings.cpu_window_ms,
                paths=lease.cgroup,
            ).start()
        except (CgroupNotFound, OSError) as exc:  # measure nothing rather than lose the run
            log.warning("no cgroup sampling for %s: %s", req.activation_id, exc)
            sampler = None
        if guard and sampler is not None and claim.harvested:
            self.safeguards.watch(
                claim.key,
                sampler,
                lambda: self.permits.current(claim.key),
                lambda why: self.permits.safeguard(claim.key, why),
                # Work-aware: at its cap is expected; beyond its predicted work is a misprediction.
                claim.work if self.settings.harvest_work_aware_safeguard and claim.work > 0 else None,
            )
        if sampler is not None and self.permits.lending and not claim.memory_only:
            # Lending across requests: idle cores of this run may start a waiter of any request.
            self.safeguards.report_usage(
                claim.key, sampler, lambda used: self.permits.observe_usage(claim.key, used)
            )
        deadline_ms = now_ms() + limits.timeout_ms
        key = self._mint(job, deadline_ms, draft)
        run_start = time.monotonic()
        try:
            resp = lease.client.run(
                args=params,
                namespace=req.namespace,
                action_name=f"/{req.namespace}/{req.action}",
                action_version=job.doc.get("version"),
                activation_id=req.activation_id,
                deadline_ms=deadline_ms,
                api_key=key.credential if key is not None else None,
                timeout_s=limits.timeout_ms / 1000,
                log_limit_bytes=limits.logs_mb * 2**20,
            )
        except ContainerError as exc:
            done.append(True)
            self._revoke(key)
            self._failed(lease, draft, exc, self._stop(sampler), limits)
            return
        except BaseException:
            self._revoke(key)
            self._stop(sampler)
            raise
        # The /run round trip alone: what follows (revoke, sampling, pool) is the invoker's.
        run_ms = round((time.monotonic() - run_start) * 1000, 3)
        self._revoke(key)
        usage = self._stop(sampler)
        done.append(True)
        self.pool.release(lease)
        draft.logs = resp.logs
        draft.gleaner["run_ms"] = run_ms
        self._usage(draft, usage)
        if usage.oom_kills:
            # The proxy survived, but a process of the action (a child, say) was killed
            # for memory: the result cannot be trusted, and harvesting may be to blame.
            draft.gleaner["oom_killed"] = True
            draft.gleaner["oom_kills"] = usage.oom_kills
            self._finish(draft, DEVELOPER_ERROR, {"error": f"{OOM_MSG} ({CHILD_OOM_NOTE})"})
            return
        if resp.ok and resp.result is not None:
            status = status_of(resp.result, None)
            try:
                # Large results by reference, under an id stable across redeliveries.
                result = self.data.offload(resp.result, req.namespace, req.activation_id)
            except GleanerError as exc:
                self._finish(draft, INTERNAL_ERROR, {"error": f"cannot store the result: {exc}"})
                return
            self._finish(draft, status, result)
            return
        self._finish(draft, DEVELOPER_ERROR, {"error": resp.error or CRASH_MSG})

    def _mint(self, job: _Job, deadline_ms: int, draft: RecordDraft) -> MintedKey | None:
        """The run's ``__OW_API_KEY``: None when the action opted out (OpenWhisk's
        ``provide-api-key: false``) or Redis failed (the run goes on without one)."""
        if not provides_api_key(job.doc):
            return None
        try:
            return self.keys.mint(job.req.namespace, job.req.activation_id, deadline_ms)
        except GleanerError as exc:
            log.warning("activation %s runs without __OW_API_KEY: %s", job.req.activation_id, exc)
            draft.gleaner["api_key_error"] = str(exc)
            return None

    def _revoke(self, key: MintedKey | None) -> None:
        if key is not None:
            self._revoker.submit(self._revoke_now, key)

    def revokes_done(self, timeout_s: float = 5.0) -> None:
        """Wait for the revokes queued so far (one worker, in order)."""
        self._revoker.submit(lambda: None).result(timeout_s)

    def _revoke_now(self, key: MintedKey) -> None:
        try:
            self.keys.revoke(key)
        except GleanerError as exc:  # it still expires with the activation's deadline
            log.warning("cannot revoke the key of activation %s: %s", key.activation_id, exc)

    def _by_shares(self, memory_mb: int) -> tuple[float, int]:
        """OpenWhisk's CPU for a container of ``memory_mb``: no quota below the whole
        invoker, and a CPU weight proportional to its share of the invoker's memory."""
        cores = self.permits.cpu_capacity
        share = memory_mb / max(1, self.permits.memory_capacity_mb)
        return cores, max(2, round(DEFAULT_CPU_SHARES * cores * share))

    def _resizer(self, lease: Lease) -> Resizer:
        """Apply a live change to ``lease``'s container: CPU alone by a cgroup write,
        memory too through Docker. The lease keeps the truth for its next reuse."""

        def resize(cpu: float, memory_mb: int) -> None:
            if memory_mb != lease.memory_mb:
                self.pool.engine.update(lease.container.id, cpu=cpu, memory_mb=memory_mb)
            else:
                self.pool.engine.set_cpu(lease.container, cpu)
            lease.cpu, lease.memory_mb = cpu, memory_mb

        return resize

    @staticmethod
    def _stop(sampler: CgroupSampler | None) -> UsageSummary:
        return sampler.stop() if sampler is not None else UsageSummary(0.0, 0.0, 0.0, 0)

    def _failed(
        self, lease: Lease, draft: RecordDraft, exc: ContainerError, usage: UsageSummary, limits: Limits
    ) -> None:
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
            self._finish(draft, DEVELOPER_ERROR, {"error": TIMEOUT_MSG.format(ms=limits.timeout_ms)})
        elif oom:
            draft.gleaner["oom_killed"] = True
            self._finish(draft, DEVELOPER_ERROR, {"error": OOM_MSG})
        else:
            self._finish(draft, DEVELOPER_ERROR, {"error": f"{CRASH_MSG} ({exc})"})

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
    def _finish(draft: RecordDraft, status: int, result: dict[str, Any]) -> RecordDraft:
        draft.end_ms = now_ms()
        draft.status_code = status
        draft.result = result
        return draft
