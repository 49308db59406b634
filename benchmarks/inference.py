"""``gleaner bench inference DAG``: the predictor stream alone.

A second predictor worker (the same Faust app, the same trained models) runs
on topics with their own prefix, so the benchmark's requests are planned but
never executed. Requests carry only a size (a data-store reference of the
sizes the workload's inputs really have): the stream reads sizes, never
content. Throughput = requests / (first produce -> last plan received);
inference time per request = the planner's own measurement (``inference_ms``:
the request's own planning steps plus an even share of the predict calls of
the batch it was planned in).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import confluent_kafka
import orjson
from tqdm import tqdm

from benchmarks.report import percentile, write_section
from deploy.procs import settings_env
from gleaner.errors import GleanerError
from gleaner.gateway_client import OpenWhiskClient, Target
from gleaner.settings import load_settings
from streams.events import DagRequest, new_activation_id, now_ms
from streams.kafka.client import ensure_topics
from streams.kafka.signing import Signer
from streams.payloads import REF
from streams.topics import all_topics


def main(args: argparse.Namespace) -> int:
    from workloads.catalog import input_files

    base = load_settings()
    settings = replace(base, topic_prefix=f"bench-{uuid.uuid4().hex[:6]}.")
    ensure_topics(settings.kafka, all_topics(settings))
    namespace = OpenWhiskClient(Target.resolve(None, None)).namespace()
    sizes = [p.stat().st_size for p in input_files(args, args.dag, base.state_dir)]
    log = open(base.state_dir / "logs" / "bench-predictor.log", "ab")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "gleaner", "run", "predictor", "--log-level", "warn"],
        env={**os.environ, **settings_env(settings)},
        stdout=log,
        stderr=log,
    )
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 5,
        }
    )
    consumer.subscribe([settings.dag_plans_topic])
    producer = confluent_kafka.Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 5})
    signer = Signer.for_settings(settings.kafka)
    try:
        # Warm up: wait until the worker answers one request.
        _send(producer, signer, settings.dag_requests_topic, namespace, args.dag, sizes[0])
        first = _collect(consumer, 1, 90, quiet=True)
        if not first or not first[0]["harvest"]:
            reasons = first[0]["reasons"] if first else "no plan at all"
            raise GleanerError(f"the predictor did not plan {args.dag}: {reasons} (train it first)")
        start, cpu_start = time.perf_counter(), cpu_seconds(worker.pid)
        for i in range(args.requests):
            _send(producer, signer, settings.dag_requests_topic, namespace, args.dag, sizes[i % len(sizes)])
            producer.poll(0)
        producer.flush(30)
        plans = _collect(consumer, args.requests, 300, quiet=args.quiet)
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(worker.pid) - cpu_start
    finally:
        worker.terminate()
        worker.wait(15)
        consumer.close()
        log.close()
    inference = [float(p["inference_ms"]) for p in plans]
    applied = sum(1 for p in plans if p["harvest"])
    lines = [
        f"## Inference pipeline, {args.dag} (issues 4 and 11)",
        "",
        "The Faust predictor/validator stream alone (checks, ML1, ML2, normalizer, validator, plan),",
        "one worker, requests produced as fast as possible; the worker plans whatever arrived while",
        "it was busy as one batch (the models run once per DAG per batch). Inference per request is",
        "its own planning steps plus an even share of its batch's predict calls.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| DAG requests planned | {len(plans)} of {args.requests} ({applied} with a plan applied) |",
        f"| throughput | {len(plans) / elapsed:.0f} requests/s |",
        f"| predictor worker CPU | {cpu / elapsed:.2f} cores "
        f"({1000 * cpu / max(1, len(plans)):.2f} ms per request, all threads) |",
        f"| inference per request p50 / p99 "
        f"| {percentile(inference, 50):.2f} ms / {percentile(inference, 99):.2f} ms |",
        "",
        "Targets: >= 1,000 requests/s, inference p99 <= 5 ms.",
    ]
    text = "\n".join(lines)
    print(text)
    write_section(Path(args.out), f"inference-{args.dag}", text)
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc); 0.0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _send(
    producer: confluent_kafka.Producer, signer: Signer, topic: str, namespace: str, dag: str, size: int
) -> None:
    req = DagRequest(
        request_id=new_activation_id(),
        namespace=namespace,
        dag=dag,
        input={REF: "size-only", "size": size},
        harvest=True,
        submitted_ms=now_ms(),
    )
    raw = req.to_bytes()
    # Signed as the gateway signs: the predictor takes only platform or tenant-keyed requests.
    producer.produce(topic, raw, key=req.request_id, headers=signer.headers(topic, req.request_id, raw))


def _collect(
    consumer: confluent_kafka.Consumer, n: int, timeout_s: float, quiet: bool
) -> list[dict[str, Any]]:
    out: list[dict[str, object]] = []
    deadline = time.monotonic() + timeout_s
    with tqdm(total=n, desc="plans", unit="plan", disable=quiet) as bar:
        while len(out) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                out.append(orjson.loads(msg.value() or b"{}"))
                bar.update()
    return out
