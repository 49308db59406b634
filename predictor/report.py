"""The model report of one DAG: Markdown tables and PNG plots, analogues of the
thesis's Figs 4.1-4.3 (error distribution per model for input size, CPU and
memory; the same for duration) and Fig. 4.4 (accuracy per model).

Plots use matplotlib's object API with the Agg canvas: no pyplot, no global state.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from predictor.compare import Comparison, TargetResult
from predictor.scaling import ScalingFits

UNITS = {"input_size": "bytes", "cpu": "cores", "memory": "MB", "duration": "ms"}
MATERIAL = 0.05  # a relative change in error below 5 % is noise on a test set this size


@dataclass(frozen=True, slots=True)
class ReportFiles:
    markdown: Path
    plots: tuple[Path, ...]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "dag"


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}g}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def _error_plot(res: TargetResult, path: Path) -> None:
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    box, cdf = fig.subplots(1, 2)
    names = [s.model for s in res.scores]
    errors = [s.errors for s in res.scores]
    box.boxplot(errors, tick_labels=names, showmeans=True)
    box.tick_params(axis="x", labelrotation=30)
    box.set_ylabel(f"absolute error ({UNITS[res.target.name]})")
    box.set_title(f"{res.target.title}: absolute error on the test set")
    for s in res.scores:
        xs = np.sort(s.errors)
        ys = np.arange(1, len(xs) + 1) / max(len(xs), 1)
        style = "-" if s.model == res.chosen else "--"
        cdf.step(
            xs,
            ys,
            where="post",
            linestyle=style,
            label=s.model + (" (chosen)" if s.model == res.chosen else ""),
        )
    positive = [e for s in res.scores for e in s.errors if e > 0]
    if positive and max(positive) / min(positive) > 100:  # errors spanning decades read better on a log axis
        box.set_yscale("log")
        cdf.set_xscale("log")
    cdf.set_xlabel(f"absolute error ({UNITS[res.target.name]})")
    cdf.set_ylabel("fraction of test predictions")
    cdf.set_title("CDF of the absolute error")
    cdf.legend(fontsize="small")
    fig.savefig(path, dpi=100)


def _accuracy_plot(comparison: Comparison, path: Path) -> None:
    fig = Figure(figsize=(8, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    targets = [t for t in ("cpu", "memory") if t in comparison.results]
    models = [s.model for s in comparison.results[targets[0]].scores] if targets else []
    width = 0.8 / max(len(targets), 1)
    x = np.arange(len(models))
    for k, t in enumerate(targets):
        res = comparison.results[t]
        values = [100 * (res.score(m).accuracy or 0.0) for m in models]
        bars = ax.bar(x + k * width - 0.4 + width / 2, values, width, label=res.target.title)
        ax.bar_label(bars, fmt="%.0f", fontsize="small")
    ax.set_xticks(x, models, rotation=30)
    ax.set_ylim(0, 120)  # room for the labels and the legend above the 100 % bars
    ax.set_ylabel("accurate predictions (%)")
    ax.set_title("Accuracy per model: P + |P - actual| <= A(P)")
    ax.legend(loc="upper center", ncols=2)
    fig.savefig(path, dpi=100)


def _target_table(res: TargetResult) -> list[str]:
    unit = UNITS[res.target.name]
    lines = [
        f"| model | mean ({unit}) | median | p90 | max | R² | mean rel. error | accuracy | predict p50 (ms) "
        "| p99 (ms) | fit (s) | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in res.scores:
        name = f"**{s.model}**" if s.model == res.chosen else s.model
        lines.append(
            f"| {name} | {_num(s.mean)} | {_num(s.median)} | {_num(s.p90)} | {_num(s.max)} "
            f"| {_num(s.r2, 3)} | {_pct(s.relative)} | "
            f"{_pct(s.accuracy)} | {s.latency_p50_ms:.3f} | {s.latency_p99_ms:.3f} | {s.fit_s:.2f} | "
            f"{', '.join(s.notes)} |"
        )
    for model, why in res.failed:
        lines.append(f"| {model} | failed: {why} | | | | | | | | | | |")
    return lines


def _identity_line(res: TargetResult) -> str | None:
    ident = res.identity
    if ident is None:
        return None
    gain = ident.relative_gain
    if gain > MATERIAL:
        verdict = f"helps ({100 * gain:.0f}% lower error)"
    elif gain < -MATERIAL:
        verdict = f"hurts ({-100 * gain:.0f}% higher error)"
    else:
        verdict = "makes no material difference"
    return (
        f"Function identity (stage, index) {verdict}: {ident.model} mean absolute error "
        f"{_num(ident.mae_with)} with it, {_num(ident.mae_without)} with the input size alone."
    )


def _scaling_section(scaling: ScalingFits) -> list[str]:
    md = [
        "",
        "## Scaling curves",
        "",
        "Amdahl's law t(c) = t1 (s + (1 - s) / c) per parallel function, fitted on the profile's CPU "
        "sweep (predictor.scaling); without one a function plans linearly.",
        "",
        "| function | serial fraction s | speedup 1 → 2 cores | fit |",
        "|---|---|---|---|",
    ]
    for (stage, index), why in sorted(scaling.reasons.items()):
        curve = scaling.curves.get((stage, index))
        s = f"{curve.serial_fraction:.3f}" if curve else "linear"
        x2 = f"x{curve.speedup(1.0, 2.0):.2f}" if curve else "x2 (assumed)"
        md.append(f"| {stage}.{index} | {s} | {x2} | {why} |")
    return md


def write_report(
    comparison: Comparison,
    report_dir: Path,
    *,
    version_dir: Path | None = None,
    scaling: ScalingFits | None = None,
) -> ReportFiles:
    """Write ``<dag>-models.md`` and its PNG plots into ``report_dir``."""
    report_dir.mkdir(parents=True, exist_ok=True)
    slug = _slug(comparison.dag)
    plots: list[Path] = []
    for name, res in comparison.results.items():
        path = report_dir / f"{slug}-errors-{name}.png"
        _error_plot(res, path)
        plots.append(path)
    accuracy_png = report_dir / f"{slug}-accuracy.png"
    _accuracy_plot(comparison, accuracy_png)
    plots.append(accuracy_png)

    a = comparison.allowed
    md = [
        f"# Models for DAG `{comparison.dag}`",
        "",
        f"- Dataset: {comparison.n_rows} rows; {comparison.n_train + comparison.n_test} successful rows of "
        f"parallel stages from {comparison.n_requests} requests train and test "
        f"({comparison.n_train} train / {comparison.n_test} test, split 80/20 by request, "
        f"seed {comparison.seed}).",
        f"- Allowed allocations: CPU {a.cpu_min:g}..{a.cpu.top:g} cores step {a.cpu_step:g}; "
        f"memory {a.mem_min:g}..{a.mem.top:g} MB step {a.mem_step:g}.",
        f"- Predict latency: one call on {comparison.batch_width} rows (the widest stage), "
        f"budget {comparison.latency_budget_ms:g} ms at p99 per model; machine load average "
        f"{comparison.load_average[0]:.2f} while measuring (a busy machine inflates p99).",
        "- GradientBoosting is scikit-learn's GradientBoostingRegressor, standing in for XGBoost.",
        "- Accuracy (thesis §4.1.2): a prediction P with error ΔP is accurate when P + ΔP ≤ A(P), "
        "A(P) the smallest allowed allocation ≥ P. Input size and duration have no allocation grid: "
        "their mean absolute and relative errors (|P - actual| / actual) say how good they are.",
    ]
    if version_dir is not None:
        md.append(f"- Saved as `{version_dir}`.")
    md += [
        "",
        "## Chosen models",
        "",
        "| target | model | mean abs. error | mean rel. error | accuracy | p99 predict (ms) | why |",
    ]
    md.append("|---|---|---|---|---|---|---|")
    for name, res in comparison.results.items():
        s = res.score(res.chosen)
        md.append(
            f"| {res.target.title} | {res.chosen} | {_num(s.mean)} {UNITS[name]} | {_pct(s.relative)} "
            f"| {_pct(s.accuracy)} | "
            f"{s.latency_p99_ms:.3f} | {res.why} |"
        )
    if comparison.pipeline:
        md += ["", "End to end (ML2 fed by ML1's predicted input sizes, as at request time):", ""]
        for name, p in comparison.pipeline.items():
            accurate = f", accuracy {_pct(p.accuracy)}" if p.accuracy is not None else ""
            md.append(
                f"- {name}: mean absolute error {_num(p.mean)} {UNITS[name]}, "
                f"mean relative error {_pct(p.relative)}{accurate}"
            )
    for name, res in comparison.results.items():
        md += ["", f"## {res.target.title}: {', '.join(res.target.features)} → {res.target.label}", ""]
        md += _target_table(res)
        line = _identity_line(res)
        if line:
            md += ["", line]
        md += ["", f"![{res.target.title} errors]({slug}-errors-{name}.png)"]
    md += ["", "## Accuracy", "", f"![accuracy]({accuracy_png.name})"]
    if scaling is not None and scaling.reasons:
        md += _scaling_section(scaling)
    md.append("")
    markdown = report_dir / f"{slug}-models.md"
    markdown.write_text("\n".join(md), encoding="utf-8")
    return ReportFiles(markdown, tuple(plots))
