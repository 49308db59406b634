"""``gleaner eval``: per DAG, make sure a model exists (profile and train if
not), calibrate, then at each load replay one synthesised trace once per
policy, and write the report (``docs/eval/<dag>.md``) with its plots and the
per-request CSVs.

Everything is checked before anything runs: the DAGs are deployed, inputs
exist, the policies and loads are known, and no other replay holds the stack.
``gleaner eval --placement`` compares placement policies instead, with the
same inputs, calibration and budget: see :mod:`benchmarks.evaluation.placement`.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.evaluation import scheduling_verdict
from benchmarks.evaluation.calibrate import Calibration, calibrate, fit_cpu_seconds, spread
from benchmarks.evaluation.report import write_report
from benchmarks.evaluation.results import DagEvaluation, LoadResult, PolicyRun
from benchmarks.evaluation.scheduler_switch import SchedulerSwitch, label, schedulers_from
from gleaner.errors import BadRequest, GleanerError
from gleaner.gateway_client import OpenWhiskClient, Target
from gleaner.harvest_policies import policies_from
from gleaner.redis_store import RedisStore
from gleaner.settings import Settings, load_settings
from monitor.utilisation import NodeUtilisation, UtilisationSummary
from streams.kafka.client import EventProducer
from streams.replay.arrivals import LOAD_FRACTIONS, rate_table, synthesise
from streams.replay.lock import ReplayLock
from streams.replay.outcomes import write_functions_csv, write_requests_csv
from streams.replay.runner import Replayer
from streams.replay.stack import replayer_for
from streams.replay.trace import TraceEntry

PROFILE_SEED = 1  # the eval's inputs use another seed: the model never saw them
IDLE_BETWEEN_RUNS_S = 3.0
DEFAULT_LOADS = "low,medium,high"


@dataclass(slots=True)
class EvalTarget:
    dag: str
    inputs: list[Path]
    builtin: bool
    notes: list[str] = field(default_factory=list)


def run_order(policies: list[Any], load_index: int) -> list[Any]:
    """The order the policies run in at the ``load_index``-th load: rotated by one per load, so
    that no policy always runs last, on a stack that has served the most requests by then."""
    k = load_index % len(policies)
    return policies[k:] + policies[:k]


Variant = tuple[str, str | None]  # (harvesting policy, invoker scheduler; None: as the stack runs)


def variants_of(policies: list[str], schedulers: list[str], pinned: Sequence[Variant] = ()) -> list[Variant]:
    """Every policy under every scheduler not only ``pinned`` to, the last scheduler's first
    policy first (the baseline: the new default's ``off``); then each pinned ``policy@scheduler``
    under its one scheduler. Pure."""
    if not schedulers:
        return [(p, None) for p in policies]
    last: str | None = schedulers[-1]
    only_pinned = {s for _, s in pinned}
    out: list[Variant] = [(p, last) for p in policies]
    out += [(p, s) for s in schedulers[:-1] if s not in only_pinned for p in policies]
    return out + [v for v in pinned if v not in out]


def pinned_from(raw: str, schedulers: list[str]) -> tuple[str, list[Variant], list[str]]:
    """Splits ``off,gleaner,off@fifo`` into the plain policies (``off,gleaner``), the pinned
    runs ([("off", "fifo")]) and the schedulers to switch between: each pinned one, then
    ``schedulers`` (the last of which the plain policies run under). Pure."""
    plain: list[str] = []
    pinned: list[Variant] = []
    for entry in (x.strip() for x in raw.split(",")):
        if "@" not in entry:
            plain.append(entry)
            continue
        policy, _, scheduler = entry.partition("@")
        pinned.append((policies_from(policy)[0], schedulers_from(scheduler)[0]))
    if pinned and not schedulers:
        raise BadRequest(
            "a policy@scheduler run needs --schedulers: the scheduler the other policies run under"
        )
    extra = [s for _, s in pinned if s is not None and s not in schedulers]
    return ",".join(plain), pinned, list(dict.fromkeys(extra)) + schedulers


def variant_order(variants: list[Variant], load_index: int) -> list[Variant]:
    """Scheduler by scheduler (a switch restarts the invokers), the schedulers and the
    policies within each rotated per load, so that none always runs first or last. Pure."""
    schedulers = list(dict.fromkeys(s for _, s in variants))
    out: list[Variant] = []
    for s in run_order(schedulers, load_index):
        out += run_order([v for v in variants if v[1] == s], load_index)
    return out


def loads_from(raw: str) -> list[str]:
    loads = [x.strip() for x in raw.split(",") if x.strip()]
    unknown = [x for x in loads if x not in LOAD_FRACTIONS]
    if not loads or unknown:
        raise BadRequest(f"--loads takes {', '.join(LOAD_FRACTIONS)}; got {raw!r}")
    return loads


def _inputs(
    args: argparse.Namespace, dag: str, settings: Settings, n: int, seed: int
) -> tuple[list[Path], bool]:
    from workloads.catalog import WORKLOADS

    if args.input_dir:
        files = sorted(Path(args.input_dir).glob("*.json"))
        if not files:
            raise BadRequest(f"{args.input_dir} holds no .json inputs")
        return files, dag in WORKLOADS
    if dag not in WORKLOADS:
        raise BadRequest(f"{dag} is not a built-in workload ({', '.join(WORKLOADS)}): pass --input-dir")
    out = settings.state_dir / "inputs" / dag / f"seed{seed}"
    if not args.max_input_kb:
        return WORKLOADS[dag].generate_inputs(n, seed, out), True
    # The generator's sizes are seeded per index: generate more and keep those under the cap, in order.
    cap = args.max_input_kb * 1024
    for total in (2 * n, 4 * n, 8 * n, 16 * n):
        kept = [p for p in WORKLOADS[dag].generate_inputs(total, seed, out) if p.stat().st_size <= cap]
        if len(kept) >= n:
            return kept[:n], True
    raise BadRequest(f"fewer than {n} of {16 * n} generated inputs of {dag} are under {args.max_input_kb} KB")


def node_sampler(settings: Settings) -> Callable[[], Callable[[], UtilisationSummary]]:
    def start() -> Callable[[], UtilisationSummary]:
        return (
            NodeUtilisation(settings.invoker_cpu_capacity, settings.invoker_memory_capacity_mb).start().stop
        )

    return start


def ensure_model(
    client: OpenWhiskClient, settings: Settings, namespace: str, t: EvalTarget, args: argparse.Namespace
) -> str:
    """A note on where the model came from; profiles and trains when there is none."""
    from predictor.dataset import dataset_path
    from predictor.profiler import profile_dag
    from predictor.store import load_current
    from predictor.train import train_dag

    current = load_current(settings.models_root, namespace, t.dag)
    if current is not None:
        return f"model v{current.version} (already trained)"
    if t.builtin and not args.input_dir:
        from workloads.catalog import WORKLOADS

        out = settings.state_dir / "inputs" / t.dag / f"seed{PROFILE_SEED}"
        files = WORKLOADS[t.dag].generate_inputs(args.profile_inputs, PROFILE_SEED, out)
        where = f"{len(files)} generated inputs (seed {PROFILE_SEED})"
    else:
        files = t.inputs[: args.profile_inputs]
        where = f"the first {len(files)} inputs of {args.input_dir} (the eval replays them too)"
    dataset = dataset_path(settings.state_dir, namespace, t.dag)
    started = time.monotonic()
    profiled = profile_dag(client, t.dag, files, dataset, progress=not args.quiet)
    if not profiled.rows:
        raise GleanerError(f"profiling {t.dag} gave no rows: {profiled.skipped}")
    trained = train_dag(
        dataset,
        settings.models_root,
        namespace,
        t.dag,
        settings,
        Path("docs/models"),
        progress=not args.quiet,
    )
    took = time.monotonic() - started
    return (
        f"no model existed: profiled on {where} ({profiled.requests} requests, {profiled.failed} failed) "
        f"and trained {trained.version_dir.name} in {took / 60:.1f} min"
    )


def cpu_seconds_of(
    replayer: Replayer,
    dag: str,
    trace_inputs: list[Path],
    node: Callable[[], Callable[[], UtilisationSummary]],
    args: argparse.Namespace,
) -> tuple[float, Calibration | None]:
    """CPU-seconds per request of the trace: given (``--cpu-seconds``) or calibrated."""
    if args.cpu_seconds:
        return float(args.cpu_seconds), None
    samples = spread(sorted(set(trace_inputs), key=lambda p: p.stat().st_size), args.calibrate)
    sizes = [p.stat().st_size for p in trace_inputs]
    calibration = calibrate(replayer, dag, samples, sizes, node, progress=not args.quiet)
    return calibration.cpu_seconds, calibration


def evaluate(
    client: OpenWhiskClient,
    settings: Settings,
    namespace: str,
    replayer: Replayer,
    t: EvalTarget,
    args: argparse.Namespace,
    policies: list[str],
    loads: list[str],
    schedulers: list[str] | None = None,
    switch: SchedulerSwitch | None = None,
    pinned: list[Variant] | None = None,
) -> DagEvaluation:
    started_wall = time.time()
    started = time.monotonic()
    progress = not args.quiet
    model_note = ensure_model(client, settings, namespace, t, args)
    print(f"{t.dag}: {model_note}")
    n = args.requests
    trace_inputs = [t.inputs[i % len(t.inputs)] for i in range(n)]
    sizes = [p.stat().st_size for p in trace_inputs]
    node = node_sampler(settings)
    cpu_seconds, calibration = cpu_seconds_of(replayer, t.dag, trace_inputs, node, args)
    capacity = settings.invoker_cpu_capacity
    if args.budget_min:
        # Replaying N requests at every load, once per policy, takes about N * sum(1 / rate) * policies.
        per_request = sum(1 / r.rate_per_s for r in rate_table(cpu_seconds, capacity, 1) if r.load in loads)
        runs = len(variants_of(policies, schedulers or [], pinned or []))
        fit = max(1, int(args.budget_min * 60 / (per_request * runs)))
        if fit < n:
            t.notes.append(
                f"Requests per load cut from {n} to {fit} to fit the {args.budget_min:g} min budget "
                f"(`--budget-min`): at {cpu_seconds:.2f} CPU-s per request, {n} requests per load would "
                f"take about {n * per_request * runs / 60:.0f} min."
            )
            n = fit
            trace_inputs = trace_inputs[:n]
            if calibration is not None:  # the rates follow the inputs actually replayed
                cpu_seconds = fit_cpu_seconds(
                    calibration.sample_sizes, calibration.sample_cpu_seconds, sizes[:n]
                )
    variants = variants_of(policies, schedulers or [], pinned or [])
    default = schedulers[-1] if schedulers else None
    names = [label(p, s, default) for p, s in variants]
    rows = [r for r in rate_table(cpu_seconds, capacity, n) if r.load in loads]
    print(f"{t.dag}: {cpu_seconds:.2f} CPU-s per request at user allocations; {capacity:g} cores")
    for r in rows:
        print(
            f"  {r.load:<7} {r.rate_per_min:7.2f}/min ({r.rate_per_s:.3f}/s, offered {r.offered_load:.0%}) "
            f"thesis {r.thesis_per_min:g}/min; arrivals over {r.expected_duration_s / 60:.1f} min"
        )
    if args.deadline:
        deadline = float(args.deadline)
    else:
        # Long enough for a saturated queue to drain (the invoker admits by allocation, so it can
        # saturate at half its CPU: 4x the trace's CPU work), never past the platform's DAG timeout.
        typical = calibration.mean_latency_s if calibration and calibration.samples else 60.0
        drain = 4 * n * cpu_seconds / capacity
        deadline = min(settings.dag_timeout_s + 30, max(300.0, 20 * typical, drain))
    results: list[LoadResult] = []
    data_dir = Path(args.out) / "data" / t.dag
    smallest = sorted(set(trace_inputs), key=lambda p: p.stat().st_size)[: args.warmup]
    orders: list[str] = []
    for load_index, row in enumerate(rows):
        trace = synthesise(t.dag, trace_inputs, n, row.rate_per_s, args.seed)
        ran: dict[str, PolicyRun] = {}
        order = variant_order(variants, load_index)
        orders.append(f"{row.load}: {', '.join(label(p, s, default) for p, s in order)}")
        warmed: str | bool | None = False  # the scheduler whose pool was warmed last
        for policy, scheduler in order:
            if switch is not None and scheduler is not None:
                switch.use(scheduler)
            if smallest and warmed != scheduler:
                # A burst of small requests first, unmeasured: the pool then holds about as many
                # warm containers as the load keeps busy, so the first policy does not pay cold
                # starts that the next one is spared (again after a scheduler switch: the
                # restarted invokers start with no containers).
                burst = [TraceEntry(offset_s=0.0, dag=t.dag, input_path=p) for p in smallest]
                replayer.run(burst, policy=policies[0], deadline_s=deadline, progress=False)
                warmed = scheduler
            name = label(policy, scheduler, default)
            stop = node()
            run = replayer.run(
                trace,
                policy=policy,
                deadline_s=deadline,
                progress=progress,
                label=f"{t.dag} {row.load} {name}",
            )
            used = stop()
            write_requests_csv(data_dir / f"{row.load}-{name}-requests.csv", run.outcomes)
            write_functions_csv(data_dir / f"{row.load}-{name}-functions.csv", run.outcomes)
            ran[name] = PolicyRun(name, run, used)
            time.sleep(IDLE_BETWEEN_RUNS_S)  # let the last containers settle before the next run
        results.append(LoadResult(row, [ran[p] for p in names]))  # the baseline first
    return DagEvaluation(
        dag=t.dag,
        namespace=namespace,
        policies=names,
        requests=n,
        distinct_inputs=len(set(trace_inputs)),
        seed=args.seed,
        cpu_seconds=cpu_seconds,
        calibration=calibration,
        capacity_cores=capacity,
        memory_capacity_mb=settings.invoker_memory_capacity_mb,
        model_note=model_note,
        deadline_s=deadline,
        loads=results,
        started_wall=started_wall,
        seconds=time.monotonic() - started,
        notes=[
            *t.notes,
            f"Before each load, a burst of {len(smallest)} small requests (unmeasured, policy "
            f"`{policies[0]}`) warms the container pool.",
            f"Policies run in a rotated order per load ({'; '.join(orders)}), so that no policy "
            "always runs last, on a stack that has served the most requests by then.",
            *(
                [
                    f"Invoker schedulers compared: {', '.join(schedulers)} (`--schedulers`); the "
                    "invokers are restarted with each, and the pool warmed again, outside the "
                    f"measured runs. Runs under `{default}` carry the policy's name alone."
                ]
                if schedulers
                else []
            ),
        ],
    )


def check_args(args: argparse.Namespace) -> None:
    """The options both comparisons (policies, placement) share."""
    if args.requests < 1:
        raise BadRequest("--requests must be at least 1")
    if args.calibrate < 1 and not args.cpu_seconds:
        raise BadRequest("--calibrate needs at least 1 request (or give --cpu-seconds)")
    if args.cpu_seconds and (args.cpu_seconds < 0 or not math.isfinite(args.cpu_seconds)):
        raise BadRequest("--cpu-seconds must be a positive number")


def eval_targets(
    args: argparse.Namespace, settings: Settings, client: OpenWhiskClient, namespace: str
) -> list[EvalTarget]:
    """The DAGs to evaluate (default: every built-in workload), each deployed and with its inputs."""
    from workloads.catalog import WORKLOADS

    deployed = client.dag_names()
    targets: list[EvalTarget] = []
    for dag in args.dags or list(WORKLOADS):
        if dag not in deployed:
            hint = f"`gleaner workload deploy {dag}`" if dag in WORKLOADS else "`gleaner dag create`"
            raise BadRequest(f"DAG {dag} is not deployed in namespace {namespace}: run {hint} first")
        inputs, builtin = _inputs(args, dag, settings, args.requests, args.seed)
        target = EvalTarget(dag, inputs, builtin)
        if args.max_input_kb and not args.input_dir:
            target.notes.append(
                f"Inputs limited to at most {args.max_input_kb} KB (`--max-input-kb`): generated in seed "
                "order, larger ones skipped, to fit the run in time."
            )
        targets.append(target)
    return targets


def main(args: argparse.Namespace) -> int:
    settings = load_settings()
    plain, pinned, schedulers = pinned_from(args.policy, schedulers_from(getattr(args, "schedulers", None)))
    policies = policies_from(plain)
    if len(policies) + len(pinned) < 2:
        raise BadRequest("--policy needs a baseline and at least one policy to compare, e.g. off,thesis")
    loads = loads_from(args.loads or DEFAULT_LOADS)
    check_args(args)
    client = OpenWhiskClient(Target.resolve(args.apihost, args.auth))
    switch = SchedulerSwitch(settings, client) if schedulers else None
    if switch is not None:
        switch.check()
    namespace = client.namespace()
    targets = eval_targets(args, settings, client, namespace)
    redis = RedisStore(settings.stores)
    producer = EventProducer(settings.kafka)
    replayer = replayer_for(settings.replay, settings.kafka, namespace, producer, redis)
    out = Path(args.out)
    try:
        with ReplayLock(redis, f"gleaner eval {' '.join(t.dag for t in targets)}"):
            for t in targets:
                evaluation = evaluate(
                    client,
                    settings,
                    namespace,
                    replayer,
                    t,
                    args,
                    policies,
                    loads,
                    schedulers,
                    switch,
                    pinned,
                )
                # The headline goes to docs/benchmarks.md when the report goes beside it.
                bench = out.parent / "benchmarks.md"
                report = write_report(
                    evaluation, out, bench if bench.exists() else None, scheduling_verdict.section(evaluation)
                )
                print(report.read_text())
                print(f"\nreport: {report}")
    finally:
        producer.close()
        redis.close()
    return 0
