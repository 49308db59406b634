"""Issue 20's targets (one scheduler across requests), read off an evaluation. Pure.

Each comparison pairs two runs of the same trace in the same evaluation: the
default policy against ``off`` under the same scheduler, against the
OpenWhisk-style baseline, and ``off`` under the new scheduler against ``off``
under FIFO (``off@fifo``), which is the scheduler's own gain without harvesting.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from benchmarks.evaluation.results import DagEvaluation, LoadResult, PolicyRun
from benchmarks.evaluation.verdict import OURS, VIDEO_MEAN_TARGET, fmt, met
from monitor.evaluation import LatencySummary, paired_speedups

BASE = "off"
OPENWHISK = "openwhisk"
SLOWER_SHARE = 0.05  # slower than its twin by more than 5 % ...
SLOWER_MS = 50.0  # ... and by more than 50 ms
MEAN_TARGETS = {"low": 0.40, "medium": 0.40, "high": 0.30}
P99_RATIO_TARGET = 0.6  # at medium and high
P50_HIGH_OVER_LOW = 3.0
UTIL_HIGH_TARGET = 0.70
SLO_FACTOR = 3.0  # the SLO: this many times the DAG's mean latency when requests come one at a time


@dataclass(frozen=True, slots=True)
class Pair:
    """One policy's run against another's at one load, request by request."""

    load: str
    policy: str
    against: str
    paired: int
    slower: int  # slower than the twin by more than 5 % and 50 ms
    worst_ms: float  # the largest loss against the twin (ms; <= 0: none slower)
    mean_speedup: float
    mine: LatencySummary  # seconds
    theirs: LatencySummary


def _run(lr: LoadResult, name: str) -> PolicyRun | None:
    return next((pr for pr in lr.runs if pr.policy == name), None)


def _summary(pr: PolicyRun) -> LatencySummary:
    return LatencySummary.of([o.latency_ms / 1000 for o in pr.run.outcomes if o.succeeded])


def pair(lr: LoadResult, policy: str, against: str) -> Pair | None:
    ours, base = _run(lr, policy), _run(lr, against)
    if ours is None or base is None:
        return None
    a, b = ours.run.latency_by_seq(), base.run.latency_by_seq()
    twins = [(x, y) for k, x in a.items() if x is not None and (y := b.get(k)) is not None]
    slower = sum(1 for x, y in twins if x > y * (1 + SLOWER_SHARE) and x - y > SLOWER_MS)
    speedups = list(paired_speedups(b, a).values())
    return Pair(
        lr.load,
        policy,
        against,
        len(twins),
        slower,
        max((x - y for x, y in twins), default=math.nan),
        statistics.fmean(speedups) if speedups else math.nan,
        _summary(ours),
        _summary(base),
    )


def pairs_table(ev: DagEvaluation) -> list[str]:
    """Every comparison the targets read, with absolutes beside the ratios."""
    lines = [
        "| load | policy | against | paired | slower (>5 % and >50 ms) | worst loss (s) | mean speedup "
        "| P50 (s) | their P50 | P99 (s) | their P99 | P99 ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in _pairs(ev):
        lines.append(
            f"| {p.load} | {p.policy} | {p.against} | {p.paired} | {p.slower} | {fmt(p.worst_ms / 1000)} | "
            f"{fmt(p.mean_speedup)} | {fmt(p.mine.p50)} | {fmt(p.theirs.p50)} | {fmt(p.mine.p99)} | "
            f"{fmt(p.theirs.p99)} | {fmt(p.mine.p99 / p.theirs.p99 if p.theirs.p99 else math.nan)} |"
        )
    return lines


def _pairs(ev: DagEvaluation) -> list[Pair]:
    out = []
    for lr in ev.loads:
        for policy, against in (
            (OURS, BASE),
            (f"{OURS}@fifo", f"{BASE}@fifo"),
            (OURS, OPENWHISK),
            (BASE, OPENWHISK),
            (BASE, f"{BASE}@fifo"),
            (OURS, f"{OURS}@fifo"),
        ):
            p = pair(lr, policy, against)
            if p is not None:
                out.append(p)
    return out


def targets_table(ev: DagEvaluation) -> list[str]:
    """Issue 20's targets for the default policy, each with the measured figure."""
    lines = ["| target | load | measured | met |", "|---|---|---|---|"]
    p50: dict[str, float] = {}
    for lr in ev.loads:
        p = pair(lr, OURS, BASE)
        if p is None:
            continue
        p50[lr.load] = p.mine.p50
        lines.append(
            f"| no request slower than its `off` twin by > 5 % and 50 ms | {lr.load} | "
            f"{p.slower} of {p.paired} (worst {fmt(p.worst_ms / 1000)} s) | {met(p.slower == 0)} |"
        )
        want = MEAN_TARGETS.get(lr.load)
        if want is not None:
            verdict = met(p.mean_speedup >= want)
            lines.append(f"| mean speedup >= {want} | {lr.load} | {fmt(p.mean_speedup)} | {verdict} |")
        if lr.load in ("medium", "high"):
            ratio = p.mine.p99 / p.theirs.p99 if p.theirs.p99 else math.nan
            lines.append(
                f"| P99 <= {P99_RATIO_TARGET}x off | {lr.load} | {fmt(ratio)}x ({fmt(p.mine.p99)} s vs "
                f"{fmt(p.theirs.p99)} s) | {met(ratio <= P99_RATIO_TARGET)} |"
            )
        if lr.load == "high":
            ours = _run(lr, OURS)
            util = ours.utilisation.cpu_utilisation if ours is not None else math.nan
            lines.append(
                f"| function containers use >= {UTIL_HIGH_TARGET:.0%} of the cores | high | "
                f"{fmt(util * 100, '.0f')} % | {met(util >= UTIL_HIGH_TARGET)} |"
            )
        if "video" in ev.dag:
            lines.append(
                f"| video mean >= {VIDEO_MEAN_TARGET} | {lr.load} | {fmt(p.mean_speedup)} | "
                f"{met(p.mean_speedup >= VIDEO_MEAN_TARGET)} |"
            )
        ow = pair(lr, OURS, OPENWHISK)
        if ow is not None:
            ok = ow.mine.mean < ow.theirs.mean and ow.mine.p99 < ow.theirs.p99
            lines.append(
                f"| lower mean and P99 than `openwhisk` | {lr.load} | mean {fmt(ow.mine.mean)} vs "
                f"{fmt(ow.theirs.mean)} s, P99 {fmt(ow.mine.p99)} vs {fmt(ow.theirs.p99)} s | {met(ok)} |"
            )
    if "low" in p50 and "high" in p50:
        ratio = p50["high"] / p50["low"] if p50["low"] else math.nan
        lines.append(
            f"| P50 at high <= {P50_HIGH_OVER_LOW:g}x P50 at low | high | {fmt(ratio)}x | "
            f"{met(ratio <= P50_HIGH_OVER_LOW)} |"
        )
    return lines if len(lines) > 2 else [f"`{OURS}` and `{BASE}` were not both run."]


def attainment(pr: PolicyRun, slo_s: float) -> float:
    """The share of the trace's requests that ended well within ``slo_s`` (a failed or
    unfinished request misses it)."""
    outcomes = pr.run.outcomes
    if not outcomes:
        return math.nan
    within = sum(1 for o in outcomes if o.succeeded and o.latency_ms / 1000 <= slo_s)
    return within / len(outcomes)


def slo_table(ev: DagEvaluation) -> list[str]:
    """SLO attainment per load and run, the SLO set from the calibration's unloaded latency."""
    unloaded = ev.calibration.mean_latency_s if ev.calibration is not None else math.nan
    if math.isnan(unloaded) or unloaded <= 0:
        return [
            "SLO attainment needs the unloaded latency that calibration measures "
            "(this run was given `--cpu-seconds`)."
        ]
    slo = SLO_FACTOR * unloaded
    lines = [
        f"SLO: {SLO_FACTOR:g} x the mean latency of the calibration's requests run one at a time "
        f"({unloaded:.2f} s), so {slo:.2f} s; a failed or unfinished request misses it.",
        "",
        "| load | " + " | ".join(ev.policies) + " |",
        "|---|" + "---|" * len(ev.policies),
    ]
    for lr in ev.loads:
        cells = []
        for name in ev.policies:
            pr = _run(lr, name)
            cells.append("n/a" if pr is None else f"{fmt(attainment(pr, slo) * 100, '.0f')} %")
        lines.append(f"| {lr.load} | " + " | ".join(cells) + " |")
    return lines


def section(ev: DagEvaluation) -> list[str]:
    """The report's section on the scheduler, when the evaluation compared what it needs."""
    names = set(ev.policies)
    if not ({f"{BASE}@fifo", OPENWHISK} & names):
        return []
    return [
        "## Scheduling across requests (issue 20)",
        "",
        "Runs named `policy@fifo` ran on invokers with the scheduler before issue 20 (one FIFO queue, "
        "no backfill, no lending); the others on the default (least slack, backfill, lending). "
        "`off` against `off@fifo` is the scheduler's own gain, without harvesting.",
        "",
        *pairs_table(ev),
        "",
        "Targets (issue 20), the default policy against `off` under the same scheduler:",
        "",
        *targets_table(ev),
        "",
        "### SLO attainment",
        "",
        *slo_table(ev),
    ]
