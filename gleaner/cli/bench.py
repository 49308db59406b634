"""``gleaner bench ...``: benchmarks that print measured figures and write
them to docs/benchmarks.md."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bench = sub.add_parser("bench", help="measure Gleaner on the running stack")
    verbs = bench.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("invoke", help="single-action latency, cold start and throughput")
    p.add_argument("-n", "--invocations", type=int, default=300)
    p.add_argument("--cold", type=int, default=10, help="cold starts to measure")
    p.add_argument("--throughput-seconds", type=float, default=15.0)
    p.add_argument("--out", default="docs/benchmarks.md")
    p.add_argument(
        "--durability",
        action="store_true",
        help="restart the embedded stack with in-memory, then durable stores, and compare (ends durable)",
    )
    p.add_argument(
        "--hardening",
        action="store_true",
        help="restart the embedded stack with default, then hardened action containers, and compare",
    )

    p.add_argument(
        "--outbox",
        action="store_true",
        help="restart the embedded stack without, then with the gateway's outbox, and compare",
    )
    p.add_argument(
        "--broker-storage",
        action="store_true",
        help="restart the embedded stack with the broker's log in memory, then on s3, and compare "
        "(ends on s3: `gleaner down; gleaner up` goes back to the default)",
    )

    def run(args: argparse.Namespace) -> int:
        from benchmarks.invoke import broker_storage, durability, hardening, main, outbox

        if args.hardening:
            return int(hardening(args))
        if args.outbox:
            return int(outbox(args))
        if args.broker_storage:
            return int(broker_storage(args))
        return int(durability(args) if args.durability else main(args))

    p.set_defaults(func=run)

    p = verbs.add_parser("orchestration", help="per-stage DAG orchestration overhead")
    p.add_argument("-n", "--requests", type=int, default=100)
    p.add_argument("--out", default="docs/benchmarks.md")

    def run_orchestration(args: argparse.Namespace) -> int:
        from benchmarks.orchestration import main

        return int(main(args))

    p.set_defaults(func=run_orchestration)

    p = verbs.add_parser("idle", help="CPU each part of the running stack burns with no requests")
    p.add_argument("--seconds", type=float, default=30.0, help="the quiet window")
    p.add_argument("--settle", type=float, default=5.0, help="seconds to wait before it")
    p.add_argument("--out", default="docs/benchmarks.md")

    def run_idle(args: argparse.Namespace) -> int:
        from benchmarks.idle import main

        return int(main(args))

    p.set_defaults(func=run_idle)

    p = verbs.add_parser(
        "prewarm", help="the first DAG request after idle: cold starts and latency, pre-warm off vs on"
    )
    p.add_argument("-n", "--rounds", type=int, default=5, help="first-requests-after-idle per mode and pass")
    p.add_argument("--passes", type=int, default=1, help="off/on passes (each restarts the stack twice)")
    p.add_argument(
        "--keepalive",
        type=float,
        default=5.0,
        help="container keep-alive during the bench (s); above stage 1",
    )
    p.add_argument("--work", type=float, default=0.5, help="seconds the first stage works")
    p.add_argument("--out", default="docs/benchmarks.md")
    p.set_defaults(func=lambda a: int(__import__("benchmarks.prewarm", fromlist=["main"]).main(a)))

    p = verbs.add_parser("skew", help="skew of each built-in workload's parallel stage; timeline PNGs")
    p.add_argument("--inputs", type=int, default=5)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--out", default="docs/benchmarks.md")
    p.set_defaults(func=lambda a: int(__import__("benchmarks.skew", fromlist=["main"]).main(a)))

    p = verbs.add_parser("resize", help="live CPU resize: docker update vs a direct cgroup write")
    p.add_argument("-n", "--resizes", type=int, default=200, help="alternating resizes per method and state")
    p.add_argument("--out", default="docs/benchmarks.md")
    p.set_defaults(func=lambda a: int(__import__("benchmarks.resize", fromlist=["main"]).main(a)))

    p = verbs.add_parser(
        "chaos", help="kill or freeze each part during a DAG replay; completion and recovery"
    )
    p.add_argument("-n", "--requests", type=int, default=100, help="DAG requests per fault")
    p.add_argument("--rate", type=float, default=3.0, help="requests per second")
    p.add_argument("--faults", default="", help="comma-separated fault names (default: all)")
    p.add_argument("--out", default="docs/benchmarks.md")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=lambda a: int(__import__("benchmarks.chaos", fromlist=["main"]).main(a)))

    p = verbs.add_parser(
        "broker", help="one Kafka hop on a memory and an s3 broker side by side (own ports, not the stack)"
    )
    __import__("benchmarks.broker_hop", fromlist=["add_arguments"]).add_arguments(p)
    p.set_defaults(func=lambda a: int(__import__("benchmarks.broker_hop", fromlist=["main"]).main(a)))

    for verb, module, helptext in (
        ("harvest", "benchmarks.harvest", "the same requests with harvesting off, then on"),
        (
            "inference",
            "benchmarks.inference",
            "DAG requests/s and inference time through the predictor stream",
        ),
    ):
        p = verbs.add_parser(verb, help=helptext)
        p.add_argument("dag")
        p.add_argument("--inputs", type=int, default=0, help="how many inputs (default 100)")
        p.add_argument("--input-dir", help="a folder of JSON inputs (default: the workload's generator)")
        p.add_argument("--seed", type=int, default=7, help="input seed (differs from the profiling seed)")
        p.add_argument("-n", "--requests", type=int, default=2000, help="requests (inference only)")
        p.add_argument("--out", default="docs/benchmarks.md")
        p.add_argument("-q", "--quiet", action="store_true")
        p.set_defaults(func=lambda a, m=module: int(__import__(m, fromlist=["main"]).main(a)))
