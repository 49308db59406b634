"""The one module that talks to Docker (docker SDK). Every SDK or transport error leaves
here as :class:`gleaner.errors.DockerError` (``raise ... from exc``).

Limits map onto the CFS bandwidth controller and the memory controller exactly as
``docker run --cpus C --memory M --memory-swap M`` would: quota = C x period with the
100 ms period, memory+swap = memory (no swap, so exceeding the limit is an OOM kill
rather than slow swapping).

A running container's CPU limit has two resize paths: :meth:`DockerEngine.update`
(``docker update``, cpu and memory together, tens of ms) and :meth:`DockerEngine.set_cpu`
(a direct cgroup write, tens of µs, :mod:`invoker_agent.cgroup_resize`; figures from
``gleaner bench resize`` in docs/benchmarks.md). The direct write
leaves Docker's stored CpuQuota stale; the next ``update`` rewrites it (that module says why
that is harmless). Containers start with ``cpu_period``/``cpu_quota``, never
``nano_cpus``: Docker refuses a later ``cpu_period`` update of a ``--cpus`` container.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import requests.exceptions

from gleaner.errors import DockerError
from gleaner.settings import Settings
from invoker_agent.cgroup_resize import CPU_PERIOD_US, CgroupResizer, cpu_quota_us
from monitor import cgroups

log = logging.getLogger(__name__)

MANAGED_LABEL = "gleaner.managed"
INVOKER_LABEL = "gleaner.invoker"
INCARNATION_LABEL = "gleaner.incarnation"  # which run of the invoker started it


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    id: str
    name: str
    ip: str
    pid: int


@contextmanager
def _wrapped(what: str) -> Iterator[None]:
    try:
        yield
    except DockerError:
        raise
    except docker.errors.DockerException as exc:
        raise DockerError(f"docker: {what}: {exc}") from exc
    except (requests.exceptions.RequestException, OSError) as exc:
        raise DockerError(f"docker: {what}: cannot reach the Docker engine: {exc}") from exc


class DockerEngine:
    def __init__(self, settings: Settings, *, timeout_s: int = 60) -> None:
        self.settings = settings
        with _wrapped("connect"):
            if settings.docker_host:
                self.client = docker.DockerClient(base_url=settings.docker_host, timeout=timeout_s)
            else:
                self.client = docker.from_env(timeout=timeout_s)
        self.api = self.client.api
        self.resizer = CgroupResizer()

    def ping(self) -> None:
        with _wrapped("ping"):
            self.api.ping()

    def start(
        self, *, image: str, name: str, cpu: float, memory_mb: int, labels: dict[str, str]
    ) -> ContainerInfo:
        """Create and start a detached, resource-limited container; return its address and pid."""
        memory = _mib(memory_mb)
        all_labels = {MANAGED_LABEL: "true", **labels}
        with _wrapped(f"start {name} from {image}"):
            # The low-level API: the high-level run() inspects twice more than needed.
            host_config = self.api.create_host_config(
                cpu_period=CPU_PERIOD_US,
                cpu_quota=_quota(cpu),
                mem_limit=memory,
                memswap_limit=memory,
                network_mode=self.settings.container_network,
                init=False,  # the action proxy is its own init (it reaps orphans as PID 1)
            )
            created = self.api.create_container(
                image, name=name, labels=all_labels, host_config=host_config, detach=True
            )
            container_id = created["Id"]
            try:
                self.api.start(container_id)
                attrs = self.api.inspect_container(container_id)
            except Exception:
                self._remove_quietly(container_id)
                raise
        ip = _ip_of(attrs, self.settings.container_network)
        pid = int(attrs.get("State", {}).get("Pid") or 0)
        if not ip or not pid:
            self._remove_quietly(container_id)
            state = attrs.get("State", {})
            raise DockerError(
                f"docker: container {name} did not come up (status={state.get('Status')}, "
                f"ip={ip!r}, pid={pid}, error={state.get('Error')!r})"
            )
        return ContainerInfo(id=container_id, name=attrs["Name"].lstrip("/"), ip=ip, pid=pid)

    def update(self, container_id: str, *, cpu: float, memory_mb: int) -> None:
        """Resize a running container live (``docker update --cpus --memory --memory-swap``).

        Raises DockerError when the engine refuses, e.g. a memory limit below current usage.
        """
        memory = _mib(memory_mb)
        with _wrapped(f"update {container_id[:12]} to cpu={cpu} memory={memory_mb}MB"):
            self.api.update_container(
                container_id,
                cpu_period=CPU_PERIOD_US,
                cpu_quota=_quota(cpu),
                mem_limit=memory,
                memswap_limit=memory,
            )

    def set_cpu(self, info: ContainerInfo, cpu: float) -> None:
        """Resize the CPU limit of a running container live by writing its cgroup
        (``cpu.cfs_quota_us`` / ``cpu.max``), bypassing dockerd.

        Raises DockerError (:class:`~invoker_agent.cgroup_resize.CgroupGone` when the
        container is gone) and nothing else. ``docker inspect`` keeps the old CpuQuota.
        """
        self.resizer.set_cpu(info.id, info.pid, cpu)

    def inspect(self, container_id: str) -> dict[str, Any]:
        with _wrapped(f"inspect {container_id[:12]}"):
            attrs: dict[str, Any] = self.api.inspect_container(container_id)
            return attrs

    def oom_killed(self, container_id: str, pid: int | None = None, *, wait_s: float = 2.0) -> bool:
        """Whether the kernel OOM-killed a process of this container.

        While the container lives, its cgroup's ``oom_kill`` counter is the truth (the
        killed process need not be its init). Once it has exited, ``State.OOMKilled`` is,
        but Docker may record the exit before the OOM event: an exit by SIGKILL (137)
        is therefore re-inspected for up to ``wait_s``.
        """
        deadline = time.monotonic() + wait_s
        while True:
            try:
                state = self.inspect(container_id).get("State", {})
            except DockerError:
                return False
            if state.get("OOMKilled"):
                return True
            live_pid = int(state.get("Pid") or 0) or pid
            if state.get("Running") and live_pid:
                try:
                    return cgroups.find_cgroup(live_pid, container_id=container_id).oom_kills() > 0
                except (OSError, ValueError, cgroups.CgroupNotFound):
                    pass  # exiting right now: look again
            elif state.get("ExitCode") != 137:
                return False
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def remove(self, container_id: str) -> None:
        """Force-remove (SIGKILL + delete). A container that is already gone is not an error."""
        self.resizer.forget(container_id)
        with _wrapped(f"remove {container_id[:12]}"):
            try:
                self.api.remove_container(container_id, force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if "already in progress" not in str(exc):
                    raise

    def remove_managed(self, invoker_id: str | None = None, *, keep_incarnation: str | None = None) -> int:
        """Remove leftovers labelled ``gleaner.managed=true`` (optionally of one
        invoker, sparing the containers of its current incarnation), several at once."""
        filters = [f"{MANAGED_LABEL}=true"]
        if invoker_id is not None:
            filters.append(f"{INVOKER_LABEL}={invoker_id}")
        with _wrapped("list managed containers"):
            found = self.api.containers(all=True, filters={"label": filters})
        doomed = [
            item["Id"]
            for item in found
            if keep_incarnation is None
            or (item.get("Labels") or {}).get(INCARNATION_LABEL) != keep_incarnation
        ]
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="remove") as workers:
            list(workers.map(self._remove_quietly, doomed))
        return len(doomed)

    def containers_of(self, invoker_id: str, incarnation: str) -> list[ContainerInfo]:
        """The live containers one run of an invoker started (to ask for finished answers)."""
        labels = [
            f"{MANAGED_LABEL}=true",
            f"{INVOKER_LABEL}={invoker_id}",
            f"{INCARNATION_LABEL}={incarnation}",
        ]
        with _wrapped("list an incarnation's containers"):
            found = self.api.containers(filters={"label": labels, "status": "running"})
        out = []
        for item in found:
            ip = _ip_of(item, self.settings.container_network) if "NetworkSettings" in item else ""
            name = (item.get("Names") or ["?"])[0].lstrip("/")
            out.append(ContainerInfo(item["Id"], name, ip, 0))
        return out

    def image_exists(self, image: str) -> bool:
        with _wrapped(f"inspect image {image}"):
            try:
                self.api.inspect_image(image)
            except docker.errors.ImageNotFound:
                return False
            return True

    def close(self) -> None:
        with _wrapped("close"):
            self.client.close()

    def _remove_quietly(self, container_id: str) -> None:
        try:
            self.remove(container_id)
        except DockerError as exc:
            log.warning("could not remove container %s: %s", container_id[:12], exc)


def _quota(cpu: float) -> int:
    return cpu_quota_us(cpu, CPU_PERIOD_US)  # DockerError on a non-positive cpu; at least 1 ms


def _mib(memory_mb: int) -> int:
    if memory_mb < 6:
        raise DockerError(f"memory allocation must be at least 6 MB, got {memory_mb}")
    return int(memory_mb) * 2**20


def _ip_of(attrs: dict[str, Any], network: str) -> str:
    settings = attrs.get("NetworkSettings") or {}
    networks = settings.get("Networks") or {}
    preferred = networks.get(network) or {}
    if preferred.get("IPAddress"):
        return str(preferred["IPAddress"])
    for net in networks.values():
        if net and net.get("IPAddress"):
            return str(net["IPAddress"])
    return str(settings.get("IPAddress") or "")
