"""Allocated CPU over time, per function: the lower panel of the timeline PNG.

Reads child activation records (OpenWhisk shape, Gleaner's keys under
``gleaner``): ``gleaner.allocation_trajectory`` (the allocation at the start and
every live change, see :class:`gleaner.allocation.AllocationChange`), else a flat
line at ``gleaner.allocation``; ``gleaner.origin``; and the measured usage
``gleaner.trajectory`` (``[t ms since sampling began, cores, MB]``; sampling
begins once the container is ready, i.e. ``initTime`` after ``start``).

Records come from the wild: every reader here skips what it cannot use instead
of raising. The pure helpers (:func:`allocation_series`, :func:`usage_series`,
:func:`start_label`) are separate from the drawing so they can be tested alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from gleaner.allocation import CHANGE_REASONS, ORIGINS, AllocationChange, ChangeReason

# Reasons an allocation starts with; every other reason is a live change.
START_REASONS = ("planned", "start-now", "backfill")
# colour, marker per reason; shapes differ too, so the legend reads without colour.
REASON_STYLE: dict[str, tuple[str, str]] = {
    "planned": ("#7f7f7f", "o"),
    "start-now": ("#17becf", ">"),
    "backfill": ("#8c564b", "<"),
    "lent": ("#e377c2", "h"),
    "take-back": ("#7f0000", "d"),
    "grow": ("#2ca02c", "^"),
    "timely-release": ("#1f77b4", "P"),
    "safeguard": ("#d62728", "X"),
    "idle-capacity": ("#bcbd22", "D"),
    "reclaim": ("#ff7f0e", "v"),
    "rerun": ("#9467bd", "*"),
    "resize-failed": ("#444444", "s"),
}
assert set(REASON_STYLE) == set(CHANGE_REASONS), "a change reason without a style"
SLACK_MS = 1_000  # changes further than this outside the activation are skipped
_LINESTYLES = ("-", "--", ":", "-.")


def number(value: Any) -> float | None:
    """A finite int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def annotation(record: dict[str, Any], key: str) -> Any:
    notes = record.get("annotations")
    for note in notes if isinstance(notes, list) else []:
        if isinstance(note, dict) and note.get("key") == key:
            return note.get("value")
    return None


def _span(record: dict[str, Any]) -> tuple[float | None, float | None]:
    """(start, end) epoch ms of an activation; end from ``duration`` when missing."""
    start = number(record.get("start"))
    start = start if start is not None and start > 0 else None
    end = number(record.get("end"))
    if (end is None or end <= 0) and start is not None:
        duration = number(record.get("duration"))
        end = start + duration if duration is not None and duration >= 0 else None
    if end is not None and (end <= 0 or (start is not None and end < start)):
        end = None
    return start, end


def parse_change(entry: Any) -> AllocationChange | None:
    """One ``allocation_trajectory`` entry, or None when it is malformed."""
    if not isinstance(entry, dict):
        return None
    at, cpu, memory = number(entry.get("at_ms")), number(entry.get("cpu")), number(entry.get("memory"))
    reason = entry.get("reason")
    if at is None or at <= 0 or cpu is None or cpu <= 0 or memory is None or memory <= 0:
        return None
    if not isinstance(reason, str) or reason not in CHANGE_REASONS:
        return None
    note = entry.get("note")
    return AllocationChange(round(at), cpu, round(memory), cast(ChangeReason, reason),
                            note if isinstance(note, str) and note else None)  # fmt: skip


def start_cpu(record: dict[str, Any]) -> float | None:
    """Cores from ``gleaner.allocation``, or None when missing or malformed."""
    cpu = number(mapping(mapping(record.get("gleaner")).get("allocation")).get("cpu"))
    return cpu if cpu is not None and cpu > 0 else None


@dataclass(frozen=True, slots=True)
class AllocationSeries:
    """One function's allocated cores as a step line (each point holds until the next)."""

    steps: tuple[tuple[float, float], ...]  # (epoch ms, cores); the last point at the activation's end
    changes: tuple[AllocationChange, ...]  # the usable trajectory entries, by time; () when flat

    @property
    def flat(self) -> bool:
        """No usable trajectory: a flat line at ``gleaner.allocation``."""
        return not self.changes

    @property
    def live(self) -> tuple[AllocationChange, ...]:
        """The changes made while it ran (everything but the allocation it started with)."""
        return tuple(c for c in self.changes if c.reason not in START_REASONS)


def allocation_series(record: dict[str, Any]) -> AllocationSeries:
    """The step series of one child record.

    Malformed trajectory entries, and entries more than :data:`SLACK_MS` outside the
    activation, are skipped. Entries are ordered by time (ties keep their order). When
    the first usable entry comes after the start, the line starts at
    ``gleaner.allocation``. Without usable entries the line is flat at
    ``gleaner.allocation``; without that either, the series is empty.
    """
    start, end = _span(record)
    raw = mapping(record.get("gleaner")).get("allocation_trajectory")
    changes = [c for c in map(parse_change, raw if isinstance(raw, list) else []) if c is not None]
    if start is not None:
        changes = [c for c in changes if c.at_ms >= start - SLACK_MS]
    if end is not None:
        changes = [c for c in changes if c.at_ms <= end + SLACK_MS]
    changes.sort(key=lambda c: c.at_ms)
    cpu0 = start_cpu(record)
    steps: list[tuple[float, float]] = [(float(c.at_ms), c.cpu) for c in changes]
    if start is not None and cpu0 is not None and (not steps or steps[0][0] > start):
        steps.insert(0, (start, cpu0))
    if steps and end is not None and end > steps[-1][0]:
        steps.append((end, steps[-1][1]))
    return AllocationSeries(tuple(steps), tuple(changes))


def usage_series(record: dict[str, Any]) -> list[tuple[float, float]]:
    """Measured cores as (epoch ms, cores) from ``gleaner.trajectory``; bad samples skipped."""
    start, _ = _span(record)
    raw = mapping(record.get("gleaner")).get("trajectory")
    if start is None or not isinstance(raw, list):
        return []
    begin = start + max(number(annotation(record, "initTime")) or 0.0, 0.0)
    out = []
    for sample in raw:
        if not isinstance(sample, list | tuple) or len(sample) < 2:
            continue
        t, cores = number(sample[0]), number(sample[1])
        if t is not None and t >= 0 and cores is not None and cores >= 0:
            out.append((begin + t, cores))
    return sorted(out)


def start_label(record: dict[str, Any]) -> str:
    """``"0.5c harvest"``: the cores it started with and their origin; what is known of it."""
    cpu = start_cpu(record)
    if cpu is None:
        first = allocation_series(record).changes
        cpu = first[0].cpu if first else None
    origin = mapping(record.get("gleaner")).get("origin")
    parts = [f"{cpu:.3g}c"] if cpu is not None else []
    if isinstance(origin, str) and origin in ORIGINS:
        parts.append(origin)
    return " ".join(parts)


def draw_allocations(
    ax: Axes, rows: Sequence[tuple[str, str, int, dict[str, Any]]], t0: float
) -> list[Line2D]:
    """Draw each function's allocated cores over time (seconds since ``t0``) on ``ax``,
    with a legend of the functions; return legend handles for the reasons drawn.

    ``rows`` are (label, colour, index in its stage, record); the index picks the
    line style, so siblings of one colour stay apart.
    """
    functions: list[Line2D] = []
    reasons: set[str] = set()
    top = 0.0
    for label, color, index, record in rows:
        series = allocation_series(record)
        if not series.steps:
            continue
        style = _LINESTYLES[index % len(_LINESTYLES)]
        xs = [(t - t0) / 1000 for t, _ in series.steps]
        ys = [c for _, c in series.steps]
        (line,) = ax.step(xs, ys, where="post", color=color, ls=style, lw=1.8, label=label)
        functions.append(line)
        top = max(top, *ys)
        used = usage_series(record)
        if used:
            ax.plot([(t - t0) / 1000 for t, _ in used], [c for _, c in used], color=color, lw=0.7, alpha=0.5)
            top = max(top, *(c for _, c in used))
        for change in series.changes:
            reasons.add(change.reason)
            face, marker = REASON_STYLE[change.reason]
            ax.scatter((change.at_ms - t0) / 1000, change.cpu, marker=marker, s=42, color=face,
                       edgecolors="black", linewidths=0.5, zorder=3)  # fmt: skip
    ax.set_ylabel("allocated cores")
    ax.set_ylim(0, top * 1.18 if top > 0 else 1.0)
    ax.grid(axis="y", color="#dddddd", lw=0.6)
    if not functions:
        ax.text(0.5, 0.5, "no allocation records", transform=ax.transAxes, ha="center", va="center")
        return []
    shown = functions[:8]
    if len(functions) > len(shown):
        shown.append(Line2D([], [], ls="", label=f"+{len(functions) - len(shown)} more"))
    shown.append(Line2D([], [], color="#555555", lw=0.7, alpha=0.6, label="measured use"))
    ax.legend(handles=shown, title="function", loc="upper left", bbox_to_anchor=(1.01, 1.0),
              fontsize=7, title_fontsize=7, frameon=False)  # fmt: skip
    return [_reason_handle(r) for r in CHANGE_REASONS if r in reasons]


def _reason_handle(reason: str) -> Line2D:
    color, marker = REASON_STYLE[reason]
    return Line2D([], [], ls="", marker=marker, color=color, mec="black", mew=0.5, label=reason)


def draw_change_ticks(ax: Axes, y: float, record: dict[str, Any], t0: float) -> None:
    """Mark on a function's bar (row ``y``) where its allocation changed live."""
    for change in allocation_series(record).live:
        x = (change.at_ms - t0) / 1000
        face = REASON_STYLE[change.reason][0]
        ax.vlines(x, y - 0.3, y + 0.3, colors="black", lw=1.1, zorder=3)
        ax.scatter(x, y - 0.38, marker="v", s=16, color=face, edgecolors="black", linewidths=0.4, zorder=4)
