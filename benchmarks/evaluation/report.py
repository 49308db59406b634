"""The evaluation report of one DAG: the analogues of thesis Tables 4.1-4.3,
Figs 4.5-4.8 and Appendix C, with the thesis's figures beside ours."""

from __future__ import annotations

import datetime as dt
import math
import shlex
import statistics
import sys
from pathlib import Path

from benchmarks.evaluation import verdict
from benchmarks.evaluation.results import DagEvaluation
from benchmarks.report import machine, write_section
from monitor import eval_plots
from monitor.evaluation import (
    THESIS_SPEEDUP,
    THESIS_UTILISATION,
    LatencySummary,
    SpeedupSummary,
    paired_speedups,
    percentile,
)
from streams.replay.runner import ReplayRun, outcome_line


def speedups_of(base: ReplayRun, other: ReplayRun) -> dict[str, float]:
    """Per-request speedup of ``other`` against ``base``, paired by trace position."""
    return paired_speedups(base.latency_by_seq(), other.latency_by_seq())


def _f(x: float, spec: str = ".2f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _ok_latencies_s(run: ReplayRun) -> list[float]:
    return [o.latency_ms / 1000 for o in run.outcomes if o.succeeded]


def _stage_s(run: ReplayRun) -> list[float]:
    return [
        o.parallel_stage_ms / 1000
        for o in run.outcomes
        if o.succeeded and not math.isnan(o.parallel_stage_ms)
    ]


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.fmean(values) if values else math.nan


def _series(ev: DagEvaluation) -> list[eval_plots.LoadSeries]:
    out = []
    for lr in ev.loads:
        base = lr.runs[0].run
        out.append(
            eval_plots.LoadSeries(
                load=lr.load,
                latency_s={pr.policy: _ok_latencies_s(pr.run) for pr in lr.runs},
                stage_s={pr.policy: _stage_s(pr.run) for pr in lr.runs},
                speedups={pr.policy: list(speedups_of(base, pr.run).values()) for pr in lr.runs[1:]},
                utilisation={pr.policy: pr.utilisation.timeline for pr in lr.runs},
            )
        )
    return out


def _plots(ev: DagEvaluation, img: Path) -> dict[str, Path]:
    series = _series(ev)
    title = f"{ev.dag}"
    return {
        "latency": eval_plots.plot_latency_cdfs(series, img / f"{ev.dag}-latency-cdf.png", title),
        "speedup": eval_plots.plot_speedup_cdfs(series, img / f"{ev.dag}-speedup-cdf.png", title),
        "stage": eval_plots.plot_stage_latency(series, img / f"{ev.dag}-parallel-stage.png", title),
        "utilisation": eval_plots.plot_utilisation(
            series, ev.capacity_cores, ev.memory_capacity_mb, img / f"{ev.dag}-utilisation.png", title
        ),
        "percentiles": eval_plots.plot_percentiles(series, img / f"{ev.dag}-percentiles.png", title),
    }


def speedup_table(ev: DagEvaluation) -> list[str]:
    """Table 4.2's analogue, the thesis's row beside each of ours."""
    lines = [
        "| load | policy | requests paired | max | min | mean | median | slower than baseline | "
        "thesis max / min / mean / median |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for lr in ev.loads:
        base = lr.runs[0].run
        thesis = THESIS_SPEEDUP.get(lr.load)
        t = " / ".join(f"{v:.2f}" for v in thesis) if thesis else "n/a"
        for pr in lr.runs[1:]:
            s = SpeedupSummary.from_speedups(list(speedups_of(base, pr.run).values()))
            lines.append(
                f"| {lr.load} | {pr.policy} | {s.n} | {_f(s.max)} | {_f(s.min)} | {_f(s.mean)} | "
                f"{_f(s.median)} | {s.slower} ({_f(s.slower_fraction * 100 if s.n else math.nan, '.0f')} %) "
                f"| {t} |"
            )
    return lines


def summary(ev: DagEvaluation, report_link: str) -> str:
    """The report's headline, for docs/benchmarks.md."""
    return "\n".join(
        [
            f"## Evaluation under load, {ev.dag}",
            "",
            f"{ev.requests} requests per load (synthesised Poisson arrivals at 25 / 50 / 100 % offered load, "
            f"{ev.cpu_seconds:.2f} CPU-s per request), policies {', '.join(ev.policies)}; "
            f"the run took {ev.seconds / 60:.0f} min. Full report: [{report_link}]({report_link}).",
            "",
            *speedup_table(ev),
            "",
            *verdict.winners_table(ev),
        ]
    )


def render(
    ev: DagEvaluation, plots: dict[str, Path], base_dir: Path, sections: list[str] | None = None
) -> str:
    baseline = ev.policies[0]
    stamp = dt.datetime.fromtimestamp(ev.started_wall, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "gleaner " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [
        f"# Evaluation under load: {ev.dag}",
        "",
        "The analogue of the thesis's chapter 4 for this DAG, regenerated from real runs by `gleaner eval`.",
        "**The arrival patterns are synthesised** (seeded Poisson arrivals at the thesis's relative rates "
        "1 : 2 : 4); the Azure Functions trace cannot be downloaded on this machine.",
        "",
        f"- Run: {stamp}, took {ev.seconds / 60:.1f} min on {machine()}.",
        f"- Command: `{command}`",
        f"- Trace: {ev.requests} requests per load over {ev.distinct_inputs} distinct inputs "
        f"(seed {ev.seed}), "
        "the same inputs in the same order at the same arrival times for every policy; requests are produced "
        "straight to `dag.requests`, open-loop.",
        f"- Policies: {', '.join(f'`{p}`' for p in ev.policies)}; `{baseline}` is the baseline. "
        f"Speedup = (L_{baseline} - L_policy) / L_{baseline} per request (thesis §4.1.3), "
        "where L is measured by "
        "the replay from producing the request to receiving its `dag.result` (planner and every Kafka hop "
        "included).",
        f"- Model: {ev.model_note}.",
        f"- A run ends when every request has its record, or {ev.deadline_s:.0f} s after the last arrival.",
        *[f"- {n}" for n in ev.notes],
        "",
        "## Arrival rates (Table 4.1)",
        "",
    ]
    if ev.calibration is not None:
        c = ev.calibration
        pairs = ", ".join(
            f"{s / 1024:.0f} KB: {cpu:.2f}"
            for s, cpu in sorted(zip(c.sample_sizes, c.sample_cpu_seconds, strict=True))
        )
        lines.append(
            f"Calibrated with {c.samples} requests run one at a time at the user allocations "
            f"(input size: CPU-s used by the function containers: {pairs}); fitted against input size and "
            f"averaged over the trace's inputs: **{ev.cpu_seconds:.2f} CPU-s per request** "
            f"(calibration took {c.seconds:.0f} s)."
        )
    else:
        lines.append(f"CPU-s per request given on the command line: **{ev.cpu_seconds:.2f}**.")
    lines += [
        f"Rates are chosen so that the offered load (rate x CPU-s per request) is 25 / 50 / 100 % of the "
        f"invoker's {ev.capacity_cores:g} cores; the thesis had 2 x 8 cores.",
        "",
        "| load | offered load | rate (req/min) | rate (req/s) | thesis (req/min) | arrivals span |",
        "|---|---|---|---|---|---|",
    ]
    for lr in ev.loads:
        r = lr.row
        span = max((o.scheduled_s for o in lr.runs[0].run.outcomes), default=0.0)
        lines.append(
            f"| {r.load} | {r.offered_load:.0%} | {r.rate_per_min:.2f} | {r.rate_per_s:.3f} | "
            f"{r.thesis_per_min:g} | {span / 60:.1f} min |"
        )
    lines += [
        "",
        "## Speedup per load (Table 4.2)",
        "",
        *speedup_table(ev),
        "",
        "## Which policy won where",
        "",
        *verdict.winners_table(ev),
        "",
        f"Targets for `{verdict.OURS}` (issue 8), each against the baseline in the same run:",
        "",
        *verdict.targets_table(ev),
        "",
        "## Live allocation changes",
        "",
        "How many functions saw each live change (from the `allocation_trajectory` of their records; "
        "start-now counts functions that started below their plan).",
        "",
        *verdict.live_changes_table(ev),
    ]
    if sections:
        lines += ["", *sections]
    lines += [
        "",
        "## Latency per load and policy",
        "",
        "P50 / P99 of the requests that succeeded; the ratio is against the baseline at the same load "
        "(below 1: faster). Wait = the sum of the request's functions' `waitTime` (queueing for permits "
        "and containers).",
        "",
        "| load | policy | ok | failed | unfinished | P50 (s) | P99 (s) | P50 ratio | P99 ratio "
        "| mean wait (s) "
        "| cold starts |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for lr in ev.loads:
        base_lat = LatencySummary.of([x for x in _ok_latencies_s(lr.runs[0].run)])
        for pr in lr.runs:
            run = pr.run
            lat = LatencySummary.of([o.latency_ms / 1000 if o.succeeded else None for o in run.outcomes])
            wait = _mean([o.wait_ms_total / 1000 for o in run.outcomes if o.succeeded])
            lines.append(
                f"| {lr.load} | {pr.policy} | {lat.n} | {len(run.failed)} | {len(run.unfinished)} | "
                f"{_f(lat.p50)} | {_f(lat.p99)} | {_f(lat.p50 / base_lat.p50)} | "
                f"{_f(lat.p99 / base_lat.p99)} | "
                f"{_f(wait)} | {sum(o.cold_starts for o in run.outcomes)} |"
            )
    lines += [
        "",
        "## Parallel-stage latency (Appendix C)",
        "",
        "| load | policy | stage P50 (s) | stage P99 (s) | stage mean (s) |",
        "|---|---|---|---|---|",
    ]
    for lr in ev.loads:
        for pr in lr.runs:
            st = _stage_s(pr.run)
            lines.append(
                f"| {lr.load} | {pr.policy} | {_f(percentile(st, 50))} | {_f(percentile(st, 99))} "
                f"| {_f(_mean(st))} |"
            )
    off_t, on_t = THESIS_UTILISATION["off"], THESIS_UTILISATION["on"]
    lines += [
        "",
        "## Utilisation (Table 4.3, Fig 4.8)",
        "",
        f"What all function containers used together (Docker's parent cgroup, sampled every 100 ms) over the "
        f"invoker's capacity ({ev.capacity_cores:g} cores, {ev.memory_capacity_mb} MB), "
        "averaged over each run. "
        f"Thesis: off {off_t[0]:.1%} CPU / {off_t[1]:.1%} memory, on {on_t[0]:.1%} / {on_t[1]:.1%}.",
        "",
        "| load | policy | mean CPU | mean memory | peak CPU (cores) | run length |",
        "|---|---|---|---|---|---|",
    ]
    for lr in ev.loads:
        for pr in lr.runs:
            u = pr.utilisation
            lines.append(
                f"| {lr.load} | {pr.policy} | {u.cpu_utilisation:.1%} | {u.memory_utilisation:.1%} | "
                f"{u.peak_cpu:.2f} | {u.seconds / 60:.1f} min |"
            )
    rel = {k: p.relative_to(base_dir) if p.is_relative_to(base_dir) else p for k, p in plots.items()}
    lines += [
        "",
        "## Figures",
        "",
        f"Latency CDF per load (Figs 4.5-4.7, left): ![latency CDF]({rel['latency']})",
        "",
        f"Speedup CDF per load (Figs 4.5-4.7, right): ![speedup CDF]({rel['speedup']})",
        "",
        f"Parallel-stage latency (Appendix C): ![parallel stage]({rel['stage']})",
        "",
        f"Utilisation over time (Fig 4.8): ![utilisation]({rel['utilisation']})",
        "",
        f"P50 and P99 per load and policy: ![percentiles]({rel['percentiles']})",
        "",
        "## Where harvesting loses",
        "",
    ]
    losers = []
    for lr in ev.loads:
        base_by_seq = {o.seq: o for o in lr.runs[0].run.outcomes}
        for pr in lr.runs[1:]:
            sp = speedups_of(lr.runs[0].run, pr.run)
            by_seq = {o.seq: o for o in pr.run.outcomes}
            for seq, value in sp.items():
                if value < 0:
                    o, b = by_seq[int(seq)], base_by_seq[int(seq)]
                    losers.append((value, lr.load, pr.policy, o, b))
    losers.sort(key=lambda x: x[0])
    if not losers:
        lines.append("No request was slower than its baseline.")
    else:
        lines += [
            f"{len(losers)} request-runs were slower than the baseline; the worst ten:",
            "",
            f"| load | policy | request | input | L_{baseline} (s) | L (s) | speedup "
            f"| wait {baseline} / policy (s) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for value, load, policy, o, b in losers[:10]:
            lines.append(
                f"| {load} | {policy} | #{o.seq} | {o.input} ({o.input_size / 1024:.0f} KB) | "
                f"{b.latency_ms / 1000:.2f} | {o.latency_ms / 1000:.2f} | {value:.2f} | "
                f"{_f(b.wait_ms_total / 1000)} / {_f(o.wait_ms_total / 1000)} |"
            )
    lines += ["", "## Requests that did not succeed", ""]
    bad = [
        (lr.load, pr.policy, o)
        for lr in ev.loads
        for pr in lr.runs
        for o in pr.run.outcomes
        if not o.succeeded
    ]
    if not bad:
        lines.append("None: every request of every run succeeded.")
    else:
        lines += [f"- {load} / {policy}: {outcome_line(o)}" for load, policy, o in bad]
    lines += [
        "",
        "Per-request CSVs (one row per request, and one per function): "
        f"`data/{ev.dag}/<load>-<policy>-*.csv`.",
        "",
    ]
    return "\n".join(lines)


def write_report(
    ev: DagEvaluation, out_dir: Path, benchmarks: Path | None = None, sections: list[str] | None = None
) -> Path:
    """``out_dir/<dag>.md`` with its plots; with ``benchmarks``, also the headline there.
    ``sections``: more of the report's lines (e.g. the scheduler's verdict), after the targets."""
    plots = _plots(ev, out_dir / "img")
    path = out_dir / f"{ev.dag}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(ev, plots, out_dir, sections or []))
    if benchmarks is not None:
        link = path.relative_to(benchmarks.parent) if path.is_relative_to(benchmarks.parent) else path
        write_section(benchmarks, f"eval-{ev.dag}", summary(ev, str(link)))
    return path
