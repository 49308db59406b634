"""``gleaner bench broker``: one Kafka hop on the memory broker and on the durable
(``s3://``) broker, side by side in one run (issue 21 item 1).

It starts its own brokers on ports of its own (never the stack's): a memory Tansu,
and an ``s3://`` Tansu on its SeaweedFS, both from the same argv, keys and
environment ``gleaner up`` uses (deploy/services.py, deploy/seaweed.py), with a
copy of the settings that points at those ports and a fresh state dir under
``--state-root`` (``/tmp``; ``/dev/shm`` puts the store on tmpfs). Then it times
the produce -> consume hop with the hot path's client settings
(streams/kafka/client.py: linger 0, acks all, the hot fetch wait), one event at a
time, alternating the brokers (and which goes first) so a busy machine's drift
hits both alike. Beside the percentiles:

- the produce's ack alone (the produce side of the hop; the rest is the fetch);
- p50 per quarter of the hops, i.e. as the partition's log grows;
- the first hop after start, and hops that never came back (``--timeout``);
- the S3 requests one hop costs and their time inside SeaweedFS (its own
  Prometheus counters, ``-metricsPort``), the answer to "where does the time go";
- each broker process's CPU and RSS over an idle window with no client connected;
- with ``--kill-check N``: N events acked on the s3 broker, ``kill -9`` of Tansu
  and its store, both started again on the same state dir, and how many of the N
  are read back.

What Tansu's s3 engine does per hop (tansu-storage/src/dynostore.rs at the binary's
commit 510f3e2, and the counters here): a produce is two conditional PUTs in turn
(the partition's watermark.json, If-Match, then the batch object, If-None-Match);
a fetch that finds new data LISTs every record object of the partition, from its
first, then GETs each batch it wants. That LIST stops when the fetch's wait
(``fetch.wait.max.ms``) runs out: once listing the partition takes longer, the
newest records are cut off, the fetch comes back empty and is sent again, so hops
stall (seconds) and the store spins on LISTs. The log is never trimmed (its
DeleteRecords is ``todo!()``), so the LIST only grows. Use ``--backlog`` with a
short wait with care: it is this livelock, and it burns the cores.

Everything it started is stopped at the end (by pid, its own process groups),
and its state dir removed unless ``--keep-state``.

Heavy modules (librdkafka, the deploy helpers) are imported where they are used,
so building the CLI's parser stays cheap.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.report import percentile, write_section
from gleaner.settings import Settings, load_settings

if TYPE_CHECKING:
    import confluent_kafka

HOST = "127.0.0.1"
MEMORY, S3 = "memory", "s3"
# Issue 21's target for the durable mode's hop, measured side by side with the memory broker.
TARGET_P50_RATIO = 2.0
TARGET_P99_MS = 50.0
METRICS_OFFSET = 5  # SeaweedFS's metrics port: just above its four HTTP servers (deploy/seaweed.py)
PROC_TICKS = os.sysconf("SC_CLK_TCK")


# --- pure parts: settings, percentiles, tables ------------------------------------------------


def bench_settings(base: Settings, state_dir: Path, storage: str, kafka_port: int, s3_port: int) -> Settings:
    """A copy of ``base`` for one bench broker: its own bootstrap, storage and state dir."""
    return dataclasses.replace(
        base,
        kafka_bootstrap=f"{HOST}:{kafka_port}",
        kafka_storage=storage,
        kafka_s3_port=s3_port,
        state_dir=state_dir,
        topic_prefix="",
    )


def ports_needed(kafka_ports: Iterable[int], s3_port: int) -> list[int]:
    """Every port the bench listens on: the brokers', the store's (deploy/seaweed.py's
    layout) and the store's metrics port."""
    from deploy import seaweed

    store = dataclasses.replace(Settings(), kafka_s3_port=s3_port)
    return sorted({*kafka_ports, *seaweed.ports(store).values(), s3_port + METRICS_OFFSET})


@dataclass(frozen=True, slots=True)
class HopStats:
    """One broker's hops: percentiles over the hops that came back (ms)."""

    broker: str
    n: int
    p50: float
    p90: float
    p99: float
    max: float
    first_ms: float = math.nan  # the first hop after start (connections, the first fetch)
    timeouts: int = 0
    ack_p50: float = math.nan  # the produce's ack alone (acks all): the produce side of the hop
    ack_p99: float = math.nan


def summarize(
    broker: str,
    samples: Sequence[float],
    first_ms: float = math.nan,
    timeouts: int = 0,
    acks: Sequence[float] = (),
) -> HopStats:
    ack_p50, ack_p99 = (percentile(acks, 50), percentile(acks, 99)) if acks else (math.nan, math.nan)
    if not samples:
        return HopStats(
            broker, 0, math.nan, math.nan, math.nan, math.nan, first_ms, timeouts, ack_p50, ack_p99
        )
    return HopStats(
        broker,
        len(samples),
        percentile(samples, 50),
        percentile(samples, 90),
        percentile(samples, 99),
        max(samples),
        first_ms,
        timeouts,
        ack_p50,
        ack_p99,
    )


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def _ratio(num: float, den: float) -> str:
    if math.isnan(num) or math.isnan(den) or den <= 0:
        return "-"
    return f"{num / den:.1f}x"


def hop_table(stats: Sequence[HopStats], baseline: str = MEMORY) -> list[str]:
    """Markdown rows: each broker, then each other broker's ratio to ``baseline``."""
    lines = [
        "| broker | hops | p50 ms | p90 ms | p99 ms | max ms | produce ack p50 | ack p99"
        " | first hop ms | timeouts |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in stats:
        lines.append(
            f"| {s.broker} | {s.n} | {_ms(s.p50)} | {_ms(s.p90)} | {_ms(s.p99)} | {_ms(s.max)}"
            f" | {_ms(s.ack_p50)} | {_ms(s.ack_p99)} | {_ms(s.first_ms)} | {s.timeouts} |"
        )
    base = next((s for s in stats if s.broker == baseline), None)
    if base is not None:
        for s in stats:
            if s is base:
                continue
            lines.append(
                f"| {s.broker} / {base.broker} | | {_ratio(s.p50, base.p50)} | {_ratio(s.p90, base.p90)}"
                f" | {_ratio(s.p99, base.p99)} | {_ratio(s.max, base.max)}"
                f" | {_ratio(s.ack_p50, base.ack_p50)} | {_ratio(s.ack_p99, base.ack_p99)} | | |"
            )
    return lines


def by_part(samples: Sequence[float], parts: int = 4) -> list[float]:
    """p50 of each consecutive ``parts``-th of the hops, in order: a hop that grows with the
    partition's log (Tansu's s3 engine lists every record object on a fetch) drifts up here."""
    if len(samples) < parts:
        return []
    size = len(samples) / parts
    return [percentile(samples[round(i * size) : round((i + 1) * size)], 50) for i in range(parts)]


def drift_table(samples: Mapping[str, Sequence[float]], backlog: int, parts: int = 4) -> list[str]:
    """Markdown rows: each broker's p50 per consecutive part of its hops, with the log size
    (events in the partition) each part started at."""
    n = max((len(v) for v in samples.values()), default=0)
    if n < parts:
        return []
    # Both brokers' hops go to their own partition: hop i finds backlog + i events before it.
    starts = [backlog + round(i * n / parts) for i in range(parts)]
    lines = [
        "| broker | " + " | ".join(f"p50, log from {s}" for s in starts) + " |",
        "|---|" + "---|" * parts,
    ]
    for broker, values in samples.items():
        p50s = by_part(values, parts) or [math.nan] * parts
        lines.append(f"| {broker} | " + " | ".join(_ms(v) for v in p50s) + " |")
    return lines


def verdict(memory: HopStats, s3: HopStats) -> str:
    """Issue 21's target: the s3 hop's p50 <= 2x the memory hop's and its p99 <= 50 ms."""
    if s3.n == 0 or memory.n == 0:
        return "not measured"
    p50_ok = s3.p50 <= TARGET_P50_RATIO * memory.p50
    p99_ok = s3.p99 <= TARGET_P99_MS and s3.timeouts == 0
    parts = [
        f"p50 {s3.p50:.2f} ms = {s3.p50 / memory.p50:.1f}x memory"
        f" ({'met' if p50_ok else 'missed'}, target <= {TARGET_P50_RATIO:g}x)",
        f"p99 {s3.p99:.2f} ms ({'met' if p99_ok else 'missed'}, target <= {TARGET_P99_MS:g} ms"
        + (f"; {s3.timeouts} hops timed out" if s3.timeouts else "")
        + ")",
    ]
    return ("met: " if p50_ok and p99_ok else "missed: ") + "; ".join(parts)


_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)")


def parse_prometheus(text: str) -> dict[str, float]:
    """Prometheus text exposition -> {"name{labels}": value}; comments and bad lines skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        try:
            out[match.group(1)] = float(match.group(2))
        except ValueError:
            continue
    return out


@dataclass(frozen=True, slots=True)
class StoreRequests:
    """One kind of S3 request over the measured hops: how many per hop and its mean
    time inside SeaweedFS (from the request's arrival to its answer)."""

    kind: str
    per_hop: float
    avg_ms: float

    @property
    def ms_per_hop(self) -> float:
        return self.per_hop * self.avg_ms


_S3_REQUEST = re.compile(
    r'^SeaweedFS_s3_request_seconds_count\{(?=[^}]*bucket="([^"]*)")(?=[^}]*type="([^"]*)")'
)


def store_requests(
    before: Mapping[str, float], after: Mapping[str, float], hops: int, bucket: str = "tansu"
) -> list[StoreRequests]:
    """S3 requests per hop on ``bucket`` between two scrapes of SeaweedFS's metrics,
    by type (PUT, GET, LIST...), most time per hop first."""
    if hops <= 0:
        return []
    rows = []
    for key, count in after.items():
        match = _S3_REQUEST.match(key)
        if match is None or match.group(1) != bucket:
            continue
        delta = count - before.get(key, 0.0)
        if delta <= 0:
            continue
        sum_key = key.replace("_seconds_count{", "_seconds_sum{", 1)
        seconds = after.get(sum_key, 0.0) - before.get(sum_key, 0.0)
        rows.append(StoreRequests(match.group(2), delta / hops, 1000 * seconds / delta))
    return sorted(rows, key=lambda r: -r.ms_per_hop)


def requests_table(rows: Sequence[StoreRequests]) -> list[str]:
    lines = ["| S3 request | per hop | ms each (in SeaweedFS) | ms per hop |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.kind} | {r.per_hop:.2f} | {r.avg_ms:.2f} | {r.ms_per_hop:.2f} |")
    if rows:
        total = sum(r.ms_per_hop for r in rows)
        lines.append(f"| all | {sum(r.per_hop for r in rows):.2f} | | {total:.2f} |")
    return lines


@dataclass(frozen=True, slots=True)
class IdleCost:
    process: str
    cpu_percent: float  # of one core
    rss_mib: float


def cpu_percent(before_s: float, after_s: float, seconds: float) -> float:
    """CPU time used between two readings, as % of one core."""
    if seconds <= 0:
        return math.nan
    return max(0.0, after_s - before_s) / seconds * 100


def idle_table(rows: Sequence[IdleCost]) -> list[str]:
    lines = ["| process | CPU, % of a core | RSS MiB |", "|---|---|---|"]
    lines += [f"| {r.process} | {r.cpu_percent:.1f} | {r.rss_mib:.0f} |" for r in rows]
    return lines


def parse_kv(items: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` arguments -> a dict (``--store-env GOGC=200``)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        out[key] = value
    return out


# --- processes -----------------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system time of ``pid`` (and its waited-for children), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return sum(int(v) for v in fields[11:15]) / PROC_TICKS


def proc_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class Broker:
    """One bench broker: its settings, its processes (Tansu last) and its clients."""

    name: str
    settings: Settings
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    store_extra: tuple[str, ...] = ()
    store_env: Mapping[str, str] = field(default_factory=dict)
    producer: Any = None
    consumer: Any = None


def _spawn(
    settings: Settings,
    part: str,
    argv: list[str],
    env: Mapping[str, str] | None,
    check: Callable[[], str | None],
    timeout: float,
) -> subprocess.Popen[bytes]:
    from deploy.common import spawn, wait_healthy

    proc = spawn(settings, part, argv, env=env)
    try:
        wait_healthy(settings, part, check, timeout=timeout, proc=proc)
    except BaseException:
        _stop(proc)
        raise
    return proc


def start_store(broker: Broker) -> None:
    """SeaweedFS as ``gleaner up`` starts it, plus the bench's metrics port and any extra flags."""
    from deploy import seaweed, services

    svc = services.service(broker.settings, seaweed.PART)
    metrics = broker.settings.kafka_s3_port + METRICS_OFFSET
    argv = [*svc.argv(), f"-metricsPort={metrics}", *broker.store_extra]
    env = {**(svc.env() if svc.env else os.environ), **broker.store_env}
    broker.procs[seaweed.PART] = _spawn(broker.settings, seaweed.PART, argv, env, svc.check, svc.timeout)


def start_tansu(broker: Broker) -> None:
    from deploy import services

    svc = services.service(broker.settings, "kafka")
    env = svc.env() if svc.env else None
    broker.procs["tansu"] = _spawn(broker.settings, "kafka", svc.argv(), env, svc.check, svc.timeout)


def start(broker: Broker) -> None:
    if broker.settings.kafka_storage == S3:
        start_store(broker)
    start_tansu(broker)


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop a process this bench started: its own process group (spawn starts a session)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def stop(broker: Broker, sig: int = signal.SIGTERM) -> None:
    close_clients(broker)
    for name in reversed(list(broker.procs)):  # Tansu before its store
        _stop(broker.procs.pop(name), sig)


def _store_sockets(s3_port: int) -> list[Path]:
    """The unix sockets SeaweedFS leaves in /tmp after a kill, for this bench's ports only."""
    from deploy import seaweed

    store = dataclasses.replace(Settings(), kafka_s3_port=s3_port)
    ports = set(seaweed.ports(store).values())
    return [
        p
        for p in Path("/tmp").glob("seaweedfs-*.sock")
        if any(p.name.endswith(f"-{port}.sock") for port in ports)
    ]


# --- clients and the hop -------------------------------------------------------------------


def open_clients(broker: Broker, topic: str, fetch_wait_ms: int, start_offset: int) -> None:
    import confluent_kafka

    from streams.kafka.client import consumer_config, producer_config

    group = f"bench-broker-{uuid.uuid4().hex[:8]}"
    broker.producer = confluent_kafka.Producer({**producer_config(broker.settings.kafka), "log_level": 0})
    broker.consumer = confluent_kafka.Consumer(
        {**consumer_config(broker.settings.kafka, group, hot=True, wait_ms=fetch_wait_ms), "log_level": 0}
    )
    broker.consumer.assign([confluent_kafka.TopicPartition(topic, 0, start_offset)])


def close_clients(broker: Broker) -> None:
    if broker.consumer is not None:
        broker.consumer.close()
        broker.consumer = None
    if broker.producer is not None:
        broker.producer.flush(5)
        broker.producer = None


def produce_acked(producer: confluent_kafka.Producer, topic: str, values: Iterable[bytes]) -> list[int]:
    """Produce one at a time, each flushed (acked) before the next; the offsets acked."""
    offsets: list[int] = []

    def done(err: object, msg: confluent_kafka.Message) -> None:
        offset = msg.offset()
        if err is None and offset is not None:
            offsets.append(offset)

    for value in values:
        producer.produce(topic, value, on_delivery=done)
        producer.flush(10)
    return offsets


def hop(broker: Broker, topic: str, timeout_s: float) -> tuple[float, float] | None:
    """Produce one event, wait for its ack, then until the consumer reads it: (hop ms,
    ack ms), or None on timeout. librdkafka fetches in its own thread all along, so
    waiting for the ack first does not delay the read."""
    marker = uuid.uuid4().bytes
    start_t = time.perf_counter()
    broker.producer.produce(topic, marker)
    broker.producer.flush(timeout_s)
    ack_ms = (time.perf_counter() - start_t) * 1000
    deadline = start_t + timeout_s
    while time.perf_counter() < deadline:
        msg = broker.consumer.poll(0.2)
        if msg is not None and not msg.error() and msg.value() == marker:
            return (time.perf_counter() - start_t) * 1000, ack_ms
    return None


def scrape(broker: Broker) -> dict[str, float]:
    import httpx

    url = f"http://{HOST}:{broker.settings.kafka_s3_port + METRICS_OFFSET}/metrics"
    try:
        return parse_prometheus(httpx.get(url, timeout=3.0).text)
    except httpx.HTTPError:
        return {}


# --- the parts of a run --------------------------------------------------------------------


def prepare(brokers: Sequence[Broker], topic: str, backlog: int, fetch_wait_ms: int) -> None:
    """The topic on each broker, ``backlog`` events already in it, then the clients
    at its end. Offsets come from the acks: Tansu's s3 engine answers "latest" from
    object times of 1 s resolution, so it can point up to a second back."""
    from tqdm import tqdm

    from streams.kafka.client import ensure_topics

    for b in brokers:
        ensure_topics(b.settings.kafka, [topic], 1)
        start_offset = 0
        if backlog:
            import confluent_kafka

            from streams.kafka.client import producer_config

            filler = confluent_kafka.Producer({**producer_config(b.settings.kafka), "log_level": 0})
            acked = produce_acked(
                filler,
                topic,
                tqdm((b"backlog" for _ in range(backlog)), total=backlog, desc=f"backlog {b.name}"),
            )
            if len(acked) != backlog:
                raise RuntimeError(f"{b.name}: {backlog - len(acked)} backlog events not acked")
            start_offset = max(acked) + 1
        open_clients(b, topic, fetch_wait_ms, start_offset)


def first_hops(brokers: Sequence[Broker], topic: str, timeout_s: float) -> dict[str, float]:
    """The first hop on each broker after start: connections, metadata, the first fetch."""
    out = {}
    for b in brokers:
        got = hop(b, topic, max(timeout_s, 30.0))
        out[b.name] = math.nan if got is None else got[0]
    return out


def measure(
    brokers: Sequence[Broker], topic: str, n: int, gap_s: float, timeout_s: float, first: Mapping[str, float]
) -> tuple[list[HopStats], dict[str, list[float]]]:
    """``n`` hops per broker, alternating brokers and which goes first: the stats and the
    samples in order."""
    from tqdm import tqdm

    samples: dict[str, list[float]] = {b.name: [] for b in brokers}
    acks: dict[str, list[float]] = {b.name: [] for b in brokers}
    timeouts = dict.fromkeys(samples, 0)
    for i in tqdm(range(n), desc="hops", unit="round"):
        for b in brokers if i % 2 == 0 else list(reversed(brokers)):
            time.sleep(gap_s)  # one event at a time, as a warm request
            got = hop(b, topic, timeout_s)
            if got is None:
                timeouts[b.name] += 1
            else:
                samples[b.name].append(got[0])
                acks[b.name].append(got[1])
    stats = [
        summarize(b.name, samples[b.name], first.get(b.name, math.nan), timeouts[b.name], acks[b.name])
        for b in brokers
    ]
    return stats, samples


def idle_costs(brokers: Sequence[Broker], seconds: float) -> list[IdleCost]:
    """CPU and peak RSS of every process over ``seconds`` with no client connected."""
    from tqdm import tqdm

    procs = {
        f"{b.name}: {'tansu' if part == 'tansu' else 'seaweedfs'}": p.pid
        for b in brokers
        for part, p in b.procs.items()
    }
    before = {k: proc_cpu_seconds(pid) for k, pid in procs.items()}
    rss: dict[str, float] = dict.fromkeys(procs, 0.0)
    start_t = time.monotonic()
    for _ in tqdm(range(max(1, round(seconds))), desc="idle window", unit="s"):
        time.sleep(1)
        for k, pid in procs.items():
            rss[k] = max(rss[k], proc_rss_mib(pid) or 0.0)
    window = time.monotonic() - start_t
    rows = []
    for k, pid in procs.items():
        after, was = proc_cpu_seconds(pid), before[k]
        cpu = cpu_percent(was, after, window) if after is not None and was is not None else math.nan
        rows.append(IdleCost(k, cpu, rss[k]))
    by_broker: dict[str, list[IdleCost]] = {}
    for r in rows:
        by_broker.setdefault(r.process.split(":")[0], []).append(r)
    for name, parts in by_broker.items():
        if len(parts) > 1:
            rows.append(
                IdleCost(f"{name}: total", sum(r.cpu_percent for r in parts), sum(r.rss_mib for r in parts))
            )
    return rows


def kill_check(broker: Broker, n: int, read_wait_ms: int, timeout_s: float) -> tuple[int, int, int]:
    """``n`` events acked, ``kill -9`` of Tansu and its store, both started again on the
    same state dir: (acked, read back, distinct read back)."""
    import confluent_kafka

    from streams.kafka.client import consumer_config, ensure_topics, producer_config

    topic = f"bench.broker.kill.{uuid.uuid4().hex[:8]}"
    ensure_topics(broker.settings.kafka, [topic], 1)
    producer = confluent_kafka.Producer({**producer_config(broker.settings.kafka), "log_level": 0})
    values = [f"kill-check-{i}".encode() for i in range(n)]
    acked = produce_acked(producer, topic, values)
    del producer
    close_clients(broker)
    for name in reversed(list(broker.procs)):
        proc = broker.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    for sock in _store_sockets(broker.settings.kafka_s3_port):
        sock.unlink(missing_ok=True)
    start(broker)
    group = f"bench-broker-kill-{uuid.uuid4().hex[:8]}"
    consumer = confluent_kafka.Consumer(
        {**consumer_config(broker.settings.kafka, group, hot=False, wait_ms=read_wait_ms), "log_level": 0}
    )
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
    read: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    wanted = set(values)
    while time.monotonic() < deadline and not wanted <= set(read):  # duplicates are counted too
        msg = consumer.poll(0.5)
        value = msg.value() if msg is not None and not msg.error() else None
        if value is not None:
            read.append(value)
    consumer.close()
    return len(acked), len(read), len(wanted & set(read))


# --- the run -------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--hops", type=int, default=300, help="hops per broker")
    p.add_argument("--gap", type=float, default=0.01, help="seconds between hops")
    p.add_argument(
        "--timeout", type=float, default=10.0, help="a hop not back after this many s is a timeout"
    )
    p.add_argument(
        "--fetch-wait-ms", type=int, help="consumer fetch.wait.max.ms (default: the hot path's setting)"
    )
    p.add_argument("--backlog", type=int, default=0, help="events already in the partition before the hops")
    p.add_argument("--idle-seconds", type=float, default=10.0, help="idle window for CPU and RSS (0: skip)")
    p.add_argument(
        "--kill-check", type=int, default=0, metavar="N", help="N acked, kill -9, restart, read back"
    )
    p.add_argument("--kafka-ports", default="29092,29093", help="memory broker's port,s3 broker's port")
    p.add_argument(
        "--s3-port", type=int, default=28333, help="the store's S3 port (+1..+5, +10000..+10004 too)"
    )
    p.add_argument(
        "--state-root", default=tempfile.gettempdir(), help="where the state dirs go (/dev/shm: tmpfs)"
    )
    p.add_argument(
        "--store-flag",
        action="append",
        default=[],
        help="extra weed mini flag, written --store-flag=-s3.cacheCapacityMB=16",
    )
    p.add_argument(
        "--store-env", action="append", default=[], help="extra KEY=VALUE for SeaweedFS, e.g. GOGC=200"
    )
    p.add_argument("--keep-state", action="store_true", help="keep the state dirs (logs) after the run")
    p.add_argument("--label", default="", help="names the docs section (broker-<label>), for variants")
    p.add_argument("--out", default="docs/benchmarks.md")


def main(args: argparse.Namespace) -> int:
    from deploy.common import port_open

    base = load_settings()
    wait_ms = args.fetch_wait_ms if args.fetch_wait_ms is not None else base.kafka_fetch_wait_max_ms
    mem_port, s3_kafka_port = (int(p) for p in args.kafka_ports.split(","))
    busy = [p for p in ports_needed((mem_port, s3_kafka_port), args.s3_port) if port_open(HOST, p)]
    if busy:
        print(f"ports in use: {busy}; pick others (--kafka-ports, --s3-port)")
        return 1
    root = Path(tempfile.mkdtemp(prefix="gleaner-bench-broker-", dir=args.state_root))
    brokers = [
        Broker(MEMORY, bench_settings(base, root / MEMORY, MEMORY, mem_port, args.s3_port)),
        Broker(
            S3,
            bench_settings(base, root / S3, S3, s3_kafka_port, args.s3_port),
            store_extra=tuple(args.store_flag),
            store_env=parse_kv(args.store_env),
        ),
    ]
    load_before = os.getloadavg()
    topic = f"bench.broker.{uuid.uuid4().hex[:8]}"
    try:
        started = {}
        for b in brokers:
            t0 = time.monotonic()
            start(b)
            started[b.name] = time.monotonic() - t0
        prepare(brokers, topic, args.backlog, wait_ms)
        s3 = brokers[1]
        first = first_hops(brokers, topic, args.timeout)
        scrape_before = scrape(s3)
        stats, samples = measure(brokers, topic, args.hops, args.gap, args.timeout, first)
        scrape_after = scrape(s3)
        requests = store_requests(scrape_before, scrape_after, stats[1].n + stats[1].timeouts)
        load_after = os.getloadavg()
        for b in brokers:
            close_clients(b)
        idle = idle_costs(brokers, args.idle_seconds) if args.idle_seconds > 0 else []
        kept = kill_check(s3, args.kill_check, max(wait_ms, 500), 120.0) if args.kill_check else None
    finally:
        for b in brokers:
            stop(b)
        for sock in _store_sockets(args.s3_port):
            sock.unlink(missing_ok=True)
        if not args.keep_state:
            shutil.rmtree(root, ignore_errors=True)
    text = report(
        args, stats, samples, requests, idle, kept, wait_ms, started, (load_before, load_after), root
    )
    print(text)
    write_section(Path(args.out), f"broker-{args.label}" if args.label else "broker", text)
    return 0


def report(
    args: argparse.Namespace,
    stats: Sequence[HopStats],
    samples: Mapping[str, Sequence[float]],
    requests: Sequence[StoreRequests],
    idle: Sequence[IdleCost],
    kept: tuple[int, int, int] | None,
    wait_ms: int,
    started: Mapping[str, float],
    loads: tuple[tuple[float, float, float], tuple[float, float, float]],
    root: Path,
) -> str:
    load_before, load_after = loads
    memory, s3 = stats[0], stats[1]
    setup = [f"fetch.wait.max.ms={wait_ms}", f"backlog {args.backlog} events"]
    if args.store_flag:
        setup.append("store flags " + " ".join(f"`{f}`" for f in args.store_flag))
    if args.store_env:
        setup.append("store env " + " ".join(f"`{e}`" for e in args.store_env))
    setup.append(f"state under {Path(args.state_root)}")
    title = "## Broker hop: memory vs s3 (issue 21 item 1)" + (f", {args.label}" if args.label else "")
    lines = [
        title,
        "",
        "One produce -> consume hop, one event at a time, with the hot path's client settings"
        " (linger 0, acks all), on a memory Tansu and an `s3://` Tansu on SeaweedFS started side by"
        " side by the bench (own ports), the brokers alternating. " + "; ".join(setup) + ".",
        "",
        *hop_table(stats),
        "",
        f"Target (s3 p50 <= {TARGET_P50_RATIO:g}x memory, p99 <= {TARGET_P99_MS:g} ms):"
        f" {verdict(memory, s3)}.",
        "",
        f"Load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after the hops, on"
        f" {os.cpu_count()} cores: a busy machine inflates both brokers; read the ratios beside"
        " the absolutes.",
        "Start: " + ", ".join(f"{k} {v:.1f} s" for k, v in started.items()) + ".",
    ]
    drift = drift_table(samples, args.backlog + 1)  # the first hop left one event too
    if drift:
        lines += [
            "",
            "The hop as the partition's log grows (p50 ms of each quarter of the hops, in order):",
            "",
        ]
        lines += drift
    if requests:
        lines += [
            "",
            "S3 requests one s3 hop costs (SeaweedFS's counters over the hops; time inside SeaweedFS):",
            "",
            *requests_table(requests),
        ]
    if idle:
        lines += ["", f"Idle, no client connected, over {args.idle_seconds:.0f} s:", "", *idle_table(idle)]
    if kept is not None:
        acked, read, distinct = kept
        lines += [
            "",
            f"Kill check: {acked}/{args.kill_check} acked on the s3 broker, `kill -9` of Tansu and"
            f" SeaweedFS, both started again: {distinct}/{acked} read back ({read} reads).",
        ]
    if args.keep_state:
        lines += ["", f"State and logs kept in {root}."]
    return "\n".join(lines)
