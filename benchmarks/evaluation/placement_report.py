"""The placement comparison's figures (thesis Figs 4.9-4.10): per policy, the
completion time of its requests, P99, failures and how its activations spread
over the invokers, each against GreedyJSQ. Pure but for the PNG writer.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from monitor.evaluation import LatencySummary
from streams.replay.arrivals import LoadRow
from streams.replay.outcomes import RequestOutcome
from streams.replay.runner import outcome_line

BASELINE = "greedy-jsq"
THESIS = (
    "Thesis (2 invokers of 8 cores, Figs 4.9-4.10): GreedyJSQ had the lowest workload completion time, "
    "about 10 % below OpenWhisk's hash placement at medium load, with Greedy RR second; its P99 led "
    "more clearly as the load grew."
)
_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")


@dataclass(frozen=True, slots=True)
class SlotRun:
    """One policy's replay of one round's part of a load's trace."""

    load: str
    round: int
    policy: str
    outcomes: list[RequestOutcome]
    invoker_of: dict[str, str]  # activation id -> the invoker that ran it
    placement_restarted: bool = False  # placement was restarted by someone else during the run


@dataclass(frozen=True, slots=True)
class PolicySummary:
    load: str
    policy: str
    requests: int
    ok: int
    failed: int
    unfinished: int
    mean_s: float  # end-to-end latency of the requests that succeeded
    p50_s: float
    p99_s: float
    completion_s: float  # workload completion (Fig 4.9): per round, first send to last answer, summed
    activations: dict[str, int]  # invoker -> activations it ran
    one_invoker: float  # share of succeeded requests whose functions all ran on one invoker


@dataclass(slots=True)
class PlacementEvaluation:
    dag: str
    harvest_policy: str
    policies: list[str]  # the first is the baseline
    rows: list[LoadRow]
    requests: int  # per policy and load
    rounds: int
    orders: list[str]  # the policy order of every round, as run
    cpu_seconds: float
    capacities: dict[str, float]  # invoker -> cores
    deadline_s: float
    seconds: float  # the whole comparison, calibration and restarts included
    switch_s: list[float]  # each placement restart and its probe request (not measured)
    slots: list[SlotRun]
    notes: list[str] = field(default_factory=list)


def completion_span_s(outcomes: Sequence[RequestOutcome]) -> float:
    """From the first request sent to the last answer received; NaN while any is unfinished."""
    if not outcomes or any(not o.finished for o in outcomes):
        return math.nan
    sent = [o.sent_s for o in outcomes if math.isfinite(o.sent_s)]
    done = [o.sent_s + o.latency_ms / 1000 for o in outcomes if math.isfinite(o.latency_ms)]
    return max(done) - min(sent) if sent and done else math.nan


def _one_invoker(outcomes: Sequence[RequestOutcome], invoker_of: dict[str, str]) -> float:
    spreads = [
        len(seen)
        for o in outcomes
        if o.succeeded
        and (seen := {invoker_of[f.activation_id] for f in o.functions if f.activation_id in invoker_of})
    ]
    return sum(n == 1 for n in spreads) / len(spreads) if spreads else math.nan


def summarise(slots: Sequence[SlotRun], policies: Sequence[str], loads: Sequence[str]) -> list[PolicySummary]:
    """One summary per load and policy (in that order), over all of its rounds."""
    out = []
    for load in loads:
        for policy in policies:
            mine = [s for s in slots if s.load == load and s.policy == policy]
            outcomes = [o for s in mine for o in s.outcomes]
            lat = LatencySummary.of([o.latency_ms / 1000 if o.succeeded else None for o in outcomes])
            invoker_of = {a: i for s in mine for a, i in s.invoker_of.items()}
            spans = [completion_span_s(s.outcomes) for s in mine]
            out.append(
                PolicySummary(
                    load=load,
                    policy=policy,
                    requests=len(outcomes),
                    ok=lat.n,
                    failed=sum(o.finished and not o.succeeded for o in outcomes),
                    unfinished=sum(not o.finished for o in outcomes),
                    mean_s=lat.mean,
                    p50_s=lat.p50,
                    p99_s=lat.p99,
                    completion_s=math.fsum(spans) if spans else math.nan,
                    activations=dict(Counter(invoker_of.values())),
                    one_invoker=_one_invoker(outcomes, invoker_of),
                )
            )
    return out


def ratio(value: float, base: float) -> float:
    return value / base if math.isfinite(value) and math.isfinite(base) and base > 0 else math.nan


def _f(x: float, spec: str = ".2f") -> str:
    return format(x, spec) if math.isfinite(x) else "n/a"


def _with_ratio(value: float, base: float, is_base: bool, spec: str = ".2f") -> str:
    r = ratio(value, base)
    return f"{_f(value, spec)} ({r:.2f}x)" if not is_base and math.isfinite(r) else _f(value, spec)


def shares(activations: dict[str, int], invokers: Sequence[str]) -> str:
    """``invoker0 52 % / invoker1 48 %``; an invoker that ran nothing shows 0 %."""
    total = sum(activations.values())
    if not total:
        return "n/a"
    names = sorted(set(invokers) | set(activations))
    return " / ".join(f"{i} {100 * activations.get(i, 0) / total:.0f} %" for i in names)


def table(summaries: Sequence[PolicySummary], invokers: Sequence[str], baseline: str = BASELINE) -> list[str]:
    """Markdown rows; every figure but the baseline's carries its ratio to the baseline's."""
    base = {s.load: s for s in summaries if s.policy == baseline}
    lines = [
        "| load | policy | requests | ok | failed | unfinished | mean (s) | P50 (s) | P99 (s) "
        "| workload completion (s) | activations per invoker | requests on one invoker |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        b = base.get(s.load, s)
        is_base = s.policy == baseline
        lines.append(
            f"| {s.load} | {s.policy} | {s.requests} | {s.ok} | {s.failed} | {s.unfinished} "
            f"| {_with_ratio(s.mean_s, b.mean_s, is_base)} | {_with_ratio(s.p50_s, b.p50_s, is_base)} "
            f"| {_with_ratio(s.p99_s, b.p99_s, is_base)} "
            f"| {_with_ratio(s.completion_s, b.completion_s, is_base, '.1f')} "
            f"| {shares(s.activations, invokers)} | {_f(100 * s.one_invoker, '.0f')} % |"
        )
    return lines


def section(ev: PlacementEvaluation, plot_link: str) -> str:
    """The comparison's section of docs/benchmarks.md."""
    summaries = summarise(ev.slots, ev.policies, [r.load for r in ev.rows])
    invokers = sorted(ev.capacities)
    cores = " + ".join(f"{ev.capacities[i]:g}" for i in invokers)
    loads = "; ".join(
        f"{r.load}: {r.rate_per_min:.1f} req/min, offered {r.offered_load:.0%}" for r in ev.rows
    )
    switch = statistics.fmean(ev.switch_s) if ev.switch_s else math.nan
    bad = [
        f"- {s.load} / {s.policy} (round {s.round + 1}): {outcome_line(o)}"
        for s in ev.slots
        for o in s.outcomes
        if not o.succeeded
    ]
    lines = [
        f"## Placement policies under load, {ev.dag} (thesis Figs 4.9-4.10)",
        "",
        f"{ev.requests} requests per policy and load on {len(invokers)} invokers ({cores} cores; {loads}; "
        f"synthesised Poisson arrivals at {ev.cpu_seconds:.2f} CPU-s per request), every request harvested "
        f"under `{ev.harvest_policy}`. The same trace for every policy, cut into {ev.rounds} rounds; the "
        f"policy order per round: {' | '.join(ev.orders)}. Before each policy's run placement was restarted "
        f"with it and one probe request went through (mean {_f(switch, '.1f')} s, not measured). "
        f"Latency is end to end (request produced to `dag.result`); workload completion sums, per round, "
        f"the first send to the last answer. In brackets: the ratio to `{ev.policies[0]}`. "
        f"The comparison took {ev.seconds / 60:.1f} min.",
        "",
        *table(summaries, invokers, ev.policies[0]),
        "",
        THESIS,
        "",
        f"![mean and P99 per placement policy]({plot_link})",
    ]
    if ev.notes:
        lines += ["", *[f"- {n}" for n in ev.notes]]
    if bad:
        more = f" (the first 10 of {len(bad)})" if len(bad) > 10 else ""
        lines += ["", f"Requests that did not succeed{more}:", "", *bad[:10]]
    return "\n".join(lines)


def plot(ev: PlacementEvaluation, out: Path) -> Path:
    """Bars of mean completion time and P99 per policy, grouped by load (Figs 4.9-4.10)."""
    loads = [r.load for r in ev.rows]
    by = {(s.load, s.policy): s for s in summarise(ev.slots, ev.policies, loads)}
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, squeeze=False)[0]
    width = 0.8 / max(len(ev.policies), 1)
    panels = (("mean_s", "Mean completion time of a request"), ("p99_s", "P99 end-to-end latency"))
    for ax, (attr, title) in zip(axes, panels, strict=True):
        for k, policy in enumerate(ev.policies):
            values = [getattr(by[(load, policy)], attr) for load in loads]
            xs = [i - 0.4 + width * (k + 0.5) for i in range(len(loads))]
            bars = ax.bar(
                xs,
                [v if math.isfinite(v) else 0.0 for v in values],  # a missing bar is labelled n/a
                width,
                color=_COLORS[k % len(_COLORS)],
                label=policy,
            )
            ax.bar_label(bars, [_f(v) for v in values], fontsize=7, padding=2)
        ax.set_xticks(range(len(loads)), [f"{load} load" for load in loads])
        ax.set(title=title, ylabel="seconds")
        ax.margins(y=0.15)  # room for the value labels
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8)
    fig.suptitle(f"{ev.dag}: placement policies on {len(ev.capacities)} invokers", fontsize=11)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=110)
    return out
