"""Execution timeline of one DAG request as a PNG (after the thesis's Fig. 2.5).

Input: the DAG-level activation record and its children's records, all in the
OpenWhisk shape (``start``/``end`` in epoch ms, ``annotations`` with ``initTime``
and ``waitTime`` in ms) with Gleaner's keys under ``gleaner``: the DAG record's
``gleaner.dag`` (name, stages with their functions) and each child's
``gleaner.stage`` / ``gleaner.index``.

One bar per function, ordered by stage then index; the cold-start part of a bar
(``initTime``) is hatched, the wait before it (``waitTime``) a thin grey line.
Stages are shaded bands; a parallel stage is labelled with its skew, the longest
over the shortest function duration in it. Each bar ends with its duration, the
allocation it started with and that allocation's origin (``0.5c harvest``); small
ticks on a bar mark where its allocation changed while it ran.

Below, on the same time axis, each function's allocated cores as a step line with
a marker per change, shaped and coloured by its reason, and its measured use as a
thin line (see :mod:`monitor.allocation_plot`).

Every scheduler decision is listed too (:func:`decision_lines`, below the plots in the
PNG and printed by ``gleaner dag timeline``): each function's allocation trajectory
entries with their reason and note (whom it backfilled ahead of, waited behind, lent to or
took back from), activation ids of this request's functions followed by their names. A
reason this build does not know is listed as it is.

Records come from the wild: a child that is not an object or has no start is left
out, and malformed fields are read as missing rather than raising.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from monitor.allocation_plot import (
    annotation,
    draw_allocations,
    draw_change_ticks,
    mapping,
    number,
    start_label,
)

_FAN_OUT = ("parallel", "map")
_UNPLACED = 10**6  # stage of a child no record places: drawn last, in grey
_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
PNG_DECISIONS = 40  # decision lines drawn in the PNG at most (the CLI prints them all)
_ACTIVATION_ID = re.compile(r"\b[0-9a-f]{32}\b")


@dataclass(frozen=True, slots=True)
class _Bar:
    stage: int
    index: int
    name: str
    start_ms: float
    end_ms: float
    init_ms: float
    wait_ms: float
    record: dict[str, Any] = field(compare=False, repr=False)

    @property
    def duration_ms(self) -> float:
        return self.end_ms - self.start_ms


def _number(value: Any) -> float:
    return number(value) or 0.0


def _int(value: Any, default: int) -> int:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return default
    n = number(value)
    return int(n) if n is not None and n == int(n) else default


def _color(stage: int) -> str:
    return _COLORS[stage % len(_COLORS)] if stage != _UNPLACED else "#bbbbbb"


def _dag(dag_record: dict[str, Any]) -> dict[str, Any]:
    return mapping(mapping(dag_record.get("gleaner")).get("dag"))


def _stages(dag_record: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """(index, stage) for every stage of the DAG record that has an index."""
    stages = _dag(dag_record).get("stages")
    out = []
    for stage in stages if isinstance(stages, list) else []:
        index = _int(mapping(stage).get("index"), -1)
        if index >= 0:
            out.append((index, mapping(stage)))
    return out


def _stage_kinds(dag_record: dict[str, Any]) -> dict[int, str]:
    return {i: str(s.get("kind", "")) for i, s in _stages(dag_record)}


def _bars(dag_record: dict[str, Any], children: list[dict[str, Any]]) -> list[_Bar]:
    """Children as bars, by stage then index. Stage and index come from the child's
    ``gleaner`` keys, else from the DAG record's function lists. A child that is not
    an object or has no start is left out."""
    placed: dict[str, tuple[int, int]] = {}
    for i, stage in _stages(dag_record):
        fns = stage.get("functions")
        for fn in fns if isinstance(fns, list) else []:
            if isinstance(fn, dict):
                placed[str(fn.get("activation_id"))] = (i, _int(fn.get("index"), 0))
    bars = []
    for order, child in enumerate(children):
        start = number(child.get("start")) if isinstance(child, dict) else None
        if start is None or start <= 0:
            continue
        mine = mapping(child.get("gleaner"))
        fallback = placed.get(str(child.get("activationId")), (_UNPLACED, order))
        end = _number(child.get("end")) or start + max(_number(child.get("duration")), 0.0)
        end = max(end, start)
        bars.append(
            _Bar(
                stage=_int(mine.get("stage"), fallback[0]),
                index=_int(mine.get("index"), fallback[1]),
                name=str(child.get("name", "?")),
                start_ms=start,
                end_ms=end,
                init_ms=min(max(_number(annotation(child, "initTime")), 0.0), end - start),
                wait_ms=max(_number(annotation(child, "waitTime")), 0.0),
                record=child,
            )
        )
    return sorted(bars, key=lambda b: (b.stage, b.index))


def stage_skew(dag_record: dict[str, Any], children: list[dict[str, Any]]) -> dict[int, float]:
    """Longest over shortest function duration, for every fan-out stage with two or
    more functions. A stage the DAG record does not describe counts when it has two
    or more functions. Durations under 1 ms count as 1 ms, to keep skews finite."""
    kinds = _stage_kinds(dag_record)
    durations: dict[int, list[float]] = defaultdict(list)
    for bar in _bars(dag_record, children):
        durations[bar.stage].append(bar.duration_ms)
    return {
        stage: max(ds) / max(min(ds), 1.0)
        for stage, ds in sorted(durations.items())
        if len(ds) >= 2 and kinds.get(stage, "parallel") in _FAN_OUT
    }


def _stage_spans(dag_record: dict[str, Any], bars: list[_Bar]) -> dict[int, tuple[float, float, str]]:
    """(start ms, end ms, kind) per stage: the DAG record's timings, else its functions' extent."""
    spans: dict[int, tuple[float, float, str]] = {}
    by_stage: dict[int, list[_Bar]] = defaultdict(list)
    for bar in bars:
        by_stage[bar.stage].append(bar)
    dag_end = _number(dag_record.get("end")) or max((b.end_ms for b in bars), default=0.0)
    for i, stage in _stages(dag_record):
        start = _number(stage.get("start")) or min((b.start_ms for b in by_stage[i]), default=0.0)
        end = _number(stage.get("end")) or dag_end
        spans[i] = (start, end, str(stage.get("kind", "")))
    for i, group in by_stage.items():
        if i not in spans and i != _UNPLACED:
            kind = "parallel" if len(group) > 1 else "action"
            spans[i] = (min(b.start_ms for b in group), max(b.end_ms for b in group), kind)
    return spans


@dataclass(frozen=True, slots=True)
class Decision:
    """One scheduler decision on one function: an entry of its allocation trajectory."""

    at_ms: float | None  # epoch ms; None when the entry has no usable time
    cpu: float | None
    memory_mb: float | None
    reason: str  # as recorded, known to this build or not
    note: str | None


def _decision(entry: Any) -> Decision | None:
    """A trajectory entry read leniently (any reason string), or None when it is not one."""
    if not isinstance(entry, dict):
        return None
    reason = entry.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        return None
    at = number(entry.get("at_ms", entry.get("at")))
    cpu, memory = number(entry.get("cpu")), number(entry.get("memory"))
    note = entry.get("note")
    return Decision(
        at if at is not None and at > 0 else None,
        cpu if cpu is not None and cpu >= 0 else None,
        memory if memory is not None and memory >= 0 else None,
        " ".join(reason.split()),
        (" ".join(note.split()) or None) if isinstance(note, str) else None,
    )


def scheduler_decisions(
    dag_record: dict[str, Any], children: list[dict[str, Any]]
) -> list[tuple[str, float, list[Decision]]]:
    """(function label, waitTime ms, its decisions by time) per function, in timeline order;
    entries without a time come last, in their recorded order."""
    out = []
    for bar in _bars(dag_record, children):
        raw = mapping(bar.record.get("gleaner")).get("allocation_trajectory")
        found = [d for d in map(_decision, raw if isinstance(raw, list) else []) if d is not None]
        found.sort(key=lambda d: (d.at_ms is None, d.at_ms or 0.0))
        out.append((f"{bar.name} [{bar.stage}.{bar.index}]", bar.wait_ms, found))
    return out


def _named(note: str, labels: dict[str, str]) -> str:
    """``note`` with each activation id of this request followed by its function's label."""

    def name(match: re.Match[str]) -> str:
        label = labels.get(match.group(0))
        return f"{match.group(0)} ({label})" if label else match.group(0)

    return _ACTIVATION_ID.sub(name, note)


def _amount(value: float | None, unit: str) -> str:
    return "?" if value is None else f"{value:.3g}{unit}"


def decision_lines(dag_record: dict[str, Any], children: list[dict[str, Any]]) -> list[str]:
    """Every scheduler decision, per function, as text (times in seconds since the request
    started, as on the PNG's axis)::

        decoder [1.0], waited 3 ms:
            0.810 s  start-now        0.5c  512 MB
            1.300 s  backfill         1c    512 MB  backfilled ahead of <id> (work [1.1]), ...
    """
    bars = _bars(dag_record, children)
    t0 = _number(dag_record.get("start")) or min((b.start_ms for b in bars), default=0.0)
    labels = {
        str(b.record.get("activationId")): f"{b.name} [{b.stage}.{b.index}]"
        for b in bars
        if isinstance(b.record.get("activationId"), str)
    }
    lines = ["scheduler decisions (seconds since the request started):"]
    for label, wait_ms, found in scheduler_decisions(dag_record, children):
        head = f"{label}, waited {wait_ms:.0f} ms" if wait_ms > 0 else label
        if not found:
            lines.append(f"{head}: no decision recorded")
            continue
        lines.append(f"{head}:")
        for d in found:
            at = "?" if d.at_ms is None else f"{(d.at_ms - t0) / 1000:.3f}"
            text = f"{at:>10} s  {d.reason:<15}  {_amount(d.cpu, 'c'):<6}{_amount(d.memory_mb, ' MB'):>8}"
            lines.append(f"{text}  {_named(d.note, labels)}" if d.note else text)
    if len(lines) == 1:
        lines.append("no function records")
    return lines


def _draw_decisions(ax: Axes, lines: list[str]) -> None:
    ax.axis("off")
    shown = lines[:PNG_DECISIONS]
    if len(lines) > len(shown):
        shown.append(f"... {len(lines) - len(shown)} more lines: gleaner dag timeline prints them all")
    ax.text(0.0, 1.0, "\n".join(shown), transform=ax.transAxes, ha="left", va="top",
            family="monospace", fontsize=7)  # fmt: skip


def draw_timeline(
    dag_record: dict[str, Any], children: list[dict[str, Any]], out: Path, *, title: str | None = None
) -> Path:
    """Write the timeline PNG to ``out`` and return ``out``."""
    bars = _bars(dag_record, children)
    t0 = _number(dag_record.get("start")) or min((b.start_ms for b in bars), default=0.0)
    spans = _stage_spans(dag_record, bars)
    skews = stage_skew(dag_record, children)

    rows = max(len(bars), 1)
    decisions = decision_lines(dag_record, children) if bars else []
    text_h = 0.13 * (min(len(decisions), PNG_DECISIONS + 1) + 1) if decisions else 0.0
    fig = Figure(figsize=(11, 2.2 + 0.45 * rows + 2.6 + text_h), layout="constrained")
    FigureCanvasAgg(fig)
    if decisions:
        ratios = [0.45 * rows + 0.6, 2.3, text_h]
        ax, low, listing = fig.subplots(3, 1, gridspec_kw={"height_ratios": ratios})
        low.sharex(ax)
        ax.tick_params(axis="x", labelbottom=False)  # as sharex=True leaves the upper panel
        _draw_decisions(listing, decisions)
    else:
        ax, low = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [0.45 * rows + 0.6, 2.3]})

    for k, (stage, (start, end, kind)) in enumerate(sorted(spans.items())):
        left, right = (start - t0) / 1000, (end - t0) / 1000
        ax.axvspan(left, right, color="#000000", alpha=0.06 if k % 2 == 0 else 0.0, lw=0)
        ax.axvline(left, color="#999999", lw=0.8, ls="--")
        low.axvline(left, color="#999999", lw=0.8, ls="--")
        label = f"stage {stage}: {kind or '?'}"
        if stage in skews:
            label += f"\nskew {skews[stage]:.1f}x"
        ax.text((left + right) / 2, 1.01, label, transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                fontsize=8)  # fmt: skip

    for y, bar in enumerate(bars):
        color = _color(bar.stage)
        start = (bar.start_ms - t0) / 1000
        if bar.wait_ms > 0:
            ax.barh(y, bar.wait_ms / 1000, left=start - bar.wait_ms / 1000, height=0.12, color="#bbbbbb")
        if bar.init_ms > 0:
            ax.barh(
                y, bar.init_ms / 1000, left=start, height=0.6, color="white", edgecolor=color, hatch="///"
            )
        ax.barh(
            y,
            (bar.duration_ms - bar.init_ms) / 1000,
            left=start + bar.init_ms / 1000,
            height=0.6,
            color=color,
        )
        draw_change_ticks(ax, y, bar.record, t0)
        label = " · ".join(p for p in (f" {bar.duration_ms:.0f} ms", start_label(bar.record)) if p)
        ax.text((bar.end_ms - t0) / 1000, y, label, va="center", fontsize=8)

    ax.set_yticks(range(len(bars)), [f"{b.name}  [{b.stage}.{b.index}]" for b in bars], fontsize=8)
    ax.set_ylim(len(bars) - 0.5 if bars else 0.5, -0.5)  # first function on top
    labelled = [(f"{b.name} [{b.stage}.{b.index}]", _color(b.stage), b.index, b.record) for b in bars]
    reasons = draw_allocations(low, labelled, t0)
    low.set_xlabel("seconds since the DAG request started")
    if not bars:
        ax.text(0.5, 0.5, "no function records", transform=ax.transAxes, ha="center", va="center")
    ends = [(e - t0) / 1000 for _, e, _ in spans.values()] + [(b.end_ms - t0) / 1000 for b in bars]
    lefts = [(b.start_ms - b.wait_ms - t0) / 1000 for b in bars]
    right = max(ends, default=1.0) or 1.0
    ax.set_xlim(min([0.0, *lefts]), right * 1.22)  # room for the duration and allocation labels
    fig.legend(
        handles=[
            Patch(facecolor="#4c72b0", label="run"),
            Patch(facecolor="white", edgecolor="#4c72b0", hatch="///", label="cold start (initTime)"),
            Patch(facecolor="#bbbbbb", label="wait (waitTime)"),
        ],
        title="bars",
        title_fontsize=8,
        loc="outside lower left",
        ncol=3,
        frameon=False,
        fontsize=8,
    )
    if reasons:
        fig.legend(handles=reasons, title="allocation change", loc="outside lower right",
                   ncol=(len(reasons) + 1) // 2, frameon=False, fontsize=8, title_fontsize=8)  # fmt: skip
    fig.suptitle(title or _default_title(dag_record), fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=110, bbox_inches="tight")
    return out


def _default_title(dag_record: dict[str, Any]) -> str:
    name = _dag(dag_record).get("name") or dag_record.get("name", "DAG")
    e2e = _number(dag_record.get("end")) - _number(dag_record.get("start"))
    e2e = e2e if e2e > 0 else _number(dag_record.get("duration"))
    size = _dag(dag_record).get("input_size")
    sized = f", input {size} B" if isinstance(size, int) else ""
    return f"{name} · request {dag_record.get('activationId', '?')} · {e2e:.0f} ms end to end{sized}"
