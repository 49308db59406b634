"""``gleaner bench invoke``: the single-function path on the running stack.

Measures, over HTTP with blocking invokes (as a user sees it):
- warm overhead: end-to-end latency minus the function's run time, where the
  run time is the invoker's /run round trip into the container (``run_ms``);
- cold start: end-to-end latency of the first invoke of a fresh action;
- throughput: completed invocations/s with one invoker and concurrent clients.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import time
import uuid
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmarks.report import percentile, write_section
from gleaner.cli.client import OpenWhiskClient, Target
from gleaner.records import annotation
from gleaner.settings import load_settings

NOOP = "def main(args):\n    return {'ok': True}\n"


def _put(client: OpenWhiskClient, name: str, cpu: float) -> None:
    client.put_action(
        name,
        {"exec": {"kind": "python:3", "code": NOOP}, "limits": {"cpu": cpu, "memory": 128}},
        overwrite=True,
    )


def _invoke(client: OpenWhiskClient, name: str) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    status, rec = client.invoke(name, {}, blocking=True, result=False)
    elapsed = (time.perf_counter() - start) * 1000
    if status != 200:
        raise RuntimeError(f"invoke of {name} answered {status}: {rec}")
    return elapsed, rec


def warm(client: OpenWhiskClient, n: int) -> dict[str, float]:
    name = "bench-noop"
    _put(client, name, 0.25)
    for _ in range(5):
        _invoke(client, name)  # warm the container and every client connection
    e2e, overhead, runs = [], [], []
    for _ in tqdm(range(n), desc="warm invokes", unit="inv"):
        ms, rec = _invoke(client, name)
        run_ms = float(rec["gleaner"].get("run_ms", 0.0))
        e2e.append(ms)
        runs.append(run_ms)
        overhead.append(ms - run_ms)
    return {
        "n": n,
        "e2e_p50": percentile(e2e, 50),
        "e2e_p99": percentile(e2e, 99),
        "over_p50": percentile(overhead, 50),
        "over_p99": percentile(overhead, 99),
        "run_p50": percentile(runs, 50),
    }


def cold(client: OpenWhiskClient, n: int) -> dict[str, float]:
    e2e, init = [], []
    for _ in tqdm(range(n), desc="cold starts", unit="inv"):
        name = f"bench-cold-{uuid.uuid4().hex[:8]}"
        _put(client, name, 0.25)
        ms, rec = _invoke(client, name)
        e2e.append(ms)
        init.append(float(annotation(rec, "initTime") or 0))
        client.request("DELETE", f"/actions/{name}")
    return {"n": n, "e2e_p50": percentile(e2e, 50), "e2e_max": max(e2e), "init_p50": percentile(init, 50)}


def throughput(target: Target, seconds: float, clients: int) -> dict[str, float]:
    name = "bench-noop"
    deadline = time.monotonic() + seconds

    def worker() -> int:
        client = OpenWhiskClient(target)
        done = 0
        while time.monotonic() < deadline:
            _invoke(client, name)
            done += 1
        client.close()
        return done

    start = time.monotonic()
    with cf.ThreadPoolExecutor(clients) as pool:
        counts = list(pool.map(lambda _i: worker(), range(clients)))
    elapsed = time.monotonic() - start
    return {"clients": clients, "seconds": elapsed, "completed": sum(counts), "per_s": sum(counts) / elapsed}


def main(args: argparse.Namespace) -> int:
    settings = load_settings()
    target = Target.resolve(None, None)
    client = OpenWhiskClient(target)
    w = warm(client, args.invocations)
    c = cold(client, args.cold)
    clients = int(settings.invoker_cpu_capacity / 0.25)
    t = throughput(target, args.throughput_seconds, clients)
    lines = [
        "## Single-action invoke (issue 2)",
        "",
        "Blocking HTTP invokes of a no-op Python action (0.25 core, 128 MB), one invoker, embedded stack.",
        "Overhead = client-side end-to-end latency minus the invoker's /run round trip into the container.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| warm overhead p50 / p99 ({w['n']:.0f} invokes) "
        f"| {w['over_p50']:.1f} ms / {w['over_p99']:.1f} ms |",
        f"| warm end-to-end p50 / p99 | {w['e2e_p50']:.1f} ms / {w['e2e_p99']:.1f} ms |",
        f"| function /run round trip p50 | {w['run_p50']:.2f} ms |",
        f"| cold start end-to-end p50 / max ({c['n']:.0f} fresh actions) "
        f"| {c['e2e_p50']:.0f} ms / {c['e2e_max']:.0f} ms |",
        f"| cold initTime p50 (container start + /init) | {c['init_p50']:.0f} ms |",
        f"| throughput, {t['clients']:.0f} concurrent blocking clients | {t['per_s']:.1f} invocations/s "
        f"({t['completed']:.0f} in {t['seconds']:.1f} s) |",
        "",
        "Targets: warm overhead p50 <= 15 ms, p99 <= 50 ms (OpenWhisk's warm invoke is about 35 ms).",
    ]
    text = "\n".join(lines)
    print(text)
    write_section(Path(args.out), "invoke", text)
    print(f"\nwritten to {args.out}")
    return 0
