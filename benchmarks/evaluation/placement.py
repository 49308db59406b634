"""``gleaner eval <dag> --placement``: the thesis's placement comparison (Figs
4.9-4.10) on two invokers. The same synthesised trace is replayed once per
placement policy, every request harvested under the default harvesting policy,
and the section ``placement-<dag>`` of docs/benchmarks.md gets per policy the
completion time, P99, failures and each invoker's share of the activations,
against GreedyJSQ; a PNG of mean and P99 per policy goes beside the eval's.

The trace is cut into rounds, and the policies run in a counterbalanced order
per round (forward, then reversed, ...), so that no policy always runs last on
the stack that has served the most. Before each policy's run, placement is
restarted with that policy and one probe request goes through: the restart
and the consumer group's join stay out of the measured window.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.evaluation.calibrate import fit_cpu_seconds
from benchmarks.evaluation.placement_report import PlacementEvaluation, SlotRun, plot, section
from benchmarks.evaluation.placement_stack import (
    InvokerLog,
    PlacementSwitch,
    check_invokers,
    invoker_capacities,
)
from benchmarks.evaluation.run import (
    IDLE_BETWEEN_RUNS_S,
    EvalTarget,
    check_args,
    cpu_seconds_of,
    ensure_model,
    eval_targets,
    loads_from,
    node_sampler,
    run_order,
)
from benchmarks.report import write_section
from gleaner.errors import BadRequest, GleanerError
from gleaner.gateway_client import OpenWhiskClient, Target
from gleaner.redis_store import RedisStore
from gleaner.settings import Settings, load_settings
from streams.kafka.client import EventProducer
from streams.placement.policies import PLACEMENT_POLICY_FACTORIES
from streams.replay.arrivals import rate_table, synthesise
from streams.replay.lock import ReplayLock
from streams.replay.outcomes import RequestOutcome, write_requests_csv
from streams.replay.runner import Replayer, outcome_line
from streams.replay.stack import replayer_for
from streams.replay.trace import TraceEntry

# GreedyJSQ first: it is the baseline every ratio is against.
DEFAULT_POLICIES = "greedy-jsq,hash,round-robin,jsq,greedy-round-robin"
DEFAULT_LOADS = "medium"  # where the thesis quotes GreedyJSQ's 10 % over OpenWhisk's hash
DEFAULT_BUDGET_MIN = 8.0  # minutes of arrivals over all policies; about 13 min in all
DEFAULT_ROUNDS = 2
PROBE_DEADLINE_S = 120.0


def placements_from(raw: str) -> list[str]:
    names = [x.strip() for x in raw.split(",") if x.strip()]
    unknown = [x for x in names if x not in PLACEMENT_POLICY_FACTORIES]
    if unknown or len(names) < 2 or len(set(names)) != len(names):
        raise BadRequest(
            f"--placements takes two or more of {', '.join(PLACEMENT_POLICY_FACTORIES)}, each once "
            f"(the first is the baseline); got {raw!r}"
        )
    return names


def round_orders(policies: Sequence[str], rounds: int) -> list[list[str]]:
    """The policy order of each round: forward, then reversed, shifting by one every two
    rounds. Over every two rounds each policy's mean position is the same, so a stack that
    drifts as it serves (warm pools, grown logs) favours none; none is last in every round."""
    orders = []
    for r in range(rounds):
        order = run_order(list(policies), r // 2)
        orders.append(order if r % 2 == 0 else order[::-1])
    return orders


def rounds_of(trace: Sequence[TraceEntry], rounds: int) -> list[tuple[int, list[TraceEntry]]]:
    """The trace cut into ``rounds`` consecutive parts of near-equal size (no more parts than
    entries), each with the trace position of its first entry and arrivals from 0 s."""
    k = max(1, min(rounds, len(trace)))
    bounds = [round(i * len(trace) / k) for i in range(k + 1)]
    parts = []
    for lo, hi in itertools.pairwise(bounds):
        first = trace[lo].offset_s
        part = [dataclasses.replace(e, offset_s=round(e.offset_s - first, 3)) for e in trace[lo:hi]]
        parts.append((lo, part))
    return parts


def requests_for_budget(n: int, seconds_per_request: float, policies: int, budget_min: float) -> int:
    """How many requests per policy fit ``budget_min`` minutes of arrivals (at least 1, at most n)."""
    return max(1, min(n, int(budget_min * 60 / (seconds_per_request * policies))))


def _deadline(settings: Settings, n: int, cpu_seconds: float, capacity: float) -> float:
    # As the eval: room for a saturated queue to drain, never past the platform's DAG timeout.
    return min(settings.dag_timeout_s + 30, max(300.0, 4 * n * cpu_seconds / capacity))


def _write_activations_csv(
    path: Path, outcomes: Sequence[RequestOutcome], invoker_of: dict[str, str]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seq", "request_id", "activation_id", "action", "stage", "index", "invoker", "cold"])
        for o in outcomes:
            for fn in o.functions:
                inv = invoker_of.get(fn.activation_id, "")
                w.writerow(
                    [o.seq, o.request_id, fn.activation_id, fn.action, fn.stage, fn.index, inv, fn.cold]
                )


class _Comparison:
    """One DAG's comparison: the replays, the placement switches and what they came to."""

    def __init__(
        self,
        settings: Settings,
        replayer: Replayer,
        log: InvokerLog,
        switch: PlacementSwitch,
        args: argparse.Namespace,
        idle_s: float = IDLE_BETWEEN_RUNS_S,
    ) -> None:
        self.settings = settings
        self.replayer = replayer
        self.log = log
        self.switch = switch
        self.args = args
        self.harvest = settings.harvest_policy
        self.switch_s: list[float] = []
        self.idle_s = idle_s  # between runs: the last containers settle, heartbeats come in

    def use(self, policy: str, probe: TraceEntry) -> None:
        """Placement runs ``policy``, and has placed one request since it (re)started."""
        if policy == self.switch.policy and self.switch.still_ours():
            return
        began = time.monotonic()
        self.switch.use(policy)
        run = self.replayer.run([probe], policy=self.harvest, deadline_s=PROBE_DEADLINE_S, progress=False)
        if not run.outcomes[0].succeeded:
            raise GleanerError(
                f"placement restarted with {policy} did not carry a probe request through "
                f"({outcome_line(run.outcomes[0])}); its log: {self.switch.log}"
            )
        time.sleep(self.idle_s)  # both invokers' heartbeats are in its table by now
        self.switch_s.append(time.monotonic() - began)

    def compare(
        self,
        client: OpenWhiskClient,
        namespace: str,
        t: EvalTarget,
        policies: list[str],
        loads: list[str],
        capacities: dict[str, float],
    ) -> PlacementEvaluation:
        args, started = self.args, time.monotonic()
        print(f"{t.dag}: {ensure_model(client, self.settings, namespace, t, args)}")
        n = args.requests
        trace_inputs = [t.inputs[i % len(t.inputs)] for i in range(n)]
        smallest = sorted(set(trace_inputs), key=lambda p: p.stat().st_size)
        probe = TraceEntry(offset_s=0.0, dag=t.dag, input_path=smallest[0])
        self.use(policies[0], probe)  # calibration runs under the baseline
        node = node_sampler(self.settings)
        cpu_seconds, calibration = cpu_seconds_of(self.replayer, t.dag, trace_inputs, node, args)
        capacity = sum(capacities.values())
        per_request = sum(1 / r.rate_per_s for r in rate_table(cpu_seconds, capacity, 1) if r.load in loads)
        budget = args.budget_min or DEFAULT_BUDGET_MIN
        fit = requests_for_budget(n, per_request, len(policies), budget)
        if fit < n:
            t.notes.append(
                f"Requests per policy cut from {n} to {fit} to fit {budget:g} min of arrivals "
                f"(`--budget-min`, {DEFAULT_BUDGET_MIN:g} by default)."
            )
            n, trace_inputs = fit, trace_inputs[:fit]
            if calibration is not None:  # the rates follow the inputs actually replayed
                cpu_seconds = fit_cpu_seconds(
                    calibration.sample_sizes,
                    calibration.sample_cpu_seconds,
                    [p.stat().st_size for p in trace_inputs],
                )
        rows = [r for r in rate_table(cpu_seconds, capacity, n) if r.load in loads]
        rounds = max(1, min(args.rounds, n))
        orders = round_orders(policies, rounds * len(rows))
        deadline = args.deadline or _deadline(self.settings, math.ceil(n / rounds), cpu_seconds, capacity)
        smallest = sorted(set(trace_inputs), key=lambda p: p.stat().st_size)
        print(
            f"{t.dag}: {cpu_seconds:.2f} CPU-s per request; invokers {capacities}; harvest `{self.harvest}`; "
            f"{len(policies)} policies x {n} requests: about {n * per_request * len(policies) / 60:.0f} min "
            "of arrivals, plus a placement restart before each run"
        )
        slots: list[SlotRun] = []
        notes, order_notes = list(t.notes), []
        total, k = len(rows) * rounds * len(policies), 0
        for li, row in enumerate(rows):
            print(f"  {row.load}: {row.rate_per_min:.2f}/min, offered {row.offered_load:.0%}, {n} requests")
            trace = synthesise(t.dag, trace_inputs, n, row.rate_per_s, args.seed)
            for r, (start, part) in enumerate(rounds_of(trace, rounds)):
                order = orders[li * rounds + r]
                order_notes.append(f"{row.load} {r + 1}: {', '.join(order)}")
                for policy in order:
                    k += 1
                    self.use(policy, probe)
                    if r == 0 and policy == order[0] and args.warmup:
                        # Unmeasured: the pools hold about as many warm containers as the load keeps busy.
                        burst = [TraceEntry(0.0, t.dag, input_path=p) for p in smallest[: args.warmup]]
                        self.replayer.run(burst, policy=self.harvest, deadline_s=deadline, progress=False)
                    self.log.take([])  # forget the probe's and warm-up's activations
                    run = self.replayer.run(
                        part,
                        policy=self.harvest,
                        deadline_s=deadline,
                        progress=not args.quiet,
                        label=f"{t.dag} {row.load} {policy} ({k}/{total})",
                    )
                    for o in run.outcomes:
                        o.seq += start  # trace positions, so rounds line up across policies
                    invoker_of = self.log.take([f.activation_id for o in run.outcomes for f in o.functions])
                    restarted = not self.switch.still_ours()
                    if restarted:
                        notes.append(
                            f"Placement was restarted by someone else during {policy}'s round {r + 1} at "
                            f"{row.load} load: that round's later activations went by the stack's own policy."
                        )
                    slots.append(SlotRun(row.load, r, policy, run.outcomes, invoker_of, restarted))
                    time.sleep(self.idle_s)
        return PlacementEvaluation(
            dag=t.dag,
            harvest_policy=self.harvest,
            policies=policies,
            rows=rows,
            requests=n,
            rounds=rounds,
            orders=order_notes,
            cpu_seconds=cpu_seconds,
            capacities=capacities,
            deadline_s=deadline,
            seconds=time.monotonic() - started,
            switch_s=self.switch_s,
            slots=slots,
            notes=notes,
        )


def write_outputs(ev: PlacementEvaluation, out: Path) -> str:
    """The PNG, the per-request CSVs and the section in docs/benchmarks.md; the section's text."""
    image = plot(ev, out / "img" / f"{ev.dag}-placement.png")
    for row in ev.rows:
        for policy in ev.policies:
            mine = [s for s in ev.slots if s.load == row.load and s.policy == policy]
            outcomes = sorted((o for s in mine for o in s.outcomes), key=lambda o: o.seq)
            invoker_of = {a: i for s in mine for a, i in s.invoker_of.items()}
            base = out / "data" / ev.dag / f"placement-{row.load}-{policy}"
            write_requests_csv(base.with_name(base.name + "-requests.csv"), outcomes)
            _write_activations_csv(base.with_name(base.name + "-activations.csv"), outcomes, invoker_of)
    bench = out.parent / "benchmarks.md"
    body = section(ev, os.path.relpath(image, bench.parent))
    write_section(bench, f"placement-{ev.dag}", body)
    return body


def main(args: argparse.Namespace) -> int:
    settings = load_settings()
    policies = placements_from(args.placements or DEFAULT_POLICIES)
    loads = loads_from(args.loads or DEFAULT_LOADS)
    check_args(args)
    if args.rounds < 1:
        raise BadRequest("--rounds must be at least 1")
    client = OpenWhiskClient(Target.resolve(args.apihost, args.auth))
    capacities = invoker_capacities(client)
    check_invokers(capacities)
    settings = dataclasses.replace(settings, invokers=len(capacities))
    switch = PlacementSwitch(settings)
    switch.check()
    namespace = client.namespace()
    targets = eval_targets(args, settings, client, namespace)
    redis = RedisStore(settings.stores)
    producer = EventProducer(settings.kafka)
    base = replayer_for(settings.replay, settings.kafka, namespace, producer, redis)
    log = InvokerLog(settings.completed_topic)
    replayer = Replayer(
        base.producer, log.listening(base.listen), base.topics, namespace, offload=base.offload
    )
    out = Path(args.out)
    try:
        with ReplayLock(redis, f"gleaner eval --placement {' '.join(t.dag for t in targets)}"):
            try:
                for t in targets:
                    comparison = _Comparison(settings, replayer, log, switch, args)
                    ev = comparison.compare(client, namespace, t, policies, loads, capacities)
                    print(write_outputs(ev, out))
            finally:
                if switch.policy not in (None, settings.placement_policy):
                    switch.use(settings.placement_policy)  # the stack's own policy back
                    print(f"placement runs {settings.placement_policy} again")
    finally:
        producer.close()
        redis.close()
    return 0
