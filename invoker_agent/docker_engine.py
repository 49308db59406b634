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

Hardened containers (``settings.action_hardening``, :func:`container_options`): a non-root
user, every capability dropped, ``no-new-privileges``, a pids limit, a read-only root
file system whose one writable place is a size-limited tmpfs ``/tmp``, and a network of
their own (:func:`network_options`: no traffic between containers, the host behind
:mod:`invoker_agent.host_firewall`). Each container gets a fresh secret for its action
proxy, in its environment at creation; only the invoker (and Docker's API) knows it.

Besides that secret (wiped by the proxy before user code runs), a container's environment
holds ``HOME``/``TMPDIR`` and OpenWhisk's ``__OW_API_HOST`` (:func:`bridge_api_host`: this
host's gateway as seen from the actions network, or ``settings.action_api_host``), and
nothing else of the platform. The other ``__OW_*`` variables come per run (the action proxy).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
import requests.exceptions

from gleaner.container_labels import INCARNATION_LABEL, INVOKER_LABEL, MANAGED_LABEL, NETWORK_LABEL
from gleaner.errors import DockerError
from gleaner.settings import Settings
from invoker_agent.cgroup_resize import CPU_PERIOD_US, CgroupResizer, cpu_quota_us
from invoker_agent.host_firewall import HostFirewall
from monitor import cgroups

log = logging.getLogger(__name__)

PROXY_TOKEN_ENV = "__GLEANER_PROXY_TOKEN"  # read and wiped by invoker_agent/runtime/actionproxy.py
API_HOST_ENV = "__OW_API_HOST"  # as OpenWhisk's invoker sets it at container creation
# The runtime image's "gleaner" user (deploy/images/python3/Dockerfile); numeric, so any
# image works, with or without a passwd entry for it.
ACTION_USER = "65532:65532"
ICC_OPTION = "com.docker.network.bridge.enable_icc"
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    id: str
    name: str
    ip: str
    pid: int
    token: str = field(default="", repr=False)  # its action proxy's secret


@dataclass(frozen=True, slots=True)
class ContainerOptions:
    """What ``docker create`` gets for one action container (pure data, unit-tested)."""

    host_config: dict[str, Any]
    environment: dict[str, str]
    user: str | None


DEFAULT_CPU_SHARES = 1024  # the kernel's weight of a cgroup nobody weighted


def container_options(
    settings: Settings,
    *,
    cpu: float,
    memory_mb: int,
    token: str,
    api_host: str = "",
    cpu_shares: int = DEFAULT_CPU_SHARES,
) -> ContainerOptions:
    """The create arguments of an action container, hardened unless the settings say not."""
    memory = _mib(memory_mb)
    host_config: dict[str, Any] = {
        "cpu_period": CPU_PERIOD_US,
        "cpu_quota": _quota(cpu),
        "cpu_shares": cpu_shares,
        "mem_limit": memory,
        "memswap_limit": memory,  # no swap: over the limit is an OOM kill
        "network_mode": network_name(settings),
        "init": False,  # the action proxy is its own init (it reaps orphans as PID 1)
    }
    environment = {PROXY_TOKEN_ENV: token}
    if api_host:
        environment[API_HOST_ENV] = api_host
    if not settings.action_hardening:
        return ContainerOptions(host_config, environment, None)
    host_config.update(
        cap_drop=["ALL"],  # the proxy binds 8080 and signals its own child: it needs none
        security_opt=["no-new-privileges"],
        pids_limit=settings.container_pids_limit,
        read_only=True,
        # The one writable place, in memory (charged to the container's memory limit);
        # executable, since a zip action may bring compiled extension modules.
        tmpfs={"/tmp": f"rw,nosuid,nodev,size={settings.container_tmpfs_mb}m,mode=1777"},
    )
    environment.update(HOME="/tmp", TMPDIR="/tmp")
    return ContainerOptions(host_config, environment, ACTION_USER)


def network_name(settings: Settings) -> str:
    return settings.container_network if settings.action_hardening else "bridge"


def bridge_name(network: str) -> str:
    """The Linux interface of the actions network: fixed, so the firewall can name it
    (at most 15 characters)."""
    return "gl-" + hashlib.sha256(network.encode()).hexdigest()[:12]


def network_options(settings: Settings) -> dict[str, Any]:
    """``docker network create`` arguments of the actions network."""
    return {
        "name": settings.container_network,
        "driver": "bridge",
        "internal": not settings.action_outbound,  # no route beyond this host
        "options": {ICC_OPTION: "false", BRIDGE_NAME_OPTION: bridge_name(settings.container_network)},
        "labels": {MANAGED_LABEL: "true", NETWORK_LABEL: "actions"},
        "check_duplicate": True,
    }


def network_mismatch(attrs: dict[str, Any], settings: Settings) -> str | None:
    """Why an existing network is not the actions network the settings ask for, if it is not."""
    name = settings.container_network
    if attrs.get("Driver") != "bridge":
        return f"network {name} uses the {attrs.get('Driver')!r} driver, not bridge"
    options = attrs.get("Options") or {}
    if str(options.get(ICC_OPTION, "true")).lower() != "false":
        return f"network {name} lets containers talk to each other ({ICC_OPTION} is not false)"
    if bool(attrs.get("Internal")) != (not settings.action_outbound):
        want = "no outbound access" if not settings.action_outbound else "outbound access"
        return f"network {name} does not match GLEANER_ACTION_OUTBOUND ({want} wanted)"
    return None


def bridge_api_host(attrs: dict[str, Any], settings: Settings) -> str:
    """The gateway's URL as a container on the network ``attrs`` describes reaches it: the
    bridge's own address (the network's gateway) and the gateway's port, unless the settings
    name another (``action_api_host``)."""
    if settings.action_api_host:
        return settings.action_api_host
    for config in (attrs.get("IPAM") or {}).get("Config") or []:
        address = str(config.get("Gateway") or "")
        if not address and config.get("Subnet"):
            with suppress(ValueError):  # Docker gives a bridge the subnet's first address
                address = str(ipaddress.ip_network(str(config["Subnet"]), strict=False)[1])
        if address and ":" not in address:  # IPv4: what the action proxy's network uses
            return f"http://{address}:{settings.gateway_port}"
    return settings.api_host


def bridge_of(attrs: dict[str, Any]) -> str:
    """The Linux bridge interface of a Docker bridge network."""
    options = attrs.get("Options") or {}
    return str(options.get(BRIDGE_NAME_OPTION) or f"br-{str(attrs['Id'])[:12]}")


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
        self._network_lock = threading.Lock()
        self._network_ready = False
        self._api_host: str | None = None

    def ping(self) -> None:
        with _wrapped("ping"):
            self.api.ping()

    def start(
        self,
        *,
        image: str,
        name: str,
        cpu: float,
        memory_mb: int,
        labels: dict[str, str],
        cpu_shares: int = DEFAULT_CPU_SHARES,
    ) -> ContainerInfo:
        """Create and start a detached, resource-limited container; return its address,
        pid and the secret its action proxy answers to."""
        token = secrets.token_urlsafe(32)
        self.ensure_network()
        options = container_options(
            self.settings,
            cpu=cpu,
            memory_mb=memory_mb,
            token=token,
            api_host=self.action_api_host(),
            cpu_shares=cpu_shares,
        )
        all_labels = {MANAGED_LABEL: "true", **labels}
        with _wrapped(f"start {name} from {image}"):
            # The low-level API: the high-level run() inspects twice more than needed.
            host_config = self.api.create_host_config(**options.host_config)
            try:
                created = self.api.create_container(
                    image,
                    name=name,
                    labels=all_labels,
                    host_config=host_config,
                    environment=options.environment,
                    user=options.user,
                    detach=True,
                )
            except docker.errors.NotFound:
                self._network_ready = False  # removed behind our back: the next start makes it again
                raise
            container_id = created["Id"]
            try:
                self.api.start(container_id)
                attrs = self.api.inspect_container(container_id)
            except Exception:
                self._remove_quietly(container_id)
                raise
        ip = _ip_of(attrs, network_name(self.settings))
        pid = int(attrs.get("State", {}).get("Pid") or 0)
        if not ip or not pid:
            self._remove_quietly(container_id)
            state = attrs.get("State", {})
            raise DockerError(
                f"docker: container {name} did not come up (status={state.get('Status')}, "
                f"ip={ip!r}, pid={pid}, error={state.get('Error')!r})"
            )
        return ContainerInfo(id=container_id, name=attrs["Name"].lstrip("/"), ip=ip, pid=pid, token=token)

    def ensure_network(self) -> None:
        """Make the actions network exist as the settings describe it, and put this host
        behind its firewall (once per engine; idempotent across invokers)."""
        if not self.settings.action_hardening or self._network_ready:
            return
        with self._network_lock:
            if self._network_ready:
                return
            attrs = self._network()
            self._api_host = bridge_api_host(attrs, self.settings)
            if self.settings.action_host_firewall and self._engine_is_local():
                # The gateway's port alone stays open: actions call the platform with __OW_API_KEY.
                HostFirewall().install(bridge_of(attrs), open_ports=[self.settings.gateway_port])
            elif self.settings.action_host_firewall:
                log.warning(
                    "the Docker engine is not on this machine: its host must keep functions off "
                    "its own services (see invoker_agent/host_firewall.py)"
                )
            self._network_ready = True

    def action_api_host(self) -> str:
        """``__OW_API_HOST`` of this engine's action containers (looked up once)."""
        if self._api_host is None:
            attrs: dict[str, Any] | None = None
            if not self.settings.action_api_host:
                with _wrapped("inspect the actions network"):
                    attrs = self._inspect_network(network_name(self.settings))
            self._api_host = bridge_api_host(attrs or {}, self.settings)
        return self._api_host

    def _network(self) -> dict[str, Any]:
        name = self.settings.container_network
        with _wrapped(f"set up network {name}"):
            attrs = self._inspect_network(name)
            if attrs is not None:
                why = network_mismatch(attrs, self.settings)
                if why is None:
                    return attrs
                if attrs.get("Containers"):
                    raise DockerError(f"{why}; remove it when no container uses it: docker network rm {name}")
                log.info("%s: making it again", why)
                with suppress(docker.errors.NotFound):
                    self.api.remove_network(attrs["Id"])
            try:
                self.api.create_network(**network_options(self.settings))
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # another invoker made it first
                    raise
            attrs = self._inspect_network(name)
            if attrs is None:
                raise DockerError(f"docker: network {name} vanished right after it was created")
            why = network_mismatch(attrs, self.settings)
            if why is not None:
                raise DockerError(why)
            return attrs

    def _inspect_network(self, name: str) -> dict[str, Any] | None:
        try:
            attrs: dict[str, Any] = self.api.inspect_network(name)
        except docker.errors.NotFound:
            return None
        return attrs

    def _engine_is_local(self) -> bool:
        base = str(getattr(self.api, "base_url", ""))
        return base.startswith(("http+docker://", "http+unix://", "npipe://")) or any(
            host in base for host in ("://localhost", "://127.0.0.1", "://[::1]")
        )

    def update(self, container_id: str, *, cpu: float, memory_mb: int, cpu_shares: int | None = None) -> None:
        """Resize a running container live (``docker update --cpus --memory --memory-swap``).

        Raises DockerError when the engine refuses, e.g. a memory limit below current usage.
        """
        memory = _mib(memory_mb)
        shares = {} if cpu_shares is None else {"cpu_shares": cpu_shares}
        with _wrapped(f"update {container_id[:12]} to cpu={cpu} memory={memory_mb}MB"):
            self.api.update_container(
                container_id,
                cpu_period=CPU_PERIOD_US,
                cpu_quota=_quota(cpu),
                mem_limit=memory,
                memswap_limit=memory,
                **shares,
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
            ip = _ip_of(item, network_name(self.settings)) if "NetworkSettings" in item else ""
            name = (item.get("Names") or ["?"])[0].lstrip("/")
            out.append(ContainerInfo(item["Id"], name, ip, 0, self._token_of(item["Id"])))
        return out

    def _token_of(self, container_id: str) -> str:
        """The proxy secret a container was created with (for an invoker taking over)."""
        try:
            env = self.inspect(container_id).get("Config", {}).get("Env") or []
        except DockerError:
            return ""
        return token_in(env)

    def close(self) -> None:
        with _wrapped("close"):
            self.client.close()

    def _remove_quietly(self, container_id: str) -> None:
        try:
            self.remove(container_id)
        except DockerError as exc:
            log.warning("could not remove container %s: %s", container_id[:12], exc)


def token_in(env: list[str]) -> str:
    prefix = PROXY_TOKEN_ENV + "="
    return next((item[len(prefix) :] for item in env if item.startswith(prefix)), "")


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
