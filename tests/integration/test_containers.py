"""Real containers: the Docker engine boundary, the warm pool, resize, cgroup sampling,
OOM kills, timeouts and log capture. Needs a running dockerd and the runtime image."""

from __future__ import annotations

import dataclasses
import textwrap
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from gleaner.errors import ContainerError, DockerError
from gleaner.settings import Settings
from invoker_agent.container_pool import ContainerPool, Lease
from invoker_agent.docker_engine import DockerEngine, bridge_of
from invoker_agent.host_firewall import HostFirewall
from invoker_agent.proxy_client import ActionProxyClient, RunResponse
from monitor.cgroups import CgroupSampler, find_cgroup

pytestmark = pytest.mark.integration

ACTION = textwrap.dedent(
    """
    import multiprocessing, subprocess, sys, time
    HELD = []

    def spin(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass

    def burn(seconds):  # CPU time, not wall time: the same work however busy the host is
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    def main(args):
        if args.get("print"):
            print("hello from the container")
            print("oops", file=sys.stderr)
            subprocess.run(["sh", "-c", "echo from a child process"], check=True)
        if args.get("hold_mb"):  # touch every page so it is really charged
            block = bytearray(args["hold_mb"] * 2**20)
            block[::4096] = b"x" * len(block[::4096])
            HELD.append(block)
        if args.get("sleep"):
            time.sleep(args["sleep"])
        work, seconds = (burn, args["burn"]) if args.get("burn") else (spin, args.get("spin", 0))
        procs = [multiprocessing.Process(target=work, args=(seconds,))
                 for _ in range(args.get("procs", 0))]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        return {"ok": True}
    """
)


def init_action(client: ActionProxyClient) -> None:
    client.init(name="itest", main="main", code=ACTION, binary=False, env={})


def run(lease: Lease, timeout_s: float = 30.0, **args: Any) -> RunResponse:
    return lease.client.run(
        args=args,
        namespace="gleaner-test",
        action_name="/gleaner-test/itest",
        activation_id=uuid.uuid4().hex,
        deadline_ms=int(time.time() * 1000 + timeout_s * 1000),
        api_host="http://127.0.0.1:3233",
        timeout_s=timeout_s,
        log_limit_bytes=10 * 2**20,
    )


@pytest.fixture(scope="module")
def engine(settings: Settings) -> Iterator[DockerEngine]:
    eng = DockerEngine(settings)
    yield eng
    eng.close()


@pytest.fixture()
def pool_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, invoker_id=f"itest-{uuid.uuid4().hex[:8]}")


@pytest.fixture()
def pool(engine: DockerEngine, pool_settings: Settings, runtime_image: str) -> Iterator[ContainerPool]:
    p = ContainerPool(engine, pool_settings, image=runtime_image)
    yield p
    p.shutdown()
    engine.remove_managed(pool_settings.invoker_id)


def key() -> str:
    return f"gleaner-test/itest@{uuid.uuid4().hex[:6]}"


def test_cold_start_then_warm_reuse(pool: ContainerPool, engine: DockerEngine) -> None:
    k = key()
    first = pool.acquire(k, cpu=0.5, memory_mb=128, init=init_action)
    assert first.cold and first.init_ms is not None and first.init_ms > 0
    assert first.container.name.startswith(f"gleaner-{pool.settings.invoker_id}-")
    labels = engine.inspect(first.container.id)["Config"]["Labels"]
    assert labels["gleaner.managed"] == "true"
    assert labels["gleaner.invoker"] == pool.settings.invoker_id
    assert labels["gleaner.action"] == k
    assert run(first).result == {"ok": True}
    pool.release(first)

    second = pool.acquire(k, cpu=0.5, memory_mb=128, init=init_action)
    assert not second.cold and second.init_ms is None and not second.resized
    assert second.container.id == first.container.id
    assert run(second).result == {"ok": True}

    # While the warm one is leased, the same key gets a new container, never the same one.
    third = pool.acquire(k, cpu=0.5, memory_mb=128, init=init_action)
    assert third.cold and third.container.id != second.container.id
    pool.release(second)
    pool.release(third)
    assert pool.stats() == {"idle": 2, "busy": 0, "warming": 0, "memory_mb": 256}
    assert pool.reap_idle(now=time.monotonic() + pool.settings.container_keepalive_s + 1) == 2
    assert pool.stats()["idle"] == 0


def test_limits_land_in_the_cgroup_and_resize_is_live(pool: ContainerPool, engine: DockerEngine) -> None:
    k = key()
    lease = pool.acquire(k, cpu=0.5, memory_mb=128, init=init_action)
    cg = find_cgroup(lease.container.pid, container_id=lease.container.id)
    assert cg.cpu_limit() == pytest.approx(0.5)
    assert cg.memory_limit_bytes() == 128 * 2**20
    if cg.version == 1:
        assert int((cg.cpu_dir / "cpu.cfs_quota_us").read_text()) == 50_000
        assert int((cg.memory_dir / "memory.memsw.limit_in_bytes").read_text()) == 128 * 2**20
    pool.release(lease)

    resized = pool.acquire(k, cpu=1.25, memory_mb=256, init=init_action)
    assert not resized.cold and resized.resized
    assert resized.container.id == lease.container.id
    assert (resized.cpu, resized.memory_mb) == (1.25, 256)
    assert cg.cpu_limit() == pytest.approx(1.25)
    assert cg.memory_limit_bytes() == 256 * 2**20
    if cg.version == 1:
        assert int((cg.cpu_dir / "cpu.cfs_quota_us").read_text()) == 125_000
    assert run(resized).result == {"ok": True}


def test_refused_shrink_replaces_the_container(pool: ContainerPool, engine: DockerEngine) -> None:
    k = key()
    lease = pool.acquire(k, cpu=1, memory_mb=256, init=init_action)
    assert run(lease, hold_mb=150).ok  # the action keeps 150 MB alive in a global
    with pytest.raises(DockerError):
        engine.update(lease.container.id, cpu=1, memory_mb=128)
    pool.release(lease)
    fresh = pool.acquire(k, cpu=1, memory_mb=128, init=init_action)
    assert fresh.cold and not fresh.resized
    assert fresh.container.id != lease.container.id
    assert pool.stats() == {"idle": 0, "busy": 1, "warming": 0, "memory_mb": 128}


def _busy_peak(pool: ContainerPool, settings: Settings, cpu: float, procs: int) -> tuple[float, float]:
    lease = pool.acquire(key(), cpu=cpu, memory_mb=256, init=init_action)
    sampler = CgroupSampler(
        lease.container.pid,
        settings.monitor_interval_ms,
        settings.cpu_window_ms,
        container_id=lease.container.id,
    ).start()
    resp = run(lease, procs=procs, spin=1.5)
    usage = sampler.stop()
    pool.release(lease)
    assert resp.ok, resp.error
    assert usage.samples > 50
    assert len(usage.trajectory) <= 101
    assert usage.cpu_limit == pytest.approx(cpu)
    return usage.peak_cpu, usage.mean_cpu


def test_cpu_peak_respects_a_half_core_quota(pool: ContainerPool, settings: Settings) -> None:
    peak, mean = _busy_peak(pool, settings, cpu=0.5, procs=2)  # two spinners, still 0.5 core
    assert 0.3 <= peak <= 0.65, peak
    assert mean <= peak + 1e-9


def test_two_processes_in_a_two_core_container_are_both_charged_to_it(pool: ContainerPool) -> None:
    """Two processes each burn 1 s of CPU time: the container's cgroup has the 2-core quota
    and charges both. (How many cores they get at once is the host's load's to say.)"""
    lease = pool.acquire(key(), cpu=2.0, memory_mb=256, init=init_action)
    cg = find_cgroup(lease.container.pid, container_id=lease.container.id)
    assert cg.cpu_limit() == pytest.approx(2.0)
    before = cg.read_cpu_usage_ns()
    resp = run(lease, procs=2, burn=1.0)
    charged_s = (cg.read_cpu_usage_ns() - before) / 1e9
    pool.release(lease)
    assert resp.ok, resp.error
    assert charged_s >= 2.0, charged_s


def test_memory_limit_is_an_oom_kill(pool: ContainerPool, engine: DockerEngine, settings: Settings) -> None:
    lease = pool.acquire(key(), cpu=1, memory_mb=128, init=init_action)
    sampler = CgroupSampler(lease.container.pid, settings.monitor_interval_ms, settings.cpu_window_ms)
    sampler.start()
    with pytest.raises(ContainerError) as err:
        run(lease, hold_mb=300)
    assert not err.value.timed_out
    assert engine.oom_killed(lease.container.id, lease.container.pid)
    time.sleep(0.5)  # the container exits with its server; the sampler ends quietly
    usage = sampler.stop()
    assert usage.peak_memory_mb > 64
    assert engine.oom_killed(lease.container.id)
    pool.destroy(lease)


def test_timeout_raises_timed_out(pool: ContainerPool) -> None:
    lease = pool.acquire(key(), cpu=0.5, memory_mb=128, init=init_action)
    with pytest.raises(ContainerError) as err:  # the 10 s sleep would have answered ok
        run(lease, timeout_s=1.0, sleep=10)
    assert err.value.timed_out
    pool.destroy(lease)


def test_logs_are_captured(pool: ContainerPool) -> None:
    lease = pool.acquire(key(), cpu=0.5, memory_mb=128, init=init_action)
    resp = run(lease, print=True)
    assert resp.ok
    bodies = {line.split(" ", 1)[1] for line in resp.logs}  # stdout/stderr interleave freely
    assert bodies == {"stdout: hello from the container", "stderr: oops", "stdout: from a child process"}


def test_warm_runs_share_one_keep_alive_connection(pool: ContainerPool) -> None:
    """Their round trip is measured by `gleaner bench invoke` (benchmarks/invoke.py, warm:
    run_p50); that each answer is one send on a TCP_NODELAY socket, by the proxy's unit tests."""
    lease = pool.acquire(key(), cpu=1, memory_mb=128, init=init_action)
    assert run(lease).ok
    conn = lease.client._conn
    assert conn is not None and conn.sock is not None
    sock = conn.sock
    for _ in range(50):
        assert run(lease).ok
    assert lease.client._conn is conn and conn.sock is sock


def test_remove_managed_cleans_up_leftovers(
    engine: DockerEngine, pool_settings: Settings, runtime_image: str
) -> None:
    inv = pool_settings.invoker_id
    info = engine.start(
        image=runtime_image,
        name=f"gleaner-{inv}-leftover",
        cpu=0.25,
        memory_mb=64,
        labels={"gleaner.invoker": inv},
    )
    assert info.ip and info.pid > 0
    assert engine.remove_managed(inv) == 1
    with pytest.raises(DockerError):
        engine.inspect(info.id)
    engine.remove(info.id)  # removing what is gone is not an error


def test_the_proxy_answers_only_the_token_its_container_was_given(pool: ContainerPool) -> None:
    lease = pool.acquire(key(), cpu=0.25, memory_mb=128, init=init_action)
    assert lease.container.token and run(lease).ok
    stranger = ActionProxyClient(lease.container.ip, 8080, token="not-" + lease.container.token)
    try:
        stranger.wait_ready(5)  # /ping is open
        resp = stranger.run(
            args={},
            namespace="x",
            action_name="/x/y",
            activation_id="z" * 32,
            deadline_ms=0,
            api_host="",
            timeout_s=5,
            log_limit_bytes=1000,
        )
        assert not resp.ok and resp.error == "This action proxy answers its invoker only."
    finally:
        stranger.close()
    pool.release(lease)


def test_a_network_without_outbound_access_still_serves_its_invoker(
    settings: Settings, runtime_image: str
) -> None:
    """GLEANER_ACTION_OUTBOUND=false: an internal network; the invoker still reaches each proxy."""
    net = f"gleaner-itest-{uuid.uuid4().hex[:6]}"
    s = dataclasses.replace(
        settings, container_network=net, action_outbound=False, invoker_id=f"itest-{uuid.uuid4().hex[:8]}"
    )
    eng = DockerEngine(s)
    p = ContainerPool(eng, s, image=runtime_image)
    try:
        lease = p.acquire(key(), cpu=0.25, memory_mb=128, init=init_action)
        assert run(lease).ok
        attrs = eng.api.inspect_network(net)
        assert attrs["Internal"] is True
        assert attrs["Options"]["com.docker.network.bridge.enable_icc"] == "false"
        assert HostFirewall().installed(bridge_of(attrs))
        second = DockerEngine(s)  # another invoker on the same network: nothing to do twice
        second.ensure_network()
        second.close()
        p.release(lease)
    finally:
        p.shutdown()
        eng.remove_managed(s.invoker_id)
        attrs = eng.api.inspect_network(net)
        eng.api.remove_network(net)
        HostFirewall().uninstall(bridge_of(attrs))
        eng.close()


def test_an_invoker_taking_over_finds_each_containers_token(
    engine: DockerEngine, pool_settings: Settings, runtime_image: str
) -> None:
    """A restarted invoker asks its predecessor's containers for finished answers: it
    reads each container's proxy secret from Docker, and the proxy answers it."""
    p = ContainerPool(engine, pool_settings, image=runtime_image, incarnation="before-crash")
    try:
        lease = p.acquire(key(), cpu=0.25, memory_mb=128, init=init_action)
        activation = uuid.uuid4().hex
        resp = lease.client.run(
            args={},
            namespace="gleaner-test",
            action_name="/gleaner-test/itest",
            activation_id=activation,
            deadline_ms=0,
            api_host="",
            timeout_s=10,
            log_limit_bytes=1000,
        )
        assert resp.ok
        (found,) = engine.containers_of(pool_settings.invoker_id, "before-crash")
        assert found.id == lease.container.id and found.token == lease.container.token
        client = ActionProxyClient(found.ip, 8080, token=found.token)
        try:
            kept = client.finished_run(activation)
        finally:
            client.close()
        assert kept is not None and kept.ok and kept.result == {"ok": True}
        p.release(lease)
    finally:
        p.shutdown()
        engine.remove_managed(pool_settings.invoker_id)


def test_without_hardening_containers_run_as_before_for_the_benchmark(
    settings: Settings, runtime_image: str
) -> None:
    """GLEANER_ACTION_HARDENING=false (the "before" of the benchmark): Docker's defaults on
    its default bridge; the proxy still answers only its invoker."""
    s = dataclasses.replace(settings, action_hardening=False, invoker_id=f"itest-{uuid.uuid4().hex[:8]}")
    eng = DockerEngine(s)
    p = ContainerPool(eng, s, image=runtime_image)
    try:
        lease = p.acquire(key(), cpu=0.25, memory_mb=128, init=init_action)
        assert run(lease).ok
        host = eng.inspect(lease.container.id)["HostConfig"]
        assert host["NetworkMode"] == "bridge" and not host["ReadonlyRootfs"] and not host["CapDrop"]
        assert host["Memory"] == host["MemorySwap"]
        p.release(lease)
    finally:
        p.shutdown()
        eng.remove_managed(s.invoker_id)
        eng.close()
