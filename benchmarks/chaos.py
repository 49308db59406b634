"""Faults on the real stack: a replay of DAG requests while one part is
killed or frozen, and what came out of it.

Each request runs ``head -> parallel(left, right) -> tail`` on input ``n``;
the correct output is ``5 * (n + 1)``. Every function, at the end of a run
that finished, tells a TCP counter on this host its activation id: the
counter sees container runs, not records, so a function that ran twice is
seen even when its records dedupe. A run cut short by a kill is not counted
(it never finished; running it again is the recovery, not a duplicate).

Used by ``tests/integration/test_faults.py`` (30 requests per fault) and by
``gleaner bench chaos`` (100 per fault, figures to docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import os
import signal
import socketserver
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import confluent_kafka
import httpx
import orjson

from deploy import procs, services
from deploy.common import read_pid
from gleaner.couchdb import ACTIVATIONS, CouchDB
from gleaner.errors import GleanerError
from gleaner.settings import Settings
from invoker_agent.docker_engine import DockerEngine, network_name
from invoker_agent.host_firewall import HostFirewall
from streams.kafka.client import EventConsumer
from streams.kafka.signing import Signer

REPORT = """
def _report(args):
    import os, socket
    addr = args.get("report") or (args.get("value") or [{}])[0].get("report")
    if addr:
        host, port = addr.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(os.environ.get("__OW_ACTIVATION_ID", "?").encode() + b"\\n")
"""

FUNCTIONS = {
    "head": "def main(args):\n    import time\n    time.sleep(args.get('nap', 0.2))\n"
    "    _report(args)\n    return {'n': args['n'] + 1, 'report': args.get('report')}\n",
    "left": "def main(args):\n    import time\n    time.sleep(0.3)\n"
    "    _report(args)\n    return {'n': args['n'] * 2, 'report': args.get('report')}\n",
    "right": "def main(args):\n    import time\n    time.sleep(0.4)\n"
    "    _report(args)\n    return {'n': args['n'] * 3, 'report': args.get('report')}\n",
    "tail": "def main(args):\n    _report(args)\n    return {'n': sum(v['n'] for v in args['value'])}\n",
}
LIMITS = {"cpu": 0.25, "memory": 128, "timeout": 30000}


def expected(n: int) -> int:
    return 5 * (n + 1)


# -- counting container runs ---------------------------------------------------------


class RunCounter:
    """A TCP listener that counts activation ids sent by finished function runs."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self._lock = threading.Lock()
        counter = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline().strip().decode(errors="replace")
                if line:
                    with counter._lock:
                        counter.runs[line] += 1

        self._server = socketserver.ThreadingTCPServer(("0.0.0.0", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._firewall: HostFirewall | None = None
        threading.Thread(target=self._server.serve_forever, name="run-counter", daemon=True).start()

    def address(self, settings: Settings) -> str:
        """How a function container reaches this host: its network's gateway, through a
        hole in the host firewall for this port alone (closed again by :meth:`close`)."""
        engine = DockerEngine(settings)
        try:
            engine.ensure_network()  # the actions network and its firewall exist before any function
            config = engine.api.inspect_network(network_name(settings))["IPAM"]["Config"][0]
        finally:
            engine.close()
        # Docker leaves out "Gateway" when it picked the default: the subnet's first host.
        gateway = config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))
        if settings.action_hardening and settings.action_host_firewall:
            self._firewall = HostFirewall()
            self._firewall.allow_port(self.port)
        return f"{gateway}:{self.port}"

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.runs)

    def close(self) -> None:
        if self._firewall is not None:
            self._firewall.revoke_port(self.port)
        self._server.shutdown()
        self._server.server_close()


# -- faults --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    what: str
    inject: Callable[[Settings], None]  # returns when the fault is over (the kill done, the freeze lifted)
    setup: Callable[[Settings], None] | None = None  # before the replay
    teardown: Callable[[Settings], None] | None = None  # after it, whatever happened
    # Requests through the gateway (kept in its outbox), not produced straight to Kafka: a
    # raw producer's events die with a memory broker, by design (README, Reliability).
    via_rest: bool = False


def _pid(settings: Settings, part: str) -> int:
    if part in procs.component_names(settings):
        pid = read_pid(settings, part, procs.marker(part))
    else:
        pid = read_pid(settings, part, services.service(settings, part).marker)
    if pid is None:
        raise RuntimeError(f"{part} is not running")
    return pid


def kill(part: str) -> Fault:
    def inject(settings: Settings) -> None:
        os.kill(_pid(settings, part), signal.SIGKILL)

    via_rest = part in ("gateway", "kafka")
    return Fault(f"kill {part}", f"kill -9 {part}; the supervisor restarts it", inject, via_rest=via_rest)


def kill_together(*parts: str) -> Fault:
    """Several parts at once (placement and an invoker: nobody left who knows what is owed)."""

    def inject(settings: Settings) -> None:
        pids = [_pid(settings, part) for part in parts]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

    names = " + ".join(parts)
    return Fault(f"kill {names}", f"kill -9 {names} at once; the supervisor restarts them", inject)


def freeze(part: str, seconds: float) -> Fault:
    def inject(settings: Settings) -> None:
        pid = _pid(settings, part)
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)

    return Fault(
        f"{part} stopped {seconds:.0f} s", f"SIGSTOP {part} for {seconds:.0f} s, then SIGCONT", inject
    )


def second_invoker_killed_for_good() -> Fault:
    """A second invoker the supervisor does not know of: killed, it stays dead, and
    placement moves what it owed to invoker0 once it has been silent long enough."""

    def two(settings: Settings) -> Settings:
        return dataclasses.replace(settings, invokers=2)

    def setup(settings: Settings) -> None:
        procs.spawn_component(two(settings), "invoker1")
        deadline = time.monotonic() + 60
        while "invoker1" not in (procs.gateway_check(settings) or ""):
            if time.monotonic() > deadline:
                raise RuntimeError("invoker1 did not come up")
            time.sleep(0.5)

    def teardown(settings: Settings) -> None:
        pid = read_pid(settings, "invoker1", procs.marker("invoker1"))
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        from deploy import stack

        stack.remove_managed_containers(procs.part_settings(two(settings), "invoker1"))

    return Fault(
        "invoker1 killed for good",
        "kill -9 a second invoker; nothing restarts it",
        lambda settings: os.kill(_pid(settings, "invoker1"), signal.SIGKILL),
        setup,
        teardown,
    )


def standard_faults(settings: Settings | None = None) -> list[Fault]:
    kills = [kill(p) for p in ("invoker", "composition", "placement", "predictor", "gateway", "records")]
    stores = [freeze("redis", 20), freeze("couchdb", 30)]
    broker = [kill("kafka"), freeze("kafka", 20), kill_together("placement", "invoker")]
    if settings is not None and settings.kafka_storage == "s3":
        broker += [kill(services.S3STORE), freeze(services.S3STORE, 20)]
    return [*kills, *stores, *broker, second_invoker_killed_for_good()]


# -- one run -------------------------------------------------------------------------


@dataclass
class ChaosResult:
    fault: str
    requests: int
    completed: int = 0
    correct: int = 0
    lost: int = 0
    duplicates: int = 0  # activations whose function finished more than once
    missing_records: int = 0  # child activations of a finished request without a record
    uncounted: int = 0  # child activations whose finished run the counter never heard of
    submit_retries: int = 0
    stall_s: float = 0.0  # longest gap between two completions
    recovery_s: float | None = None  # from the fault's end to the next completion
    took_s: float = 0.0
    wrong: list[str] = field(default_factory=list)
    worst_latency_s: float = 0.0  # the slowest request, produce to result
    median_latency_s: float = 0.0
    timeline: list[float] = field(default_factory=list)  # completion times since the first request
    fault_window: list[float] = field(default_factory=list)  # when the fault ended

    @property
    def completion_pct(self) -> float:
        return 100.0 * self.completed / self.requests if self.requests else 0.0

    @property
    def ok(self) -> bool:
        return (
            self.correct == self.requests
            and self.duplicates == 0
            and self.missing_records == 0
            and self.uncounted == 0
        )


def deploy(settings: Settings, namespace: str, auth: str, dag: str = "chaos") -> None:
    """Put the four actions and the DAG (idempotent)."""
    base = settings.api_host.rstrip("/") + f"/api/v1/namespaces/{namespace}"
    user, _, key = auth.partition(":")
    with httpx.Client(auth=(user, key), timeout=30) as http:
        for name, code in FUNCTIONS.items():
            body = {"exec": {"kind": "python:3", "code": REPORT + code}, "limits": LIMITS}
            http.put(
                f"{base}/actions/{dag}-{name}", json=body, params={"overwrite": "true"}
            ).raise_for_status()
        composition = {
            "type": "sequence",
            "components": [
                {"type": "action", "name": f"{dag}-head"},
                {
                    "type": "parallel",
                    "components": [
                        {"type": "action", "name": f"{dag}-left"},
                        {"type": "action", "name": f"{dag}-right"},
                    ],
                },
                {"type": "action", "name": f"{dag}-tail"},
            ],
        }
        http.put(
            f"{settings.api_host.rstrip('/')}/api/v1/namespaces/{namespace}/dags/{dag}",
            json={"composition": composition},
            params={"overwrite": "true"},
        ).raise_for_status()


class _Results:
    """Every ``dag.results`` event for our request ids, from now on. The platform's own
    group-less reader, so that it too reads a partition again after a broker lost its log."""

    def __init__(self, settings: Settings) -> None:
        self.seen: dict[str, tuple[float, dict[str, Any]]] = {}
        self._stop = threading.Event()
        group, topics = f"chaos-{uuid.uuid4().hex}", [settings.dag_results_topic]
        self._consumer = EventConsumer(settings.kafka, group, topics, assign_latest=True, wait_ms=20)
        self.wanted: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="chaos-results", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rec = self._consumer.poll(0.1)
            except GleanerError:
                time.sleep(0.5)  # the broker itself may be the fault
                continue
            if rec is None:
                continue
            try:
                event = orjson.loads(rec.value or b"")
            except orjson.JSONDecodeError:
                continue
            rid = event.get("request_id")
            if rid in self.wanted and rid not in self.seen:
                self.seen[rid] = (time.monotonic(), event)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._consumer.close()


def _submit_kafka(
    producer: confluent_kafka.Producer,
    settings: Settings,
    namespace: str,
    dag: str,
    request_id: str,
    value: dict[str, Any],
) -> int:
    event = {
        "type": "dag.request",
        "version": 1,
        "request_id": request_id,
        "namespace": namespace,
        "dag": dag,
        "input": value,
    }
    raw = orjson.dumps(event)
    # Signed as the gateway signs (this tool runs as the operator, next to the state directory).
    headers = Signer.for_settings(settings.kafka).headers(settings.dag_requests_topic, request_id, raw)
    producer.produce(settings.dag_requests_topic, raw, key=request_id, headers=headers)
    producer.poll(0)
    return 0


def _submit_rest(http: httpx.Client, url: str, value: dict[str, Any], deadline: float) -> tuple[str, int]:
    """POST until the gateway takes it (a refused connection is retried: nothing was sent)."""
    retries = 0
    while True:
        try:
            resp = http.post(url, json=value)
            if resp.status_code == 202:
                return str(resp.json()["activationId"]), retries
            if resp.status_code < 500:
                raise RuntimeError(f"gateway refused the request: {resp.status_code} {resp.text[:200]}")
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
            pass
        retries += 1
        if time.monotonic() > deadline:
            raise RuntimeError("gateway did not come back")
        time.sleep(0.2)


def run_fault(
    settings: Settings,
    fault: Fault | None,
    *,
    namespace: str,
    auth: str,
    dag: str = "chaos",
    requests: int = 30,
    rate_per_s: float = 3.0,
    fault_at: float = 0.35,  # the fault starts when this share of the requests is in
    settle_s: float = 120.0,
    counter: RunCounter | None = None,
    progress: Callable[[int, int], None] | None = None,
    warmup: int = 6,
) -> ChaosResult:
    """Replay ``requests`` DAG requests at ``rate_per_s``, inject ``fault`` part-way
    through, wait for every result, then check outputs, records and runs."""
    if fault is not None and fault.setup is not None:
        fault.setup(settings)
    try:
        return _run_fault(
            settings,
            fault,
            namespace,
            auth,
            dag,
            requests,
            rate_per_s,
            fault_at,
            settle_s,
            counter,
            progress,
            warmup,
        )
    finally:
        if fault is not None and fault.teardown is not None:
            fault.teardown(settings)


def _run_fault(
    settings: Settings,
    fault: Fault | None,
    namespace: str,
    auth: str,
    dag: str,
    requests: int,
    rate_per_s: float,
    fault_at: float,
    settle_s: float,
    counter: RunCounter | None,
    progress: Callable[[int, int], None] | None,
    warmup: int,
) -> ChaosResult:
    own_counter = counter is None
    counter = counter or RunCounter()
    report = counter.address(settings)
    if warmup:
        _warm(settings, namespace, dag, report, warmup)
    via_rest = fault is not None and fault.via_rest
    result = ChaosResult(fault.name if fault else "none", requests)
    results = _Results(settings)
    producer = confluent_kafka.Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 0})
    user, _, key = auth.partition(":")
    http = httpx.Client(auth=(user, key), timeout=10)
    url = f"{settings.api_host.rstrip('/')}/api/v1/namespaces/{namespace}/dags/{dag}"
    inputs: dict[str, int] = {}
    sent_at: dict[str, float] = {}
    fault_thread: threading.Thread | None = None
    fault_end: list[float] = []
    began = time.monotonic()
    try:
        for i in range(requests):
            target = began + i / rate_per_s
            time.sleep(max(0.0, target - time.monotonic()))
            if fault is not None and fault_thread is None and i >= int(requests * fault_at):

                def _inject(f: Fault = fault) -> None:
                    f.inject(settings)
                    fault_end.append(time.monotonic())

                fault_thread = threading.Thread(target=_inject, name="fault", daemon=True)
                fault_thread.start()
            value = {"n": i, "report": report}
            if via_rest:
                rid, retries = _submit_rest(http, url, value, time.monotonic() + 60)
                result.submit_retries += retries
            else:
                rid = uuid.uuid4().hex
                _submit_kafka(producer, settings, namespace, dag, rid, value)
            inputs[rid] = i
            sent_at[rid] = time.monotonic()
            results.wanted.add(rid)
            if progress is not None:
                progress(len(results.seen), requests)
        producer.flush(30)
        if fault_thread is not None:
            fault_thread.join()
        deadline = time.monotonic() + settle_s
        while len(results.seen) < requests and time.monotonic() < deadline:
            if progress is not None:
                progress(len(results.seen), requests)
            time.sleep(0.2)
    finally:
        results.close()
        http.close()
    result.took_s = time.monotonic() - began
    latencies = [t - sent_at[rid] for rid, (t, _) in results.seen.items()]
    result.worst_latency_s = max(latencies, default=0.0)
    result.median_latency_s = median(latencies)
    times = sorted(t for t, _ in results.seen.values())
    result.timeline = [round(t - began, 2) for t in times]
    result.fault_window = [round(t - began, 2) for t in fault_end]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    result.stall_s = max(gaps, default=0.0)
    if fault_end:
        after = [t for t in times if t >= fault_end[0]]
        result.recovery_s = (after[0] - fault_end[0]) if after else None
    _check(settings, namespace, inputs, results.seen, counter, result)
    if own_counter:
        counter.close()
    return result


def _warm(settings: Settings, namespace: str, dag: str, report: str, count: int) -> None:
    """A few unmeasured requests at once, so the measured ones find warm containers."""
    results = _Results(settings)
    producer = confluent_kafka.Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 0})
    try:
        for i in range(count):
            rid = uuid.uuid4().hex
            results.wanted.add(rid)
            _submit_kafka(producer, settings, namespace, dag, rid, {"n": -1 - i, "report": report})
        producer.flush(30)
        deadline = time.monotonic() + 120
        while len(results.seen) < count and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        results.close()


def _check(
    settings: Settings,
    namespace: str,
    inputs: dict[str, int],
    seen: dict[str, tuple[float, dict[str, Any]]],
    counter: RunCounter,
    result: ChaosResult,
) -> None:
    result.completed = len(seen)
    result.lost = len(inputs) - len(seen)
    couch = CouchDB(settings.stores)
    children: list[str] = []
    try:
        for rid, (_, event) in seen.items():
            got = (event.get("result") or {}).get("n")
            if event.get("success") and got == expected(inputs[rid]):
                result.correct += 1
            else:
                result.wrong.append(f"{rid}: {event.get('result')}")
            record = _wait_doc(couch, f"{namespace}/{rid}")
            if record is None:
                result.missing_records += 1
                continue
            children.extend(str(a) for a in record.get("logs", []))
        for aid in children:
            if _wait_doc(couch, f"{namespace}/{aid}") is None:
                result.missing_records += 1
    finally:
        couch.close()
    time.sleep(1.0)  # the last reports are on their way
    runs = counter.snapshot()
    result.duplicates = sum(1 for aid in children if runs.get(aid, 0) > 1)
    result.uncounted = sum(1 for aid in children if runs.get(aid, 0) == 0)


def _wait_doc(couch: CouchDB, doc_id: str, timeout_s: float = 30.0) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            doc = couch.get_doc(ACTIVATIONS, doc_id)
        except Exception:
            doc = None
        if doc is not None or time.monotonic() > deadline:
            return doc
        time.sleep(0.25)


def summary(results: list[ChaosResult]) -> str:
    rows = [
        "| fault | requests | completed | correct | lost | ran twice | missing records | longest stall (s) "
        "| fault end to next result (s) | latency p50 / max (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rec = f"{r.recovery_s:.1f}" if r.recovery_s is not None else "-"
        rows.append(
            f"| {r.fault} | {r.requests} | {r.completion_pct:.0f} % | {r.correct} | {r.lost} "
            f"| {r.duplicates} | {r.missing_records} | {r.stall_s:.1f} | {rec} "
            f"| {r.median_latency_s:.1f} / {r.worst_latency_s:.1f} |"
        )
    return "\n".join(rows)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


# -- gleaner bench chaos ----------------------------------------------------------------

BENCH_NAMESPACE = "gleaner-bench"


def render(results: list[ChaosResult], requests: int, rate: float) -> str:
    faulted = [r for r in results if r.fault != "none"]
    worst = max((r.recovery_s or 0.0 for r in faulted), default=0.0)
    lines = [
        "## Faults during a DAG replay (chaos)",
        "",
        f"Each row: {requests} requests of `head -> parallel(left, right) -> tail` produced at {rate:g}/s; "
        "the fault starts once 35 % of them are in. Kills are `kill -9`, restarted by the supervisor "
        "(no manual `gleaner up`); stores are frozen with SIGSTOP, then SIGCONT. *Ran twice*: "
        "activations whose function finished more than once, as counted by the functions "
        "themselves over TCP (container runs, not records). *Longest stall*: the longest gap between "
        "two results. *Fault end to next result*: from the kill (or the thaw) to the next result.",
        "",
        summary(results),
        "",
        f"Targets: 100 % completed, 0 lost, 0 ran twice, recovery under 15 s. Worst fault-end-to-next-result "
        f"here: {worst:.1f} s.",
    ]
    return "\n".join(lines)


def main(args: Any) -> int:
    import secrets
    from pathlib import Path

    from tqdm import tqdm

    from benchmarks.report import write_section
    from gleaner.settings import load_settings
    from gleaner.subjects import ensure_subject

    settings = load_settings()
    auth = f"{uuid.uuid4()}:{secrets.token_hex(32)}"
    db = CouchDB(settings.stores)
    try:
        ensure_subject(db, BENCH_NAMESPACE, auth)
    finally:
        db.close()
    deploy(settings, BENCH_NAMESPACE, auth)
    wanted = [f.strip() for f in args.faults.split(",")] if args.faults else None
    faults: list[Fault | None] = [None, *standard_faults(settings)]
    if wanted is not None:
        faults = [f for f in faults if (f.name if f else "none") in wanted]
    counter = RunCounter()
    results: list[ChaosResult] = []
    try:
        for fault in faults:
            bar = tqdm(
                total=args.requests, desc=fault.name if fault else "none", unit="req", disable=args.quiet
            )

            def step(done: int, _total: int, bar: Any = bar) -> None:
                bar.n = done
                bar.refresh()

            result = run_fault(
                settings,
                fault,
                namespace=BENCH_NAMESPACE,
                auth=auth,
                requests=args.requests,
                rate_per_s=args.rate,
                counter=counter,
                progress=step,
            )
            bar.n = result.completed
            bar.close()
            results.append(result)
            time.sleep(5)  # let a restarted part settle before the next fault
    finally:
        counter.close()
    text = render(results, args.requests, args.rate)
    print(text)
    write_section(Path(args.out), "chaos", text)
    print(f"\nwritten to {args.out}")
    return 0 if all(r.lost == 0 for r in results) else 1
