"""``gleaner bench orchestration``: per-stage overhead of running a DAG.

Two DAGs of warm no-op functions: a sequence of 5, and one parallel stage of
width 4. For each blocking request: overhead = client end-to-end latency minus
the critical path's function run time (the sum over the sequence; the longest
branch of the parallel stage), where a function's run time is the invoker's
/run round trip into its container (``run_ms`` in its record).

The overhead is split along the path from the records' clock marks (one host,
one clock), so a reader sees which hop to work on: see :data:`SEGMENTS`.
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
from gleaner.gateway_client import OpenWhiskClient, Target
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


# Where a DAG request's overhead goes. "to the plan": client -> gateway -> requests ->
# predictor -> plans -> the composition's start mark. "stage start": per stage, from the
# stage's go (the request's start, or the previous stage's last function end) to its
# last-ending function's start: composition, placement, the invoker's intake. "invoker
# around /run": that function's record span minus its /run. "fan-out spread": last
# minus first function start within a stage. "last end to answer": composition's finish,
# the results hop, the gateway's answer.
SEGMENTS = ("to the plan", "stage start", "invoker around /run", "fan-out spread", "last end to answer")


def segments(
    sent_ms: float, answered_ms: float, dag: dict[str, Any], children: list[dict[str, Any]]
) -> tuple[float, ...]:
    """The overhead parts of one request (ms, summed over its stages), by :data:`SEGMENTS`."""
    by_id = {c["activationId"]: c for c in children}
    go = float(dag["start"])
    to_plan = go - sent_ms
    stage_start = around = spread = 0.0
    last_end = go
    for stage in dag["gleaner"]["dag"]["stages"]:
        recs = [by_id[f["activation_id"]] for f in stage["functions"] if f.get("activation_id") in by_id]
        if not recs:
            continue
        last = max(recs, key=lambda r: float(r["end"]))
        starts = [float(r["start"]) for r in recs]
        stage_start += float(last["start"]) - last_end
        around += float(last["end"]) - float(last["start"]) - float(last["gleaner"].get("run_ms", 0.0))
        spread += max(starts) - min(starts)
        last_end = float(last["end"])
    return (to_plan, stage_start, around, spread, answered_ms - last_end)


def _measure(client: OpenWhiskClient, dag: str, n: int, critical: str) -> dict[str, float]:
    for _ in range(5):  # warm every container
        client.request("POST", f"/dags/{dag}", json={}, params={"blocking": "true"})
    e2e, overhead, stages = [], [], 1
    parts: list[list[float]] = [[] for _ in SEGMENTS]
    for _ in tqdm(range(n), desc=dag, unit="req"):
        sent_ms = time.time() * 1000
        start = time.perf_counter()
        _, rec = client.request("POST", f"/dags/{dag}", json={}, params={"blocking": "true"})
        ms = (time.perf_counter() - start) * 1000
        children = [_record(client, aid) for aid in rec["logs"]]
        runs = [float(c["gleaner"]["run_ms"]) for c in children]
        path = sum(runs) if critical == "sum" else max(runs)
        stages = len(rec["gleaner"]["dag"]["stages"])
        e2e.append(ms)
        overhead.append(ms - path)
        for i, value in enumerate(segments(sent_ms, sent_ms + ms, rec, children)):
            parts[i].append(value)
    per_stage = [o / stages for o in overhead]
    return {
        **{f"seg{i}_p50": percentile(values, 50) for i, values in enumerate(parts)},
        "n": n,
        "stages": stages,
        "e2e_p50": percentile(e2e, 50),
        "over_p50": percentile(overhead, 50),
        "over_p99": percentile(overhead, 99),
        "stage_p50": percentile(per_stage, 50),
        "stage_p99": percentile(per_stage, 99),
    }


def _record(client: OpenWhiskClient, activation_id: str) -> dict[str, Any]:
    rec: dict[str, Any] = client.request("GET", f"/activations/{activation_id}")[1]
    return rec


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
        "Where the overhead goes (p50 of each part, ms, summed over a request's stages; the parts'"
        " medians need not add up to the overhead's):",
        "",
        "| DAG | " + " | ".join(SEGMENTS) + " |",
        "|---|" + "---|" * len(SEGMENTS),
        *(
            f"| {label} | " + " | ".join(f"{r[f'seg{i}_p50']:.1f}" for i in range(len(SEGMENTS))) + " |"
            for label, r in rows
        ),
        "",
        "Targets: per sequence stage p50 <= 15 ms; a parallel stage of width 4 <= 20 ms.",
    ]
    text = "\n".join(lines)
    print(text)
    write_section(Path(args.out), "orchestration", text)
    print(f"\nwritten to {args.out}")
    return 0
