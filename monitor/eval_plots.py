"""PNG figures of the evaluation report, after the thesis's chapter 4.

Inputs are plain data (``LoadSeries``, one per load in the order given) so the
figures can be drawn and tested without a stack. Within a load, a policy such as
``"off"`` or ``"thesis"`` keeps its colour across every figure; the first policy
is the baseline the speedups are measured against.

Every function makes the parent folder, writes a PNG and returns its path; a
panel with nothing to draw says so instead of raising.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from monitor.evaluation import SpeedupSummary, ecdf, mean_utilisation, percentile

_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
_DPI = 110
_NO_REQUESTS = "no finished requests"


@dataclass(frozen=True, slots=True)
class LoadSeries:
    """What one load level (``"low"``, ``"medium"``, ``"high"``) measured, per policy."""

    load: str
    latency_s: Mapping[str, Sequence[float]]  # policy -> finished requests' end-to-end latencies (s)
    stage_s: Mapping[str, Sequence[float]]  # policy -> parallel-stage latencies (s)
    speedups: Mapping[str, Sequence[float]]  # non-baseline policy -> per-request speedups
    utilisation: Mapping[str, Sequence[tuple[float, float, float]]]  # policy -> (s, cores, MB) timeline


def _policies(series: Sequence[LoadSeries]) -> list[str]:
    """Every policy in order of first appearance, so colours agree between panels."""
    seen: dict[str, None] = {}
    for s in series:
        for mapping in (s.latency_s, s.stage_s, s.speedups, s.utilisation):
            seen.update(dict.fromkeys(mapping))
    return list(seen)


def _color(policies: list[str], policy: str) -> str:
    return _COLORS[policies.index(policy) % len(_COLORS)] if policy in policies else "#333333"


def _figure(nrows: int, ncols: int, width: float, height: float) -> tuple[Figure, list[list[Axes]]]:
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, [list(row) for row in axes]


def _empty(ax: Axes, text: str = _NO_REQUESTS) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#666666")


def _save(fig: Figure, out: Path, title: str) -> Path:
    fig.suptitle(title, fontsize=11)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=_DPI)
    return out


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _ecdf_lines(
    ax: Axes,
    by_policy: Mapping[str, Sequence[float]],
    policies: list[str],
    label: Callable[[str, list[float]], str],
) -> bool:
    """One ECDF step line per policy with finite values; whether any was drawn."""
    drawn = False
    for policy, values in by_policy.items():
        xs, ys = ecdf(_finite(values))
        if xs:
            ax.step(xs, ys, where="post", color=_color(policies, policy), label=label(policy, xs))
            drawn = True
    return drawn


def plot_latency_cdfs(series: Sequence[LoadSeries], out: Path, title: str) -> Path:
    """Figs 4.5-4.7, left: per load, the ECDF of end-to-end latency, one line per policy."""
    policies = _policies(series)
    fig, axes = _figure(1, max(len(series), 1), 4.4, 3.6)
    for ax, s in zip(axes[0], series, strict=False):
        drawn = _ecdf_lines(ax, s.latency_s, policies, lambda policy, xs: f"{policy} (n={len(xs)})")
        if drawn:
            ax.legend(fontsize=8, loc="lower right")
        else:
            _empty(ax)
        ax.set(title=f"{s.load} load", xlabel="end-to-end latency (s)", ylabel="fraction of requests")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    if not series:
        _empty(axes[0][0])
    return _save(fig, out, title)


def plot_speedup_cdfs(series: Sequence[LoadSeries], out: Path, title: str) -> Path:
    """Figs 4.5-4.7, right: per load, the ECDF of per-request speedup
    ``(L_base - L) / L_base`` for each non-baseline policy; left of 0 is slower."""
    policies = _policies(series)
    fig, axes = _figure(1, max(len(series), 1), 4.4, 3.6)

    def label(policy: str, xs: list[float]) -> str:
        summary = SpeedupSummary.from_speedups(xs)
        return f"{policy}: median {summary.median:.2f}, {summary.slower_fraction:.0%} slower"

    for ax, s in zip(axes[0], series, strict=False):
        drawn = _ecdf_lines(ax, s.speedups, policies, label)
        ax.axvline(0, color="#333333", lw=0.9, ls="--")
        ax.text(
            0,
            1.01,
            "slower \u2190 | \u2192 faster",
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=8,
        )
        if drawn:
            ax.legend(fontsize=8, loc="upper left")
        else:
            _empty(ax)
        baseline = next(iter(s.latency_s), "baseline")
        ax.set(xlabel=f"speedup vs {baseline}, (L_base \u2212 L) / L_base", ylabel="fraction of requests")
        ax.set_title(f"{s.load} load", pad=14)  # room for the slower/faster mark
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    if not series:
        _empty(axes[0][0])
    return _save(fig, out, title)


def plot_stage_latency(series: Sequence[LoadSeries], out: Path, title: str) -> Path:
    """Appendix C analogue: per load, box plots of the parallel stage's latency per policy."""
    policies = _policies(series)
    fig, axes = _figure(1, max(len(series), 1), 4.0, 3.6)
    for ax, s in zip(axes[0], series, strict=False):
        names = list(s.stage_s)
        data = [_finite(s.stage_s[p]) for p in names]
        filled = [i for i, d in enumerate(data) if d]  # boxplot of an empty list is not portable
        if filled:
            boxes = ax.boxplot(
                [data[i] for i in filled],
                positions=filled,
                widths=0.6,
                patch_artist=True,
                showmeans=True,
                medianprops={"color": "black"},  # the default orange vanishes on an orange box
                meanprops={"marker": "^", "markerfacecolor": "white", "markeredgecolor": "black"},
            )
            for i, patch in zip(filled, boxes["boxes"], strict=True):
                patch.set(facecolor=_color(policies, names[i]), alpha=0.6)
        else:
            _empty(ax)
        ax.set_xticks(range(len(names)), [f"{p}\nn={len(d)}" for p, d in zip(names, data, strict=True)])
        ax.set_xlim(-0.6, max(len(names), 1) - 0.4)
        ax.set(title=f"{s.load} load", xlabel="policy", ylabel="parallel-stage latency (s)")
        ax.grid(axis="y", alpha=0.3)
    if not series:
        _empty(axes[0][0])
    return _save(fig, out, title)


def plot_utilisation(
    series: Sequence[LoadSeries], cpu_capacity: float, memory_capacity_mb: float, out: Path, title: str
) -> Path:
    """Fig 4.8 analogue: one row per load, node CPU and memory used over capacity (%)
    against time, one line per policy, its time-weighted mean in the legend."""
    policies = _policies(series)
    fig, axes = _figure(max(len(series), 1), 2, 5.5, 2.8)
    for row, s in zip(axes, series, strict=False):
        cpu_ax, mem_ax = row
        drawn = False
        for policy, timeline in s.utilisation.items():
            if not timeline:
                continue
            cpu, mem = mean_utilisation(timeline, cpu_capacity, memory_capacity_mb)
            t = [x[0] for x in timeline]
            color = _color(policies, policy)
            cpu_pct = [x[1] / cpu_capacity * 100 for x in timeline]
            mem_pct = [x[2] / memory_capacity_mb * 100 for x in timeline]
            cpu_ax.plot(t, cpu_pct, color=color, lw=0.8, label=f"{policy}: mean {cpu:.1%}")
            mem_ax.plot(t, mem_pct, color=color, lw=0.8, label=f"{policy}: mean {mem:.1%}")
            drawn = True
        labels = (f"CPU used / {cpu_capacity:g} cores (%)", f"memory used / {memory_capacity_mb:g} MB (%)")
        for ax, what in zip(row, labels, strict=True):
            if drawn:
                ax.legend(fontsize=8, loc="upper right")
            else:
                _empty(ax, "no utilisation samples")
            ax.set(xlabel="time (s)", ylabel=what)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
        cpu_ax.set_title(f"{s.load} load: CPU", fontsize=10)
        mem_ax.set_title(f"{s.load} load: memory", fontsize=10)
    if not series:
        for ax in axes[0]:
            _empty(ax, "no utilisation samples")
    return _save(fig, out, title)


def plot_percentiles(series: Sequence[LoadSeries], out: Path, title: str) -> Path:
    """Figs 4.9-4.10 analogue: P50 and P99 end-to-end latency per load and policy as
    grouped bars, each labelled with its value."""
    policies = [p for p in _policies(series) if any(p in s.latency_s for s in series)]
    fig, axes = _figure(1, 2, 5.5, 3.8)
    width = 0.8 / max(len(policies), 1)
    for ax, q in zip(axes[0], (50, 99), strict=True):
        drawn = False
        for k, policy in enumerate(policies):
            values = [percentile(_finite(s.latency_s.get(policy, ())), q) for s in series]
            xs = [i - 0.4 + width * (k + 0.5) for i in range(len(series))]
            heights = [v if math.isfinite(v) else 0.0 for v in values]  # a missing bar is labelled n/a
            bars = ax.bar(xs, heights, width, color=_color(policies, policy), label=policy)
            ax.bar_label(
                bars, [f"{v:.2f}" if math.isfinite(v) else "n/a" for v in values], fontsize=7, padding=2
            )
            drawn = drawn or any(math.isfinite(v) for v in values)
        if drawn:
            ax.legend(fontsize=8, loc="upper left")
        else:
            _empty(ax)
        ax.set_xticks(range(len(series)), [f"{s.load} load" for s in series])
        ax.set(title=f"P{q} end-to-end latency", xlabel="load", ylabel=f"P{q} latency (s)")
        ax.margins(y=0.15)  # room for the value labels
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, out, title)
