"""The executor with in-memory fakes behind it: the planned allocation comes from
the event, start-now is recorded, an OOM kill while harvested is re-run once at the
user allocation (one record), and a plan the invoker cannot hold falls back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gleaner.activation_keys import ActivationKeys
from gleaner.allocation import Allocation
from gleaner.errors import ContainerError
from gleaner.settings import Settings
from invoker_agent.container_pool import Lease
from invoker_agent.docker_engine import ContainerInfo
from invoker_agent.executor import OOM_MSG, ActivationExecutor
from invoker_agent.ledger import CapacityLedger, Claim
from invoker_agent.permits import ResourcePermits
from invoker_agent.proxy_client import RunResponse
from streams.events import ActivationRequest
from tests.unit.fakes import MemoryRedis

USER = {"cpu": 0.5, "memory": 512, "timeout": 60000, "logs": 10, "concurrency": 1}
NO_PID = 2**30  # no such process: the sampler is skipped, the run goes on


class FakeClient:
    def __init__(self, lease_memory: list[int]) -> None:
        self.memory = lease_memory

    def run(self, **_: Any) -> RunResponse:
        if self.memory[-1] < USER["memory"]:
            raise ContainerError("killed", oom_killed=True)
        return RunResponse(ok=True, result={"done": True}, error=None)


class FakeEngine:
    def __init__(self) -> None:
        self.resizes: list[float] = []

    def oom_killed(self, container_id: str) -> bool:
        return False

    def set_cpu(self, info: ContainerInfo, cpu: float) -> None:
        self.resizes.append(cpu)

    def update(self, container_id: str, *, cpu: float, memory_mb: int) -> None:
        self.resizes.append(cpu)


class FakePool:
    def __init__(self) -> None:
        self.engine = FakeEngine()
        self.memory: list[int] = []
        self.acquired: list[tuple[float, int]] = []
        self.shares: list[int] = []
        self.destroyed = 0

    def acquire(self, key: str, *, cpu: float, memory_mb: int, init: Any, cpu_shares: int = 1024) -> Lease:
        self.memory.append(memory_mb)
        self.acquired.append((cpu, memory_mb))
        self.shares.append(cpu_shares)
        info = ContainerInfo("c" * 64, "fake", "127.0.0.1", NO_PID)
        return Lease(info, FakeClient(self.memory), False, None, False, cpu, memory_mb)  # type: ignore[arg-type]

    def release(self, lease: Lease) -> None:
        pass

    def destroy(self, lease: Lease) -> None:
        self.destroyed += 1


class FakeActions:
    def get(self, namespace: str, action: str, rev: str | None = None) -> dict[str, Any]:
        return {"_rev": "1-a", "exec": {"kind": "python:3", "code": "x"}, "limits": USER}


class FakeData:
    def resolve(self, params: dict[str, Any], namespace: str) -> dict[str, Any]:
        return params

    def offload(
        self, result: dict[str, Any], namespace: str, stable_key: str | None = None
    ) -> dict[str, Any]:
        return result


@pytest.fixture()
def parts(tmp_path: Path) -> tuple[ActivationExecutor, FakePool, ResourcePermits]:
    settings = Settings(state_dir=tmp_path, cpu_max=2.0, invoker_cpu_capacity=1.0)
    pool, permits = FakePool(), ResourcePermits(CapacityLedger(1.0, 4096))
    executor = ActivationExecutor(
        settings,
        FakeActions(),  # type: ignore[arg-type]
        pool,  # type: ignore[arg-type]
        permits,
        FakeData(),  # type: ignore[arg-type]
        keys=ActivationKeys(MemoryRedis()),
    )
    return executor, pool, permits


def request(allocation: Allocation | None, policy: str | None) -> ActivationRequest:
    return ActivationRequest(
        "a" * 32, "guest", "f", caused_by="b" * 32, stage=1, index=0, allocation=allocation, policy=policy
    )


HARVESTED = Allocation(0.25, 256, "harvest", cap=0.5)


def test_an_oom_kill_while_harvested_is_rerun_once_at_the_user_allocation(parts):
    executor, pool, permits = parts
    record = executor.execute(request(HARVESTED, "gleaner"))
    g = record["gleaner"]
    assert record["response"]["success"] and pool.acquired == [(0.25, 256), (0.5, 512)]
    assert g["allocation"] == {"cpu": 0.5, "memory": 512} and g["origin"] == "user"
    assert g["planned"]["memory"] == 256  # the plan stays on the record beside the re-run
    assert g["rerun"]["first_attempt"]["allocation"] == {"cpu": 0.25, "memory": 256}
    assert g["rerun"]["first_attempt"]["error"] == OOM_MSG
    assert g["allocation_trajectory"][0]["reason"] == "rerun"
    assert permits.snapshot() == (1.0, 4096, 0)


@pytest.mark.parametrize("policy", ["thesis", None])
def test_without_the_safeguard_an_oom_kill_stays_a_failure(parts, policy):
    executor, pool, _ = parts
    record = executor.execute(request(HARVESTED, policy))
    assert not record["response"]["success"] and record["gleaner"]["oom_killed"]
    assert "rerun" not in record["gleaner"] and len(pool.acquired) == 1


def test_start_now_rather_than_wait_for_the_whole_plan_and_it_is_recorded(parts):
    executor, pool, permits = parts
    assert permits.acquire(Claim("other", 0.5, 128, 0.5, 0.5, 0.5, 128))
    planned = Allocation(1.0, 512, "accelerate", cap=1.0)
    record = executor.execute(request(planned, "gleaner"))
    g = record["gleaner"]
    assert pool.acquired == [(0.5, 512)]  # started at once at its user 0.5, not waiting for 1.0
    assert g["allocation"]["cpu"] == 0.5 and g["allocation_trajectory"][0]["reason"] == "start-now"
    assert g["planned"]["cpu"] == 1.0
    permits.end("other")
    assert permits.snapshot() == (1.0, 4096, 0)


def test_a_plan_beyond_the_invoker_falls_back_to_the_user_allocation(parts):
    executor, pool, _ = parts
    record = executor.execute(request(Allocation(4.0, 512, "accelerate"), "gleaner"))
    g = record["gleaner"]
    assert pool.acquired == [(0.5, 512)] and g["origin"] == "user"
    assert "capacity" in g["allocation_reason"]


def test_openwhisks_policy_admits_by_memory_and_weighs_cpu_by_memory(parts):
    executor, pool, permits = parts
    assert permits.acquire(Claim("other", 1.0, 128, 1.0, 1.0, 1.0, 128))  # every core is held
    record = executor.execute(request(None, "openwhisk"))  # still starts: only memory is admitted
    g = record["gleaner"]
    # No quota below the whole invoker; 512 of 4096 MB -> 1/8 of one core's 1024 shares.
    assert pool.acquired == [(1.0, 512)] and pool.shares == [128]
    assert g["allocation"] == {"cpu": 1.0, "memory": 512, "cpu_shares": 128}
    # Nothing to resize live: its trajectory is its start alone (a resize to 0 cores once failed).
    assert [c["reason"] for c in g["allocation_trajectory"]] == ["planned"] and pool.engine.resizes == []
    permits.end("other")
    assert permits.snapshot() == (1.0, 4096, 0)


class BrokenClient:
    def run(self, **_: Any) -> RunResponse:
        raise RuntimeError("proxy answered nonsense")


def test_a_platform_failure_after_the_container_started_ends_in_a_record_and_frees_everything(parts):
    executor, pool, permits = parts
    original = pool.acquire

    def acquire(key: str, *, cpu: float, memory_mb: int, init: Any, cpu_shares: int = 1024) -> Lease:
        lease = original(key, cpu=cpu, memory_mb=memory_mb, init=init)
        lease.client = BrokenClient()  # type: ignore[assignment]
        return lease

    pool.acquire = acquire  # type: ignore[method-assign]
    record = executor.execute(request(None, None))
    response = record["response"]
    assert (
        response["statusCode"] == 3 and "RuntimeError: proxy answered nonsense" in response["result"]["error"]
    )
    assert pool.destroyed == 1  # a container in an unknown state is never reused
    assert permits.snapshot() == (1.0, 4096, 0) and executor.running == 0


def test_a_container_that_never_got_ready_is_a_failed_start_recorded_not_raised(parts):
    # A ContainerError is the function's outcome, no longer a DockerError: the start still says so.
    executor, pool, permits = parts

    def acquire(key: str, *, cpu: float, memory_mb: int, init: Any, cpu_shares: int = 1024) -> Lease:
        raise ContainerError("action proxy at 10.0.0.9:8080 not ready after 30.0s: refused")

    pool.acquire = acquire  # type: ignore[method-assign]
    response = executor.execute(request(None, None))["response"]
    assert response["statusCode"] == 3
    assert response["result"]["error"].startswith("Failed to start a container: action proxy")
    assert permits.snapshot() == (1.0, 4096, 0) and executor.running == 0


# --------------------------------------------------------------------------- __OW_* of a run


class EnvClient:
    """Answers with what the run was given, and whether its key worked while it ran."""

    def __init__(self, keys: ActivationKeys) -> None:
        self.keys = keys
        self.runs: list[dict[str, Any]] = []

    def run(self, **kw: Any) -> RunResponse:
        self.runs.append(kw)
        key = kw.get("api_key")
        return RunResponse(
            ok=True, result={"key_ns": self.keys.namespace_for(key) if key else None}, error=None
        )


class EnvPool(FakePool):
    def __init__(self, client: EnvClient) -> None:
        super().__init__()
        self.client = client

    def acquire(self, key: str, *, cpu: float, memory_mb: int, init: Any, cpu_shares: int = 1024) -> Lease:
        info = ContainerInfo("c" * 64, "fake", "127.0.0.1", NO_PID)
        return Lease(info, self.client, False, None, False, cpu, memory_mb)  # type: ignore[arg-type]


class AnnotatedActions(FakeActions):
    def __init__(self, annotations: list[dict[str, Any]]) -> None:
        self.annotations = annotations

    def get(self, namespace: str, action: str, rev: str | None = None) -> dict[str, Any]:
        return {**super().get(namespace, action, rev), "version": "0.0.7", "annotations": self.annotations}


def env_parts(
    tmp_path: Path, annotations: list[dict[str, Any]] | None = None
) -> tuple[ActivationExecutor, EnvClient, MemoryRedis]:
    redis = MemoryRedis()
    keys = ActivationKeys(redis)
    client = EnvClient(keys)
    executor = ActivationExecutor(
        Settings(state_dir=tmp_path),
        AnnotatedActions(annotations or []),  # type: ignore[arg-type]
        EnvPool(client),  # type: ignore[arg-type]
        ResourcePermits(CapacityLedger(1.0, 4096)),
        FakeData(),  # type: ignore[arg-type]
        keys=keys,
    )
    return executor, client, redis


def test_a_run_gets_openwhisks_metadata_and_a_key_of_its_namespace_for_its_duration(tmp_path: Path) -> None:
    executor, client, redis = env_parts(tmp_path)
    record = executor.execute(request(None, None))
    assert record["response"]["result"] == {"key_ns": "guest"}  # the key worked while it ran
    (run,) = client.runs
    assert run["namespace"] == "guest" and run["action_name"] == "/guest/f"
    assert run["activation_id"] == "a" * 32 and run["action_version"] == "0.0.7"
    assert run["deadline_ms"] >= record["start"] + USER["timeout"] - 1000
    assert "api_host" not in run  # the container has its own __OW_API_HOST
    executor.revokes_done()  # revoked off the activation's way, right after the run
    assert executor.keys.namespace_for(run["api_key"]) is None  # revoked once the run ended
    assert redis.values == {}
    # Every activation gets a key of its own.
    executor.execute(request(None, None))
    assert client.runs[1]["api_key"] != run["api_key"]


def test_an_action_that_declines_the_key_gets_none(tmp_path: Path) -> None:
    executor, client, redis = env_parts(tmp_path, [{"key": "provide-api-key", "value": False}])
    executor.execute(request(None, None))
    assert client.runs[0]["api_key"] is None and redis.values == {}


def test_without_redis_the_run_goes_on_without_a_key_and_says_why(tmp_path: Path) -> None:
    executor, client, redis = env_parts(tmp_path)
    redis.down = 1
    record = executor.execute(request(None, None))
    assert record["response"]["success"] and client.runs[0]["api_key"] is None
    assert "Connection refused" in record["gleaner"]["api_key_error"]


def test_a_failed_run_revokes_its_key_too(tmp_path: Path) -> None:
    executor, client, redis = env_parts(tmp_path)

    def crash(**kw: Any) -> RunResponse:
        client.runs.append(kw)
        raise ContainerError("gone")

    client.run = crash  # type: ignore[method-assign]
    record = executor.execute(request(None, None))
    assert not record["response"]["success"] and client.runs[0]["api_key"]
    executor.revokes_done()
    assert redis.values == {}
