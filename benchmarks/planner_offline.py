"""The predictor stream's planning step alone, offline: no Kafka, no CouchDB, no stack.

``python -m benchmarks.planner_offline [--dag parallel-aes] [-n 2000] [--batch 32 4]``

What the Faust worker does per batch in its planning thread (``plan_and_sign`` in
:mod:`streams.predictor_stream.app`): check each request's signature, decode it,
plan the batch (documents from an in-memory store, the DAG's trained models from
the model store), write each plan as JSON and sign it. Requests are built as
``gleaner bench inference`` builds them (a size-only reference, ``harvest: true``),
with the DAG input sizes the models were trained on. Prints the CPU time per
request (this process, all threads) and the planner's own ``inference_ms``; the
Kafka hops and Faust's send path are not in it (``gleaner bench inference`` has them).
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import os
import pstats
import time
from dataclasses import replace
from typing import Any

import orjson

from benchmarks.report import percentile
from composer import normalize, to_json
from gleaner.settings import Settings, load_settings
from streams.events import DagRequest, new_activation_id, now_ms
from streams.kafka.signing import SIGNATURE_HEADER, Signer, normalize_headers
from streams.payloads import REF
from streams.predictor_stream.app import MAX_BATCH
from streams.predictor_stream.events import PLANS, Gate, Incoming, Where, plan_events
from streams.predictor_stream.planner import RequestPlanner

TOPIC = "dag.requests"


class MemoryStore:
    """CouchDB's ``get_doc`` over a dict: the planner's documents without the store."""

    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.docs = docs

    def get_doc(self, db: str, doc_id: str, rev: str | None = None) -> dict[str, Any] | None:
        return self.docs.get(f"{db}/{doc_id}")


def workload_docs(namespace: str, dag: str) -> dict[str, dict[str, Any]]:
    """The DAG document and its actions' limits, as ``gleaner deploy`` writes them."""
    from workloads.catalog import get

    workload = get(dag)
    docs: dict[str, dict[str, Any]] = {
        f"dags/{namespace}/{dag}": {"_rev": "1-offline", "composition": to_json(normalize(workload.dag))}
    }
    for spec in workload.functions:
        docs[f"whisks/{namespace}/{spec.name}"] = {"limits": {"cpu": spec.cpu, "memory": spec.memory_mb}}
    return docs


def trained_namespace(settings: Settings, dag: str) -> str:
    for ns_dir in sorted(settings.models_root.iterdir()):
        if (ns_dir / dag / "current").exists():
            return ns_dir.name
    raise SystemExit(f"no trained model of {dag} under {settings.models_root} (run: gleaner train {dag})")


def trained_sizes(settings: Settings, namespace: str, dag: str) -> list[int]:
    """The DAG input sizes of the current model's training rows (one per request)."""
    dag_dir = settings.models_root / namespace / dag
    version_dir = dag_dir / (dag_dir / "current").read_text().strip()
    with open(version_dir / "dataset.csv", newline="") as f:
        sizes = {row["request_id"]: int(float(row["dag_input_size"])) for row in csv.DictReader(f)}
    return sorted(sizes.values()) or [1_000_000]


def events(signer: Signer, namespace: str, dag: str, sizes: list[int], n: int) -> list[Incoming]:
    out = []
    for i in range(n):
        req = DagRequest(
            request_id=new_activation_id(),
            namespace=namespace,
            dag=dag,
            input={REF: "size-only", "size": sizes[i % len(sizes)]},
            harvest=True,
            submitted_ms=now_ms(),
        )
        raw = req.to_bytes()
        key = req.request_id.encode()
        headers = normalize_headers(signer.headers(TOPIC, key, raw))
        out.append(Incoming(key, raw, Where(TOPIC, 0, i, now_ms()), headers))
    return out


def plan_and_sign(planner: RequestPlanner, batch: list[Incoming], gate: Gate, signer: Signer) -> list[Any]:
    """As the worker's planning thread does it (streams.predictor_stream.app)."""
    signed = []
    for out in plan_events(planner, batch, 1 << 20, gate):
        signed.append((out, {SIGNATURE_HEADER: signer.signature("dag.plans", out.key, out.value)}))
    return signed


def run(planner: RequestPlanner, evs: list[Incoming], batch: int, gate: Gate, signer: Signer) -> list[Any]:
    outs: list[Any] = []
    for start in range(0, len(evs), batch):
        outs.extend(plan_and_sign(planner, evs[start : start + batch], gate, signer))
    return outs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dag", default="parallel-aes", help="a built-in workload with a trained model")
    parser.add_argument("-n", "--requests", type=int, default=2000)
    parser.add_argument(
        "--batch", type=int, nargs="+", default=[MAX_BATCH], help="requests per planning batch (one run each)"
    )
    parser.add_argument("--policy", default=None, help="the harvest policy setting (default: the setting's)")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions instead")
    args = parser.parse_args(argv)

    settings = load_settings()
    if args.policy:
        settings = replace(settings, harvest_policy=args.policy)
    namespace = trained_namespace(settings, args.dag)
    signer = Signer(os.urandom(32))  # a throwaway secret: nothing here leaves the process
    gate = Gate(signer, lambda credential: None)
    planner = RequestPlanner(settings, MemoryStore(workload_docs(namespace, args.dag)))  # type: ignore[arg-type]
    sizes = trained_sizes(settings, namespace, args.dag)
    run(planner, events(signer, namespace, args.dag, sizes, 64), args.batch[0], gate, signer)  # warm: loads
    evs = events(signer, namespace, args.dag, sizes, args.requests)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(run, planner, evs, args.batch[0], gate, signer)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return 0
    for batch in args.batch:
        wall, cpu = time.perf_counter(), time.process_time()
        outs = run(planner, evs, batch, gate, signer)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        plans = [orjson.loads(out.value) for out, _ in outs if out.topic == PLANS]
        if len(plans) != len(evs) or not all(p["harvest"] for p in plans):
            applied = sum(p["harvest"] for p in plans)
            raise SystemExit(f"only {applied} of {len(evs)} requests got a plan applied")
        inference = [float(p["inference_ms"]) for p in plans]
        print(
            f"{args.dag} ({plans[0]['policy']}), {len(evs)} requests in batches of {batch}: "
            f"{1000 * cpu / len(evs):.3f} ms CPU per request, {len(evs) / wall:.0f} requests/s on one "
            f"thread, inference_ms p50 {percentile(inference, 50):.3f} / p99 {percentile(inference, 99):.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
