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

from benchmarks.evaluation.report import DagEvaluation, LoadResult, PolicyRun
from monitor.evaluation import LatencySummary, paired_speedups

OURS = "gleaner"
BASE = "off"
OPENWHISK = "openwhisk"
SLOWER_SHARE = 0.05  # slower than its twin by more than 5 % ...
SLOWER_MS = 50.0  # ... and by more than 50 ms
MEAN_TARGETS = {"low": 0.40, "medium": 0.40, "high": 0.30}
P99_RATIO_TARGET = 0.6  # at medium and high
P50_HIGH_OVER_LOW = 3.0
UTIL_HIGH_TARGET = 0.70
VIDEO_MEAN_TARGET = 0.30
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
    p50_s: float
    p99_s: float
    base_p50_s: float
    base_p99_s: float
    mean_s: float
    base_mean_s: float


def _run(lr: LoadResult, name: str) -> PolicyRun | None:
    return next((pr for pr in lr.runs if pr.policy == name), None)


def _latencies_s(pr: PolicyRun) -> list[float]:
    return [o.latency_ms / 1000 for o in pr.run.outcomes if o.succeeded]


def pair(lr: LoadResult, policy: str, against: str) -> Pair | None:
    ours, base = _run(lr, policy), _run(lr, against)
    if ours is None or base is None:
        return None
    a, b = ours.run.latency_by_seq(), base.run.latency_by_seq()
    losses = [x - y for k, x in a.items() if x is not None and (y := b.get(k)) is not None]
    slower = sum(
        1
        for k, x in a.items()
        if x is not None and (y := b.get(k)) is not None and x > y * (1 + SLOWER_SHARE) and x - y > SLOWER_MS
    )
    speedups = list(paired_speedups(b, a).values())
    mine, theirs = LatencySummary.of(_latencies_s(ours)), LatencySummary.of(_latencies_s(base))
    return Pair(
        lr.load,
        policy,
        against,
        len(losses),
        slower,
        max(losses, default=math.nan),
        statistics.fmean(speedups) if speedups else math.nan,
        mine.p50,
        mine.p99,
        theirs.p50,
        theirs.p99,
        statistics.fmean(_latencies_s(ours)) if _latencies_s(ours) else math.nan,
        statistics.fmean(_latencies_s(base)) if _latencies_s(base) else math.nan,
    )


def _f(x: float, spec: str = ".2f") -> str:
    return "n/a" if math.isnan(x) else format(x, spec)


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def pairs_table(ev: DagEvaluation) -> list[str]:
    """Every comparison the targets read, with absolutes beside the ratios."""
    lines = [
        "| load | policy | against | paired | slower (>5 % and >50 ms) | worst loss (s) | mean speedup "
        "| P50 (s) | their P50 | P99 (s) | their P99 | P99 ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in _pairs(ev):
        lines.append(
            f"| {p.load} | {p.policy} | {p.against} | {p.paired} | {p.slower} | {_f(p.worst_ms / 1000)} | "
            f"{_f(p.mean_speedup)} | {_f(p.p50_s)} | {_f(p.base_p50_s)} | {_f(p.p99_s)} | "
            f"{_f(p.base_p99_s)} | {_f(p.p99_s / p.base_p99_s if p.base_p99_s else math.nan)} |"
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
        p50[lr.load] = p.p50_s
        lines.append(
            f"| no request slower than its `off` twin by > 5 % and 50 ms | {lr.load} | "
            f"{p.slower} of {p.paired} (worst {_f(p.worst_ms / 1000)} s) | {_yes(p.slower == 0)} |"
        )
        want = MEAN_TARGETS.get(lr.load)
        if want is not None:
            met = _yes(p.mean_speedup >= want)
            lines.append(f"| mean speedup >= {want} | {lr.load} | {_f(p.mean_speedup)} | {met} |")
        if lr.load in ("medium", "high"):
            ratio = p.p99_s / p.base_p99_s if p.base_p99_s else math.nan
            lines.append(
                f"| P99 <= {P99_RATIO_TARGET}x off | {lr.load} | {_f(ratio)}x ({_f(p.p99_s)} s vs "
                f"{_f(p.base_p99_s)} s) | {_yes(ratio <= P99_RATIO_TARGET)} |"
            )
        if lr.load == "high":
            ours = _run(lr, OURS)
            util = ours.utilisation.cpu_utilisation if ours is not None else math.nan
            lines.append(
                f"| function containers use >= {UTIL_HIGH_TARGET:.0%} of the cores | high | "
                f"{_f(util * 100, '.0f')} % | {_yes(util >= UTIL_HIGH_TARGET)} |"
            )
        if "video" in ev.dag:
            lines.append(
                f"| video mean >= {VIDEO_MEAN_TARGET} | {lr.load} | {_f(p.mean_speedup)} | "
                f"{_yes(p.mean_speedup >= VIDEO_MEAN_TARGET)} |"
            )
        ow = pair(lr, OURS, OPENWHISK)
        if ow is not None:
            ok = ow.mean_s < ow.base_mean_s and ow.p99_s < ow.base_p99_s
            lines.append(
                f"| lower mean and P99 than `openwhisk` | {lr.load} | mean {_f(ow.mean_s)} vs "
                f"{_f(ow.base_mean_s)} s, P99 {_f(ow.p99_s)} vs {_f(ow.base_p99_s)} s | {_yes(ok)} |"
            )
    if "low" in p50 and "high" in p50:
        ratio = p50["high"] / p50["low"] if p50["low"] else math.nan
        lines.append(
            f"| P50 at high <= {P50_HIGH_OVER_LOW:g}x P50 at low | high | {_f(ratio)}x | "
            f"{_yes(ratio <= P50_HIGH_OVER_LOW)} |"
        )
    return lines if len(lines) > 2 else [f"`{OURS}` and `{BASE}` were not both run."]


def attainment(pr: PolicyRun, slo_s: float) -> float:
    """The share of the trace's requests that ended well within ``slo_s`` (a failed or
    unfinished request misses it)."""
    outcomes = pr.run.outcomes
    if not outcomes:
        return math.nan
    met = sum(1 for o in outcomes if o.succeeded and o.latency_ms / 1000 <= slo_s)
    return met / len(outcomes)


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
            cells.append("n/a" if pr is None else f"{_f(attainment(pr, slo) * 100, '.0f')} %")
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
