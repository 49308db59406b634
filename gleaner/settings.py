"""One frozen settings object, read from the environment at start-up.

Every environment variable Gleaner reads is named in ``ENV_VARS`` below, so the
full surface is visible in one place. Every address defaults to the embedded
stack that ``gleaner up`` starts and can point at an external service instead.
Nothing here runs at import time: call :func:`load_settings`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gleaner.errors import SettingsError
from gleaner.settings_sections import (
    CompositionSettings,
    DbNames,
    GatewaySettings,
    KafkaSettings,
    LimitsSettings,
    ReplaySettings,
    StoreSettings,
    TopicNames,
)

PREFIX = "GLEANER_"

# The OpenWhisk "guest" key, so a stock wsk/openwhisk client setup works unchanged.
GUEST_AUTH = (
    "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
)

_SECRET_FIELDS = frozenset(
    {
        "couchdb_password",
        "redis_password",
        "guest_auth",
        "admin_auth",
        "platform_secret",
        "kafka_sasl_password",
    }
)

# The embedded broker's storage engines (deploy/seaweed.py), and how many ports above
# kafka_s3_port the S3 store also takes (deploy/seaweed.py's MAX_PORT_OFFSET).
KAFKA_STORAGES = ("memory", "s3")
KAFKA_S3_PORT_SPAN = 10_004

# streams/placement/policies.py's PLACEMENT_POLICY_FACTORIES, by name (a test keeps the two in step).
PLACEMENT_POLICIES = ("greedy-jsq", "jsq", "round-robin", "greedy-round-robin", "hash")


def _default_cores() -> float:
    return float(os.cpu_count() or 1)


def _default_memory_mb() -> int:
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return int(pages / 2**20 * 0.5)
    except (ValueError, OSError):
        return 4096


@dataclass(frozen=True, slots=True)
class Settings(TopicNames, DbNames):
    # --- external systems -------------------------------------------------
    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Empty: a password in redis_url, else the embedded Redis's (<state_dir>/secrets/redis.auth).
    redis_password: str = ""
    couchdb_url: str = "http://127.0.0.1:5984"
    couchdb_user: str = ""
    couchdb_password: str = ""  # both empty: the embedded server admin (<state_dir>/secrets/couchdb.auth)
    db_prefix: str = "gleaner_"
    docker_host: str = ""  # empty: the Docker SDK's own default (DOCKER_HOST or the local socket)

    # --- Kafka topics and client tuning -------------------------------------
    topic_prefix: str = ""
    topic_partitions: int = 4
    # Short group timeouts: a join takes ~23 s on Tansu with librdkafka defaults.
    kafka_session_timeout_ms: int = 3000
    kafka_heartbeat_interval_ms: int = 1000
    # Static group membership (a fixed instance id per component and host): a restarted member
    # gets its partitions back without a rebalance on Apache Kafka. Off by default: Tansu 0.6
    # answers such a join in ~6 s instead of ~2 s.
    kafka_static_membership: bool = False
    # librdkafka statistics (consumer lag for the metrics) every this many ms; 0 off.
    kafka_stats_interval_ms: int = 5000
    # Platform clients on an Apache Kafka with SASL (see README, "Who may write an event"):
    # PLAINTEXT (the embedded broker), SASL_PLAINTEXT or SASL_SSL; SCRAM-SHA-512/256 or PLAIN.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    kafka_ssl_ca_location: str = ""  # CA bundle for SASL_SSL; empty: the system's
    # Hot path (requests, plans, invocations, completions). Tansu answers a fetch
    # only when this wait ends (measured again: a 500 ms wait made every hop ~250
    # ms), so it bounds each hop; 1 ms costs the broker ~0.9 core idle on a 2-core
    # node, 5 ms ~0.4.
    kafka_fetch_wait_max_ms: int = 5
    # Off the hot path (heartbeats, the record sink): every idle consumer at 1 ms
    # sends ~1,000 fetches/s, which keeps the embedded broker busy for nothing.
    kafka_fetch_wait_idle_ms: int = 100
    # Heartbeat readers (placement, gateway): a beat a second never lets them doze,
    # and a view of capacity that is half a second older changes no decision.
    kafka_fetch_wait_health_ms: int = 500
    # At idle (no record for ``kafka_idle_after_ms``; 0: never) a librdkafka
    # consumer dozes: paused, with a short fetch probe every
    # ``kafka_doze_probe_every_ms`` (streams/kafka/doze.py). The Faust predictor's
    # aiokafka consumer switches to ``kafka_stream_fetch_wait_idle_ms`` instead.
    # Without the doorbell (below) a lone record after a quiet spell pays about half
    # the probe interval more per hop; the predictor's, up to its idle wait.
    kafka_idle_after_ms: int = 10_000
    kafka_doze_probe_every_ms: int = 100
    # The doorbell (streams/kafka/doorbell.py, Redis pub/sub): our producers ring a
    # topic before writing to it and its dozing consumers resume at once, so they
    # probe only every ``kafka_doorbell_probe_every_ms``, for outside producers.
    kafka_doorbell: bool = True
    kafka_doorbell_probe_every_ms: int = 2000
    kafka_stream_fetch_wait_ms: int = 5
    kafka_stream_fetch_wait_idle_ms: int = 50
    kafka_message_max_bytes: int = 8 * 2**20
    # Where the embedded Tansu keeps its log: "memory" (lost when it stops) or "s3" (durable:
    # on a SeaweedFS that `gleaner up` starts first, supervises and stops; deploy/seaweed.py).
    kafka_storage: str = "memory"
    # The S3 port of that SeaweedFS; its other servers take the 4 ports just above, and
    # each of the 5 its HTTP port + 10000 for gRPC. Loopback only.
    kafka_s3_port: int = 8333
    # The gateway keeps what it accepts in Redis until its record exists, and sends it again
    # after the memory broker lost its log (streams/outbox.py). Off only to measure its cost.
    outbox: bool = True

    # --- HTTP gateway --------------------------------------------------------
    gateway_bind: str = "0.0.0.0"
    gateway_port: int = 3233
    api_host: str = "http://localhost:3233"  # what clients are told to use (~/.wskprops)
    max_payload_bytes: int = 1_048_576  # OpenWhisk's default
    blocking_wait_s: float = 60.0
    action_cache_ttl_s: float = 2.0
    guest_namespace: str = "guest"
    # Empty: generated once by `gleaner up` into <state_dir>/secrets/guest.auth (and ~/.wskprops).
    guest_auth: str = ""
    # True: the default namespace uses OpenWhisk's published guest key (compatibility tests only).
    public_guest_key: bool = False
    # The platform admin's "uuid:key" (admin routes); empty: <state_dir>/secrets/admin.auth.
    admin_auth: str = ""
    # Signs Gleaner's own Kafka events and keys payload references (HMAC); empty: generated once
    # into <state_dir>/secrets/platform.key (0600). Set the same value on every host of a cluster.
    platform_secret: str = ""

    # --- Prometheus metrics (gleaner/metrics.py) ------------------------------
    # Each component at a fixed offset from the base (invokers at +10+index); 0: off.
    metrics_port_base: int = 9400
    metrics_bind: str = "127.0.0.1"

    # --- resource model (allowed allocations) -------------------------------
    cpu_min: float = 0.25
    cpu_max: float = field(default_factory=_default_cores)
    cpu_step: float = 0.25
    memory_min_mb: int = 128
    memory_max_mb: int = 8192
    memory_step_mb: int = 128
    # The thesis encodes CPU in the memory limit: (cpu - 1) * base + memory.
    encoding_base_mb: int = 8192
    default_cpu: float = 1.0
    default_memory_mb: int = 256
    default_timeout_ms: int = 60_000
    timeout_min_ms: int = 100
    timeout_max_ms: int = 300_000
    default_log_limit_mb: int = 10

    # --- DAGs ------------------------------------------------------------------
    max_dag_functions: int = 50  # OpenWhisk's sequence limit
    max_map_width: int = 64
    dag_timeout_s: float = 600.0  # no request hangs forever
    max_dag_payload_bytes: int = 64 * 2**20
    inline_payload_bytes: int = 64 * 1024  # above this, values travel by reference via Redis
    data_ttl_s: int = 3600

    # --- harvesting ------------------------------------------------------------
    harvest_enabled: bool = True  # global switch; a request's "harvest" field overrides it
    harvest_policy: str = "thesis"  # what harvesting means when a request names no policy (measured best)
    harvest_yield: bool = True  # live claims give cores above their user allocation to waiters
    harvest_work_aware_safeguard: bool = True  # CPU safeguard fires only beyond predicted work
    harvest_memory_margin: float = 0.25  # added to predicted memory before rounding up (OOM safety)
    models_dir: str = ""  # empty: <state_dir>/models

    # --- the invoker's scheduler (invoker_agent.scheduling) ------------------------
    scheduler: str = "slack"  # fifo | age | slack: the order claims are served in, across requests
    scheduler_backfill: bool = True  # EASY backfill behind a head that does not fit
    scheduler_wait_bound_ms: float = 30_000.0  # starvation bound of the least-slack order
    scheduler_lending: bool = True  # lend running functions' measured idle cores to waiters
    scheduler_lend_margin: float = 0.25  # cores a lender keeps above its recent peak use
    dag_slo_factor: float = 2.0  # without an SLO: deadline = arrival + factor x predicted latency

    # --- placement --------------------------------------------------------------
    # Which invoker gets an activation (PLACEMENT_POLICIES); read when placement starts.
    placement_policy: str = "greedy-jsq"

    # --- invoker agent --------------------------------------------------------
    invoker_id: str = "invoker0"
    invoker_cpu_capacity: float = field(default_factory=_default_cores)
    invoker_memory_capacity_mb: int = field(default_factory=_default_memory_mb)
    container_keepalive_s: float = 600.0
    # Pre-warm along the DAG: when a DAG request starts, its later stages' invokers start
    # containers for functions with none warm (idle, no permits; the keep-alive reaps unused ones).
    prewarm: bool = True
    prewarm_max_starting: int = 2  # pre-warm container starts at once per invoker; more wait or drop
    # Just in time: when stage k starts, stages up to k + this are hinted (further ones
    # too when the stages before them are known to be shorter than a container start).
    prewarm_lookahead: int = 1
    # Hardened action containers (non-root, no capabilities, no-new-privileges, pids limit,
    # read-only root with a tmpfs /tmp, own network with no inter-container traffic and the
    # host firewalled off). False: Docker's defaults on the default bridge, for the
    # before/after benchmark only.
    action_hardening: bool = True
    # The user-defined bridge network action containers sit on; the invoker creates it.
    container_network: str = "gleaner-actions"
    action_outbound: bool = True  # functions may open connections beyond this host (OpenWhisk's default)
    # Reject everything a function sends to this host (stores, gateway, dockerd) with an
    # iptables chain on the actions bridge; false where iptables cannot be used (rootless).
    action_host_firewall: bool = True
    # The __OW_API_HOST actions get (a URL they can reach). Empty: this host's gateway at the
    # actions bridge's address (http://<bridge gateway IP>:<gateway_port>), whose port alone
    # the host firewall lets functions reach.
    action_api_host: str = ""
    container_pids_limit: int = 512  # processes and threads per container
    container_tmpfs_mb: int = 64  # the writable /tmp of a container (its only writable place)
    runtime_image: str = "gleaner/python:3"
    monitor_interval_ms: int = 10
    cpu_window_ms: int = 100  # never below the CFS quota period
    heartbeat_interval_s: float = 1.0
    invoker_unhealthy_after_s: float = 10.0  # silent this long: offline, its unacknowledged work moves
    # Invoker agents `gleaner up` runs on this machine (invoker0..); the capacity is split between them.
    invokers: int = 1
    record_batch_ms: int = 20
    # The embedded CouchDB on disk (LevelDB) and Redis with an append-only file; false: in memory.
    embedded_durable: bool = True
    # How long an activation waits for an unreachable action store before it fails (statusCode 3).
    platform_retry_s: float = 120.0
    # How long a restarted invoker keeps its crashed run's containers, to ask them for finished answers.
    leftover_grace_s: float = 30.0

    # --- local state (embedded stack) ---------------------------------------
    state_dir: Path = field(default_factory=lambda: Path.home() / ".gleaner")

    # ---------------------------------------------------------------------------
    # The sections a component receives (gleaner/settings_sections.py), built afresh on each read.
    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings.of(self)

    @property
    def stores(self) -> StoreSettings:
        return StoreSettings.of(self)

    @property
    def composition(self) -> CompositionSettings:
        return CompositionSettings.of(self)

    @property
    def gateway(self) -> GatewaySettings:
        return GatewaySettings.of(self)

    @property
    def replay(self) -> ReplaySettings:
        return ReplaySettings.of(self)

    @property
    def limits(self) -> LimitsSettings:
        return LimitsSettings.of(self)

    @property
    def models_root(self) -> Path:
        return Path(self.models_dir).expanduser() if self.models_dir else self.state_dir / "models"

    def masked(self) -> dict[str, object]:
        """The settings as a dict with secrets hidden, safe to print or log."""
        out: dict[str, object] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRET_FIELDS and value:
                value = "***"
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out


# Environment variable -> field name. Kept as data so docs and tests can list it.
ENV_VARS: dict[str, str] = {PREFIX + f.name.upper(): f.name for f in dataclasses.fields(Settings)}


def _coerce(name: str, raw: str, kind: object) -> object:
    try:
        if kind in (bool, "bool"):
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes", "on")
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
        if kind in (Path, "Path"):
            return Path(raw).expanduser()
        return raw
    except ValueError as exc:
        raise SettingsError(f"{PREFIX}{name.upper()}={raw!r} is not a valid {kind}") from exc


def load_settings(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from ``GLEANER_*`` variables, then explicit overrides."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    for f in dataclasses.fields(Settings):
        key = PREFIX + f.name.upper()
        if key in env:
            values[f.name] = _coerce(f.name, env[key], f.type)
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    _check(settings)
    return settings


EVENT_HEADROOM_BYTES = 64 * 1024  # an event's own fields around the payload it carries


def _check(s: Settings) -> None:
    # One size rule for every client: whatever the gateway accepts must fit in one Kafka event.
    for name, size in (
        ("max_payload_bytes", s.max_payload_bytes),
        ("inline_payload_bytes", s.inline_payload_bytes),
    ):
        if size + EVENT_HEADROOM_BYTES > s.kafka_message_max_bytes:
            raise SettingsError(
                f"{name}={size} leaves no room in one Kafka event of kafka_message_max_bytes="
                f"{s.kafka_message_max_bytes} (needs {EVENT_HEADROOM_BYTES} bytes more)"
            )
    if not 0 < s.cpu_min <= s.cpu_max:
        raise SettingsError(f"cpu range {s.cpu_min}..{s.cpu_max} is empty")
    if not 0 < s.memory_min_mb <= s.memory_max_mb:
        raise SettingsError(f"memory range {s.memory_min_mb}..{s.memory_max_mb} is empty")
    if s.cpu_window_ms < 100:
        raise SettingsError("cpu_window_ms must be >= 100 (the CFS quota period)")
    if s.invoker_cpu_capacity <= 0 or s.invoker_memory_capacity_mb <= 0:
        raise SettingsError("invoker capacity must be positive")
    if s.action_hardening and s.container_network in ("bridge", "host", "none", "default", ""):
        raise SettingsError(
            f"container_network={s.container_network!r}: hardened action containers need a network"
            " of their own (a user-defined bridge the invoker creates), not Docker's built-in one"
        )
    if s.container_pids_limit < 16 or s.container_tmpfs_mb < 1:
        raise SettingsError("container_pids_limit must be >= 16 and container_tmpfs_mb >= 1")
    if s.prewarm_max_starting < 1:
        raise SettingsError(f"prewarm_max_starting must be at least 1, got {s.prewarm_max_starting}")
    if s.prewarm_lookahead < 1:
        raise SettingsError(f"prewarm_lookahead must be at least 1, got {s.prewarm_lookahead}")
    if s.invokers < 1:
        raise SettingsError(f"invokers must be at least 1, got {s.invokers}")
    if s.harvest_policy not in ("thesis", "libra", "gleaner", "gleaner-idle"):
        raise SettingsError(
            f"harvest_policy must be thesis, libra, gleaner or gleaner-idle, got {s.harvest_policy!r}"
        )
    if s.scheduler not in ("fifo", "age", "slack"):
        raise SettingsError(f"scheduler must be fifo, age or slack, got {s.scheduler!r}")
    if not s.scheduler_lend_margin >= 0:
        raise SettingsError("scheduler_lend_margin must not be negative")
    if not s.scheduler_wait_bound_ms > 0 or not s.dag_slo_factor >= 1:
        raise SettingsError("scheduler_wait_bound_ms must be positive and dag_slo_factor at least 1")
    if s.kafka_storage not in KAFKA_STORAGES:
        raise SettingsError(f"kafka_storage must be {' or '.join(KAFKA_STORAGES)}, got {s.kafka_storage!r}")
    if not 1024 <= s.kafka_s3_port <= 65535 - KAFKA_S3_PORT_SPAN:
        raise SettingsError(
            f"kafka_s3_port must be 1024..{65535 - KAFKA_S3_PORT_SPAN} (the store also listens"
            f" up to {KAFKA_S3_PORT_SPAN} above it), got {s.kafka_s3_port}"
        )
    if s.placement_policy not in PLACEMENT_POLICIES:
        raise SettingsError(
            f"placement_policy must be one of {', '.join(PLACEMENT_POLICIES)}, got {s.placement_policy!r}"
        )
