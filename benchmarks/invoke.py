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
import os
import time
import uuid
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmarks.floor import kafka_hop
from benchmarks.report import percentile, write_section
from gleaner.gateway_client import OpenWhiskClient, Target
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
    sent_ms = time.time() * 1000
    status, rec = client.invoke(name, {}, blocking=True, result=False)
    elapsed = (time.perf_counter() - start) * 1000
    if status != 200:
        raise RuntimeError(f"invoke of {name} answered {status}: {rec}")
    rec["_sent_ms"], rec["_answered_ms"] = sent_ms, sent_ms + elapsed
    return elapsed, rec


# Where a warm invoke's time goes, from the record's clock marks (one host, one clock):
# HTTP in (client -> the gateway's produce), Kafka + placement (produce -> the invoker's
# start: the record's waitTime), the invoker around /run, and back (record end -> answer).
SEGMENTS = ("http in", "to invoker start", "invoker around /run", "completion to answer")


def segments(rec: dict[str, Any]) -> tuple[float, float, float, float]:
    wait = float(annotation(rec, "waitTime") or 0)
    start, end = float(rec["start"]), float(rec["end"])
    run_ms = float(rec["gleaner"].get("run_ms", 0.0))
    return (
        start - wait - rec["_sent_ms"],
        wait,
        end - start - run_ms,
        rec["_answered_ms"] - end,
    )


def warm(client: OpenWhiskClient, n: int) -> dict[str, float]:
    name = "bench-noop"
    _put(client, name, 0.25)
    for _ in range(5):
        _invoke(client, name)  # warm the container and every client connection
    e2e, overhead, runs = [], [], []
    parts: list[list[float]] = [[] for _ in SEGMENTS]
    for _ in tqdm(range(n), desc="warm invokes", unit="inv"):
        ms, rec = _invoke(client, name)
        run_ms = float(rec["gleaner"].get("run_ms", 0.0))
        e2e.append(ms)
        runs.append(run_ms)
        overhead.append(ms - run_ms)
        for i, value in enumerate(segments(rec)):
            parts[i].append(value)
    return {
        **{f"seg{i}_p50": percentile(values, 50) for i, values in enumerate(parts)},
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
    floor = kafka_hop(settings)
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
        f"| floor: one Kafka hop p50 / p99 ({floor.n} events, same run) "
        f"| {floor.hop_p50_ms:.2f} ms / {floor.hop_p99_ms:.2f} ms |",
        f"| warm overhead p50 / three hops' floor | {floor.ratio(w['over_p50'])} "
        f"({w['over_p50']:.1f} / {floor.path_ms:.1f} ms) |",
        f"| warm end-to-end p50 / p99 | {w['e2e_p50']:.1f} ms / {w['e2e_p99']:.1f} ms |",
        f"| floor: function /run round trip p50 | {w['run_p50']:.2f} ms |",
        "| warm overhead p50 by part: "
        + ", ".join(SEGMENTS)
        + " | "
        + " / ".join(f"{w[f'seg{i}_p50']:.1f}" for i in range(len(SEGMENTS)))
        + " ms |",
        f"| cold start end-to-end p50 / max ({c['n']:.0f} fresh actions) "
        f"| {c['e2e_p50']:.0f} ms / {c['e2e_max']:.0f} ms |",
        f"| cold initTime p50 (container start + /init) | {c['init_p50']:.0f} ms |",
        f"| throughput, {t['clients']:.0f} concurrent blocking clients | {t['per_s']:.1f} invocations/s "
        f"({t['completed']:.0f} in {t['seconds']:.1f} s) |",
        "",
        "Targets: warm overhead p50 <= 10 ms, p99 <= 30 ms (ReSC reports 10 ms, OpenWhisk about 35 ms).",
    ]
    text = "\n".join(lines)
    print(text)
    write_section(Path(args.out), "invoke", text)
    print(f"\nwritten to {args.out}")
    return 0


Measures = tuple[dict[str, float], dict[str, float], dict[str, float]]


def measure_both_ways(
    args: argparse.Namespace, env: str, what: tuple[str, str], values: tuple[str, str] = ("0", "1")
) -> tuple[Measures, Measures]:
    """The invoke measures with ``env`` off, then on (``values``), restarting the embedded
    stack before each (components and the supervisor inherit the variable). Ends on."""
    from deploy import stack  # the bench drives the stack only here

    results: dict[bool, Measures] = {}
    for on in (False, True):
        print(f"stack with {what[on]} ...", flush=True)
        os.environ[env] = values[on]
        settings = load_settings()
        stack.down(settings)
        stack.up(settings, progress=False)
        target = Target.resolve(None, None)
        client = OpenWhiskClient(target)
        w = warm(client, args.invocations)
        c = cold(client, args.cold)
        clients = int(settings.invoker_cpu_capacity / 0.25)
        results[on] = (w, c, throughput(target, args.throughput_seconds, clients))
        client.close()
    return results[False], results[True]


def comparison_table(
    title: str, intro: str, columns: tuple[str, str], off: Measures, on: Measures, args: argparse.Namespace
) -> str:
    rows = [
        ("warm overhead p50 (ms)", 0, "over_p50"),
        ("warm overhead p99 (ms)", 0, "over_p99"),
        ("warm end-to-end p50 (ms)", 0, "e2e_p50"),
        ("warm end-to-end p99 (ms)", 0, "e2e_p99"),
        ("cold start end-to-end p50 (ms)", 1, "e2e_p50"),
        ("throughput (invocations/s)", 2, "per_s"),
    ]
    lines = [
        f"## {title}",
        "",
        intro,
        "",
        f"| measure | {columns[0]} | {columns[1]} | {columns[1]} / {columns[0]} |",
        "|---|---|---|---|",
    ]
    for label, part, key in rows:
        a, b = off[part][key], on[part][key]
        ratio = f"{b / a:.2f}" if a else "-"
        lines.append(f"| {label} | {a:.1f} | {b:.1f} | {ratio} |")
    lines += [
        "",
        f"Warm: {args.invocations:.0f} invokes each; cold: {args.cold:.0f} fresh actions each;"
        f" throughput: {args.throughput_seconds:.0f} s each.",
    ]
    return "\n".join(lines)


def _report(args: argparse.Namespace, section: str, text: str) -> int:
    print(text)
    write_section(Path(args.out), section, text)
    print(f"\nwritten to {args.out}")
    return 0


def durability(args: argparse.Namespace) -> int:
    """The cost of durable stores (pouchdb-server on LevelDB, Redis AOF every second)."""
    off, on = measure_both_ways(args, "GLEANER_EMBEDDED_DURABLE", ("in-memory stores", "durable stores"))
    return _report(args, "invoke-durability", durability_table(off, on, args))


def durability_table(memory: Measures, durable: Measures, args: argparse.Namespace) -> str:
    intro = (
        "The same `gleaner bench invoke` measures on the embedded stack twice in one run: stores in memory,"
        " then durable (pouchdb-server on LevelDB, Redis with an append-only file fsynced every second)."
        " Kafka (Tansu) is memory-only in both."
    )
    title = "Cost of durable embedded stores"
    return comparison_table(title, intro, ("in memory", "durable"), memory, durable, args)


def outbox(args: argparse.Namespace) -> int:
    """The cost of the gateway's outbox (a Redis write before each accepted event)."""
    off, on = measure_both_ways(args, "GLEANER_OUTBOX", ("no outbox", "the outbox"))
    intro = (
        "The same `gleaner bench invoke` measures on the embedded stack twice in one run: the gateway"
        " producing what it accepts straight away (`GLEANER_OUTBOX=false`), then keeping it in Redis"
        " first (a writer thread batches the HSETs of what arrives together, before producing it)"
        " until its record exists."
    )
    table = comparison_table("Cost of the outbox", intro, ("no outbox", "outbox"), off, on, args)
    return _report(args, "invoke-outbox", table)


def broker_storage(args: argparse.Namespace) -> int:
    """The embedded broker's log in memory against on the local S3 store."""
    what = ("the memory broker", "the s3 broker (SeaweedFS)")
    off, on = measure_both_ways(args, "GLEANER_KAFKA_STORAGE", what, ("memory", "s3"))
    intro = (
        "The same `gleaner bench invoke` measures on the embedded stack twice in one run: Tansu keeping its"
        " log in memory (`GLEANER_KAFKA_STORAGE=memory`), then on a local SeaweedFS (`s3`)."
    )
    table = comparison_table("Broker storage: memory against s3", intro, ("memory", "s3"), off, on, args)
    return _report(args, "invoke-broker-storage", table)


def hardening(args: argparse.Namespace) -> int:
    """The cost of hardened action containers, against Docker's defaults on the default bridge."""
    what = ("default action containers", "hardened action containers")
    off, on = measure_both_ways(args, "GLEANER_ACTION_HARDENING", what)
    return _report(args, "invoke-hardening", hardening_table(off, on, args))


def hardening_table(before: Measures, after: Measures, args: argparse.Namespace) -> str:
    intro = (
        "The same `gleaner bench invoke` measures on the embedded stack twice in one run: action containers"
        " with Docker's defaults on the default bridge (`GLEANER_ACTION_HARDENING=false`), then hardened"
        " (non-root, every capability dropped, no-new-privileges, pids limit, read-only root with a tmpfs"
        " /tmp, their own network without inter-container traffic, the host behind an iptables chain)."
    )
    title = "Cost of hardened action containers"
    return comparison_table(title, intro, ("Docker defaults", "hardened"), before, after, args)
