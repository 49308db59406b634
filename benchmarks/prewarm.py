"""``gleaner bench prewarm``: the first request after idle, with and without pre-warm.

A 3-stage DAG (a first stage that works for ``--work`` seconds, then two
short functions). For each mode the embedded stack restarts with
``GLEANER_PREWARM`` off or on and a short keep-alive
(``GLEANER_CONTAINER_KEEPALIVE_S``, default 5 s: longer than the first stage
takes, or pre-warmed containers would go before their turn), so the keep-alive
reaper removes the DAG's containers between requests: nothing is removed
behind the invoker's back. The DAG runs once, then each round waits until no
container of the DAG's functions is left (``docker ps`` by the pool's action
label) and sends one blocking request: a "first request after idle". Per
request: cold starts (child records with an ``initTime`` annotation, which
also counts a run that waited for its container still pre-warming), their
summed ``initTime``, the first stage's own ``initTime`` (what pre-warm starts
contend with), and the client's end-to-end latency. Modes alternate
over ``--passes`` passes. The stack is left with the default settings.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.report import percentile, write_section
from composer import dag_document, sequence
from gleaner.gateway_client import OpenWhiskClient, Target
from gleaner.records import annotation
from gleaner.settings import load_settings

WORK = "import time\ndef main(args):\n    time.sleep(float(args.get('work', 0.5)))\n    return {'n': 1}\n"
STEP = "def main(args):\n    return {'n': args.get('n', 0) + 1}\n"
ACTIONS = ("bench-pw-first", "bench-pw-second", "bench-pw-third")
DAG = "bench-pw-dag"
MODES = ("off", "on")


def _setup(client: OpenWhiskClient) -> None:
    for name, code in zip(ACTIONS, (WORK, STEP, STEP), strict=True):
        client.put_action(
            name,
            {"exec": {"kind": "python:3", "code": code}, "limits": {"cpu": 0.5, "memory": 128}},
            overwrite=True,
        )
    body = dag_document(sequence(*ACTIONS))
    client.request("PUT", f"/dags/{DAG}", json=body, params={"overwrite": "true"})


def dag_containers() -> int:
    """Action containers of the DAG's functions on this host (the pool labels each with its key)."""
    out = subprocess.run(
        ["docker", "ps", "--filter", "label=gleaner.action", "--format", '{{.Label "gleaner.action"}}'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = {line.split("@", 1)[0].rsplit("/", 1)[-1] for line in out.split()}
    return len(names & set(ACTIONS))


def _wait_reaped(timeout_s: float) -> float:
    start = time.monotonic()
    while dag_containers():
        if time.monotonic() - start > timeout_s:
            raise RuntimeError(f"the DAG's containers were not reaped within {timeout_s:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - start


def _request(client: OpenWhiskClient, work: float) -> dict[str, float]:
    start = time.perf_counter()
    status, rec = client.request("POST", f"/dags/{DAG}", json={"work": work}, params={"blocking": "true"})
    e2e = (time.perf_counter() - start) * 1000
    if status != 200:
        raise RuntimeError(f"DAG request answered {status}: {rec}")
    children: list[dict[str, Any]] = [client.request("GET", f"/activations/{a}")[1] for a in rec["logs"]]
    inits = [float(annotation(c, "initTime")) for c in children if annotation(c, "initTime") is not None]
    first = annotation(children[0], "initTime") if children else None  # logs: in dispatch order
    return {
        "e2e": e2e,
        "cold": float(len(inits)),
        "init": sum(inits),
        "first_init": float(first or 0),
        "functions": float(len(children)),
    }


def _restart(prewarm: bool, keepalive_s: float) -> None:
    from deploy import stack  # the bench drives the stack only here

    os.environ["GLEANER_PREWARM"] = "1" if prewarm else "0"
    os.environ["GLEANER_CONTAINER_KEEPALIVE_S"] = str(keepalive_s)
    settings = load_settings()
    stack.down(settings)
    stack.up(settings, progress=False)


def _restore() -> None:
    from deploy import stack

    os.environ.pop("GLEANER_PREWARM", None)
    os.environ.pop("GLEANER_CONTAINER_KEEPALIVE_S", None)
    settings = load_settings()
    stack.down(settings)
    stack.up(settings, progress=False)


def measure(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    try:
        for p in range(args.passes):
            for mode in MODES:
                print(f"pass {p + 1}/{args.passes}: stack with pre-warm {mode} ...", flush=True)
                _restart(mode == "on", args.keepalive)
                client = OpenWhiskClient(Target.resolve(None, None))
                _setup(client)
                _request(client, args.work)  # the DAG has run once (and the predictor has seen it)
                for r in range(args.rounds):
                    idle = _wait_reaped(args.keepalive * 10 + 30)
                    got = _request(client, args.work)
                    results[mode].append(got)
                    print(
                        f"  {mode} round {r + 1}: {got['cold']:.0f} cold starts of {got['functions']:.0f},"
                        f" initTime {got['init']:.0f} ms, end-to-end {got['e2e']:.0f} ms"
                        f" (containers reaped after {idle:.1f} s)",
                        flush=True,
                    )
                client.close()
    finally:
        print("restoring the stack's default settings ...", flush=True)
        _restore()
    return results


def summary(rows: list[dict[str, float]]) -> dict[str, float]:
    colds = [r["cold"] for r in rows]
    return {
        "n": len(rows),
        "cold_mean": sum(colds) / len(colds),
        "cold_max": max(colds),
        "init_p50": percentile([r["init"] for r in rows], 50),
        "per_cold_p50": percentile([r["init"] / r["cold"] for r in rows if r["cold"]], 50),
        "first_init_p50": percentile([r["first_init"] for r in rows], 50),
        "e2e_p50": percentile([r["e2e"] for r in rows], 50),
        "e2e_max": max(r["e2e"] for r in rows),
    }


def table(off: dict[str, float], on: dict[str, float], args: argparse.Namespace) -> str:
    rows = [
        ("cold starts per request, mean", "cold_mean", "{:.2f}"),
        ("cold starts per request, max", "cold_max", "{:.0f}"),
        ("summed initTime per request, p50 (ms)", "init_p50", "{:.0f}"),
        ("initTime per cold start, p50 (ms)", "per_cold_p50", "{:.0f}"),
        ("first stage's initTime, p50 (ms)", "first_init_p50", "{:.0f}"),
        ("end-to-end latency p50 (ms)", "e2e_p50", "{:.0f}"),
        ("end-to-end latency max (ms)", "e2e_max", "{:.0f}"),
    ]
    lines = [
        "## Pre-warm along the DAG: the first request after idle (issue 11 item 2)",
        "",
        f"A 3-stage sequence ({', '.join(ACTIONS)}; 0.5 core, 128 MB each): the first stage works"
        f" {args.work:.2f} s, the others return at once. The stack runs with a {args.keepalive:g} s"
        " keep-alive (`GLEANER_CONTAINER_KEEPALIVE_S`), restarted per mode with `GLEANER_PREWARM` off or"
        " on. The DAG runs once; then each round waits until the keep-alive reaper has removed every"
        " container of its functions and sends one blocking request. A cold start is a child record"
        " with an `initTime` annotation (a run that waited for its container still pre-warming counts,"
        " with the wait as its initTime).",
        "",
        "| first request after idle | pre-warm off | pre-warm on | on / off |",
        "|---|---|---|---|",
    ]
    for label, key, fmt in rows:
        a, b = off[key], on[key]
        ratio = f"{b / a:.2f}" if a else "-"
        lines.append(f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {ratio} |")
    lines += [
        "",
        f"{off['n']:.0f} requests per mode ({args.passes} pass(es) of {args.rounds}, modes alternating"
        " per pass). Target: at most 1 cold start per request with pre-warm on.",
        "",
        "Pre-warm is just in time (`GLEANER_PREWARM_LOOKAHEAD`, default 1): a stage's containers are"
        " hinted when the stage before it starts, earlier only when the stages between are known (from"
        " earlier requests' records) to run shorter than 1.5 cold starts, and a hint waits out the known"
        " run time ahead of its stage less 1.5 cold starts. Here the second stage returns at once, so"
        " the third stage's hint goes with the second's when the request starts; the first stage works"
        f" {args.work:.2f} s, less than 1.5 cold starts, so neither hint waits: their starts overlap the"
        " first stage's own cold start (its initTime above), which a longer first stage would avoid.",
    ]
    return "\n".join(lines)


def figure(results: dict[str, list[dict[str, float]]], path: Path) -> Path:
    """Each first request after idle as a bar: end-to-end latency, its summed initTime
    darker, its number of cold starts above it; pre-warm off, then on."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    x = 0
    for mode, color in zip(MODES, ("#c44e52", "#4c72b0"), strict=True):
        for k, r in enumerate(results[mode]):
            label = f"pre-warm {mode}" if k == 0 else None
            ax.bar(x, r["e2e"], color=color, alpha=0.45, label=label)
            ax.bar(x, r["init"], color=color, label=f"initTime, {mode}" if k == 0 else None)
            ax.text(x, r["e2e"], f"{r['cold']:.0f}", ha="center", va="bottom", fontsize=8)
            x += 1
        x += 1
    ax.set_ylabel("ms")
    ax.set_xticks([])
    ax.set_title("First request after idle (3-stage DAG): end-to-end, initTime, cold starts above")
    ax.legend(fontsize=8, loc="upper right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def main(args: argparse.Namespace) -> int:
    results = measure(args)
    png = figure(results, Path(args.out).parent / "img" / "prewarm.png")
    text = table(summary(results["off"]), summary(results["on"]), args)
    text += f"\n\n![first request after idle, pre-warm off and on](img/{png.name})"
    print(text)
    write_section(Path(args.out), "prewarm", text)
    print(f"\nwritten to {args.out}")
    return 0
