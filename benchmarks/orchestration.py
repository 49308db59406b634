"""``gleaner bench orchestration``: per-stage overhead of running a DAG.

Two DAGs of warm no-op functions: a sequence of 5, and one parallel stage of
width 4. For each blocking request: overhead = client end-to-end latency minus
the critical path's function run time (the sum over the sequence; the longest
branch of the parallel stage), where a function's run time is the invoker's
/run round trip into its container (``run_ms`` in its record).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmarks.floor import kafka_hop
from benchmarks.report import percentile, write_section
from composer import dag_document, parallel, sequence
from gleaner.cli.client import OpenWhiskClient, Target
from gleaner.settings import load_settings

NOOP = "def main(args):\n    return {'ok': True}\n"


def _setup(client: OpenWhiskClient) -> None:
    for i in range(5):
        client.put_action(
            f"bench-op{i}",
            {"exec": {"kind": "python:3", "code": NOOP}, "limits": {"cpu": 0.25, "memory": 128}},
            overwrite=True,
        )
    seq = sequence(*(f"bench-op{i}" for i in range(5)))
    par = parallel(*(f"bench-op{i}" for i in range(4)))
    for name, dag in (("bench-seq5", seq), ("bench-par4", par)):
        client.request("PUT", f"/dags/{name}", json=dag_document(dag), params={"overwrite": "true"})


def _measure(client: OpenWhiskClient, dag: str, n: int, critical: str) -> dict[str, float]:
    for _ in range(5):  # warm every container
        client.request("POST", f"/dags/{dag}", json={}, params={"blocking": "true"})
    e2e, overhead, stages = [], [], 1
    for _ in tqdm(range(n), desc=dag, unit="req"):
        start = time.perf_counter()
        _, rec = client.request("POST", f"/dags/{dag}", json={}, params={"blocking": "true"})
        ms = (time.perf_counter() - start) * 1000
        runs = [_run_ms(client, aid) for aid in rec["logs"]]
        path = sum(runs) if critical == "sum" else max(runs)
        stages = len(rec["gleaner"]["dag"]["stages"])
        e2e.append(ms)
        overhead.append(ms - path)
    per_stage = [o / stages for o in overhead]
    return {
        "n": n,
        "stages": stages,
        "e2e_p50": percentile(e2e, 50),
        "over_p50": percentile(overhead, 50),
        "over_p99": percentile(overhead, 99),
        "stage_p50": percentile(per_stage, 50),
        "stage_p99": percentile(per_stage, 99),
    }


def _run_ms(client: OpenWhiskClient, activation_id: str) -> float:
    rec: dict[str, Any] = client.request("GET", f"/activations/{activation_id}")[1]
    return float(rec["gleaner"]["run_ms"])


def main(args: argparse.Namespace) -> int:
    client = OpenWhiskClient(Target.resolve(None, None))
    _setup(client)
    floor = kafka_hop(load_settings())
    seq = _measure(client, "bench-seq5", args.requests, "sum")
    par = _measure(client, "bench-par4", args.requests, "max")
    rows = [
        ("sequence of 5", seq),
        ("parallel stage of width 4", par),
    ]
    lines = [
        "## DAG orchestration overhead (issue 3)",
        "",
        "Blocking HTTP requests of DAGs of warm no-op functions (0.25 core, 128 MB each), one invoker.",
        "Overhead = end-to-end latency minus the critical path's function run time (/run round trips).",
        "",
        "| DAG | requests | end-to-end p50 | overhead p50 / p99 | per stage p50 / p99 "
        "| per stage p50 / three hops' floor |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in rows:
        lines.append(
            f"| {label} | {r['n']:.0f} | {r['e2e_p50']:.1f} ms "
            f"| {r['over_p50']:.1f} / {r['over_p99']:.1f} ms "
            f"| {r['stage_p50']:.1f} / {r['stage_p99']:.1f} ms | {floor.ratio(r['stage_p50'])} |"
        )
    lines += [
        "",
        f"Floor, same run: one Kafka hop p50 {floor.hop_p50_ms:.2f} ms, p99 {floor.hop_p99_ms:.2f} ms"
        f" ({floor.n} events with the platform's client settings); a stage crosses three hops"
        f" ({floor.path_ms:.1f} ms at the median).",
        "",
        "Targets: per sequence stage p50 <= 15 ms; a parallel stage of width 4 <= 20 ms.",
    ]
    text = "\n".join(lines)
    print(text)
    write_section(Path(args.out), "orchestration", text)
    print(f"\nwritten to {args.out}")
    return 0
