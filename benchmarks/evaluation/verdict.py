"""Which policy won where, the issue's targets met or missed, and how often each
live change happened. Pure: tables from a :class:`DagEvaluation`'s runs."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from benchmarks.evaluation.results import DagEvaluation
from monitor.evaluation import LatencySummary, SpeedupSummary, paired_speedups

MEAN_TARGET = 0.60
MIN_TARGET = -0.05
P99_TARGET = 0.60  # at least 60 % lower at medium load
UTIL_TARGET = 3.0  # CPU utilisation at low load, times harvesting-off
VIDEO_MEAN_TARGET = 0.30
OURS = "gleaner"
RIVALS = ("thesis", "libra")
LIVE_REASONS = (
    "backfill",
    "start-now",
    "grow",
    "timely-release",
    "safeguard",
    "idle-capacity",
    "reclaim",
    "lent",
    "take-back",
    "resize-failed",
)


@dataclass(frozen=True, slots=True)
class Cell:
    load: str
    policy: str
    speedup: SpeedupSummary
    p99_ratio: float  # P99 latency over the baseline's at the same load
    util_ratio: float  # mean CPU utilisation over the baseline's


def fmt(x: float, spec: str = ".2f") -> str:
    """A figure, or n/a where it could not be measured."""
    return "n/a" if math.isnan(x) else format(x, spec)


def cells(ev: DagEvaluation) -> list[Cell]:
    out = []
    for lr in ev.loads:
        base = lr.runs[0]
        base_p99 = LatencySummary.of([o.latency_ms / 1000 for o in base.run.outcomes if o.succeeded]).p99
        for pr in lr.runs[1:]:
            sp = SpeedupSummary.from_speedups(
                list(paired_speedups(base.run.latency_by_seq(), pr.run.latency_by_seq()).values())
            )
            p99 = LatencySummary.of([o.latency_ms / 1000 for o in pr.run.outcomes if o.succeeded]).p99
            base_util = base.utilisation.cpu_utilisation
            out.append(
                Cell(
                    lr.load,
                    pr.policy,
                    sp,
                    p99 / base_p99 if base_p99 and not math.isnan(base_p99) else math.nan,
                    pr.utilisation.cpu_utilisation / base_util if base_util > 0 else math.nan,
                )
            )
    return out


def winners_table(ev: DagEvaluation) -> list[str]:
    """Per load: the best policy by mean and by min speedup, and whether gleaner beat its rivals."""
    by_load: dict[str, list[Cell]] = {}
    for c in cells(ev):
        by_load.setdefault(c.load, []).append(c)
    lines = [
        "| load | best mean | best min | gleaner beats thesis and libra on mean | ... on min |",
        "|---|---|---|---|---|",
    ]
    for load, row in by_load.items():
        valid = [c for c in row if c.speedup.n]
        if not valid:
            lines.append(f"| {load} | n/a | n/a | n/a | n/a |")
            continue
        best_mean = max(valid, key=lambda c: c.speedup.mean)
        best_min = max(valid, key=lambda c: c.speedup.min)
        ours = next((c for c in valid if c.policy == OURS), None)
        rivals = [c for c in valid if c.policy in RIVALS]
        if ours is None or not rivals:
            on_mean = on_min = "n/a"
        else:
            on_mean = met(all(ours.speedup.mean > r.speedup.mean for r in rivals))
            on_min = met(all(ours.speedup.min > r.speedup.min for r in rivals))
        lines.append(
            f"| {load} | {best_mean.policy} ({best_mean.speedup.mean:.2f}) | "
            f"{best_min.policy} ({best_min.speedup.min:.2f}) | {on_mean} | {on_min} |"
        )
    return lines


def met(ok: bool) -> str:
    """A target's verdict, a miss in bold."""
    return "yes" if ok else "**no**"


def targets_table(ev: DagEvaluation, policy: str = OURS) -> list[str]:
    """The issue's targets for ``policy``, each with the measured figure."""
    mine = [c for c in cells(ev) if c.policy == policy]
    if not mine:
        return [f"Policy `{policy}` was not run."]
    lines = ["| target | load | measured | met |", "|---|---|---|---|"]
    for c in mine:
        lines.append(
            f"| mean speedup >= {MEAN_TARGET} | {c.load} | {fmt(c.speedup.mean)} | "
            f"{met(c.speedup.mean >= MEAN_TARGET)} |"
        )
        lines.append(
            f"| min speedup >= {MIN_TARGET} | {c.load} | {fmt(c.speedup.min)} | "
            f"{met(c.speedup.min >= MIN_TARGET)} |"
        )
    for c in mine:
        if c.load == "medium":
            lower = 1 - c.p99_ratio
            lines.append(
                f"| P99 >= {P99_TARGET:.0%} lower | medium | {fmt(lower * 100, '.0f')} % lower | "
                f"{met(lower >= P99_TARGET)} |"
            )
        if c.load == "low":
            lines.append(
                f"| CPU utilisation >= {UTIL_TARGET:g}x off | low | {fmt(c.util_ratio)}x | "
                f"{met(c.util_ratio >= UTIL_TARGET)} |"
            )
    if "video" in ev.dag:
        for c in mine:
            lines.append(
                f"| video mean >= {VIDEO_MEAN_TARGET} | {c.load} | {fmt(c.speedup.mean)} | "
                f"{met(c.speedup.mean >= VIDEO_MEAN_TARGET)} |"
            )
    return lines


def live_changes_table(ev: DagEvaluation) -> list[str]:
    """How often each live change happened, per load and policy (from the function records)."""
    lines = [
        "| load | policy | functions | " + " | ".join(LIVE_REASONS) + " | OOM re-runs |",
        "|---|---|---|" + "---|" * len(LIVE_REASONS) + "---|",
    ]
    for lr in ev.loads:
        for pr in lr.runs:
            functions = [f for o in pr.run.outcomes for f in o.functions]
            counts: Counter[str] = Counter()
            for f in functions:
                counts.update(r for r in f.changes.split(";") if r)
                if f.origin and f.cpu < f.planned_cpu - 1e-9:
                    counts["start-now"] += 1
            reruns = sum(1 for f in functions if f.rerun)
            lines.append(
                f"| {lr.load} | {pr.policy} | {len(functions)} | "
                + " | ".join(str(counts[r]) for r in LIVE_REASONS)
                + f" | {reruns} |"
            )
    return lines
