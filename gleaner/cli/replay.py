"""``gleaner replay``, ``gleaner trace`` and ``gleaner eval``."""

from __future__ import annotations

import argparse
import datetime as dt
import math
from pathlib import Path

from gleaner.cli.wsk import target_flags
from gleaner.errors import BadRequest, GleanerError
from gleaner.gateway_client import OpenWhiskClient, Target
from gleaner.harvest_policies import HARVEST_POLICIES, check_policy, policies_from
from gleaner.settings import Settings, load_settings


def _client(args: argparse.Namespace) -> OpenWhiskClient:
    return OpenWhiskClient(Target.resolve(args.apihost, args.auth))


def _replay_dir(settings: Settings, args: argparse.Namespace) -> Path:
    if args.out:
        return Path(args.out)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return settings.state_dir / "replays" / stamp


def cmd_replay(args: argparse.Namespace) -> int:
    from gleaner.redis_store import RedisStore
    from monitor.evaluation import LatencySummary, SpeedupSummary, paired_speedups
    from streams.kafka.client import EventProducer, read_topic
    from streams.payloads import DataStore
    from streams.replay.lock import ReplayLock
    from streams.replay.outcomes import write_functions_csv, write_requests_csv
    from streams.replay.recorded import entries_from_events, known
    from streams.replay.runner import outcome_line
    from streams.replay.stack import replayer_for
    from streams.replay.trace import read_trace

    settings = load_settings()
    policies = policies_from(args.policy)
    if args.speed <= 0 or not math.isfinite(args.speed):
        raise BadRequest("--speed must be a positive number")
    if args.limit < 0 or args.deadline < 0:
        raise BadRequest("--limit and --deadline cannot be negative")
    if bool(args.trace) == bool(args.topic):
        raise BadRequest("give a trace file or --topic (one of them)")
    client = _client(args)
    namespace = client.namespace()
    dags = client.dag_names()
    redis = RedisStore(settings.stores)
    if args.topic:
        data = DataStore(redis, settings.inline_payload_bytes, settings.data_ttl_s)
        records = read_topic(settings.kafka, args.topic)
        entries, skipped = entries_from_events(
            [r.value for r in records],
            timestamps=[r.timestamp_ms for r in records],
            dag=args.dag,
            namespace=namespace,
            resolve=data.resolve,
            limit=args.limit,
        )
        if not entries:
            raise GleanerError(f"{args.topic} holds no DAG request to replay ({skipped} events skipped)")
        missing = known(entries, dags)
        if missing:
            raise BadRequest(f"recorded requests name DAGs that are not deployed: {', '.join(missing)}")
        source = (
            f"topic {args.topic} ({len(entries)} requests; {skipped} events skipped: malformed, "
            "profiling runs, other DAGs or namespaces, or inputs expired from the data store)"
        )
    else:
        entries = read_trace(Path(args.trace), known_dags=dags)
        if args.limit:
            entries = entries[: args.limit]
        source = f"trace {args.trace} ({len(entries)} requests)"
    out = _replay_dir(settings, args)
    producer = EventProducer(settings.kafka)
    replayer = replayer_for(settings.replay, settings.kafka, namespace, producer, redis)
    span = entries[-1].offset_s / args.speed
    print(f"replaying {source} at speed {args.speed:g} (arrivals over {span:.1f} s), policies {policies}")
    runs = []
    try:
        with ReplayLock(redis, f"gleaner replay {source}"):
            for policy in policies:
                run = replayer.run(
                    entries,
                    policy=policy,
                    speed=args.speed,
                    deadline_s=args.deadline if args.deadline else settings.dag_timeout_s + 30,
                    progress=not args.quiet,
                    label=f"replay {policy}",
                )
                runs.append(run)
                write_requests_csv(out / f"{policy}-requests.csv", run.outcomes)
                write_functions_csv(out / f"{policy}-functions.csv", run.outcomes)
    finally:
        producer.close()
        redis.close()
    print(f"\n{'policy':<8} {'sent':>5} {'ok':>5} {'failed':>6} {'unfinished':>10} {'p50 s':>8} {'p99 s':>8}")
    for run in runs:
        lat = LatencySummary.of([o.latency_ms / 1000 if o.succeeded else None for o in run.outcomes])
        print(
            f"{run.policy:<8} {len(run.outcomes):>5} {lat.n:>5} {len(run.failed):>6} "
            f"{len(run.unfinished):>10} {lat.p50:>8.2f} {lat.p99:>8.2f}"
        )
    base = runs[0]
    for run in runs[1:]:
        pairs = paired_speedups(base.latency_by_seq(), run.latency_by_seq())
        s = SpeedupSummary.from_speedups(list(pairs.values()))
        print(
            f"speedup {run.policy} vs {base.policy} over {s.n} requests: mean {s.mean:.3f}, median "
            f"{s.median:.3f}, min {s.min:.3f}, max {s.max:.3f}; slower {s.slower} ({s.slower_fraction:.0%})"
        )
    bad = [(run.policy, o) for run in runs for o in run.outcomes if not o.succeeded]
    for policy, o in bad:
        print(f"  {policy}: {outcome_line(o)}")
    print(f"per-request CSVs: {out}/")
    return 0 if not bad else 1


def cmd_trace(args: argparse.Namespace) -> int:
    from streams.replay.arrivals import synthesise
    from streams.replay.trace import write_trace
    from workloads.catalog import input_files

    settings = load_settings()
    if args.rate <= 0 or not math.isfinite(args.rate):
        raise BadRequest("--rate must be a positive number of requests per second")
    try:
        policy = check_policy(args.policy) if args.policy else None
    except ValueError as exc:  # an unknown name: a reason, not a traceback
        raise BadRequest(str(exc)) from exc
    args.inputs = args.inputs or args.requests
    inputs = input_files(args, args.dag, settings.state_dir)
    entries = synthesise(args.dag, inputs, args.requests, args.rate, args.seed, policy)
    out = Path(args.out)
    write_trace(out, entries)
    print(
        f"ok: wrote {len(entries)} arrivals of {args.dag} (Poisson, {args.rate:g}/s, seed {args.seed}, "
        f"{entries[-1].offset_s:.1f} s) to {out}"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    if args.placement:
        from benchmarks.evaluation.placement import main as compare_placement

        return int(compare_placement(args))
    from benchmarks.evaluation.run import main

    return int(main(args))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("replay", help="replay a trace (or recorded requests) open-loop to dag.requests")
    p.add_argument("trace", nargs="?", help="trace file: JSON lines or CSV (offset_s, dag, input[, policy])")
    p.add_argument("--topic", help="replay the DAG requests recorded on this topic, with their spacing")
    p.add_argument("--dag", help="with --topic: only requests of this DAG")
    p.add_argument("--limit", type=int, default=0, help="replay only the first N requests")
    p.add_argument(
        "--policy",
        default="thesis",
        help=f"harvesting policies, comma-separated, each run in turn ({', '.join(HARVEST_POLICIES)})",
    )
    p.add_argument("--speed", type=float, default=1.0, help="time scale: 2 replays twice as fast")
    p.add_argument(
        "--deadline", type=float, default=0, help="seconds after the last arrival (default: DAG timeout + 30)"
    )
    p.add_argument("--out", help="folder for the per-request CSVs (default ~/.gleaner/replays/<time>)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    target_flags(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("trace", help="synthesise a trace: seeded Poisson arrivals over a DAG's inputs")
    p.add_argument("dag")
    p.add_argument("--rate", type=float, required=True, help="arrivals per second")
    p.add_argument("-n", "--requests", type=int, default=180)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--inputs", type=int, default=0, help="distinct inputs (default: as many as requests)")
    p.add_argument("--input-dir", help="a folder of JSON inputs (default: the workload's generator)")
    p.add_argument("--policy", help="write this policy on every line")
    p.add_argument("-o", "--out", required=True, help="trace file to write (.jsonl)")
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser(
        "eval", help="the thesis's chapter 4 from real runs: three loads, policies side by side"
    )
    p.add_argument(
        "dags", nargs="*", help="built-in workloads or deployed DAGs (default: all three workloads)"
    )
    p.add_argument("--input-dir", help="a folder of JSON inputs (for a DAG that is not a built-in workload)")
    p.add_argument(
        "-n", "--requests", type=int, default=180, help="requests per load (thesis: 180); per policy too"
    )
    p.add_argument("--loads", help="default low,medium,high; with --placement, medium")
    p.add_argument(
        "--policy",
        default="off,thesis,libra,gleaner",
        help="harvesting policies compared; the first is the baseline. With --schedulers, "
        "policy@scheduler runs that policy under that scheduler only (e.g. off@fifo)",
    )
    p.add_argument(
        "--schedulers",
        help="also compare the invokers' schedulers (fifo, age, slack, lend; restarts the invokers "
        "between them): every policy runs under each; the last one's `off` is the baseline, "
        "runs under the others are named policy@scheduler",
    )
    # The placement comparison is a flag, not a subcommand: the DAGs are positional, and it
    # shares the inputs, calibration, budget, deadline and warm-up options.
    p.add_argument(
        "--placement",
        action="store_true",
        help="compare placement policies instead (thesis Figs 4.9-4.10) on 2 invokers "
        "(`gleaner up --invokers 2`), harvesting under GLEANER_HARVEST_POLICY; "
        "writes the placement-<dag> section of docs/benchmarks.md",
    )
    p.add_argument(
        "--placements",
        help="with --placement: the placement policies compared, the first the baseline "
        "(default greedy-jsq,hash,round-robin,jsq,greedy-round-robin)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="with --placement: the trace is cut into this many rounds, the policy order reversed "
        "every other round",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--calibrate", type=int, default=5, help="requests run one at a time to calibrate")
    p.add_argument("--cpu-seconds", type=float, default=0, help="skip calibration: CPU-s per request")
    p.add_argument(
        "--budget-min",
        type=float,
        default=0,
        help="minutes for the measured runs of a DAG; fewer requests to fit (--placement: 8)",
    )
    p.add_argument(
        "--max-input-kb",
        type=int,
        default=0,
        help="built-in workloads: only generated inputs up to this size",
    )
    p.add_argument("--warmup", type=int, default=6, help="unmeasured burst before each load (0: none)")
    p.add_argument("--profile-inputs", type=int, default=40, help="inputs to profile when no model exists")
    p.add_argument("--deadline", type=float, default=0, help="seconds after the last arrival per run")
    p.add_argument("--out", default="docs/eval")
    p.add_argument("-q", "--quiet", action="store_true")
    target_flags(p)
    p.set_defaults(func=cmd_eval)
