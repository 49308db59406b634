"""Execution timeline of one DAG request as a PNG (after the thesis's Fig. 2.5).

Input: the DAG-level activation record and its children's records, all in the
OpenWhisk shape (``start``/``end`` in epoch ms, ``annotations`` with ``initTime``
and ``waitTime`` in ms) with Gleaner's keys under ``gleaner``: the DAG record's
``gleaner.dag`` (name, stages with their functions) and each child's
``gleaner.stage`` / ``gleaner.index``.

One bar per function, ordered by stage then index; the cold-start part of a bar
(``initTime``) is hatched, the wait before it (``waitTime``) a thin grey line.
Stages are shaded bands; a parallel stage is labelled with its skew, the longest
over the shortest function duration in it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

_FAN_OUT = ("parallel", "map")
_UNPLACED = 10**6  # stage of a child no record places: drawn last, in grey
_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


@dataclass(frozen=True, slots=True)
class _Bar:
    stage: int
    index: int
    name: str
    start_ms: float
    end_ms: float
    init_ms: float
    wait_ms: float

    @property
    def duration_ms(self) -> float:
        return self.end_ms - self.start_ms


def _annotation(record: dict[str, Any], key: str) -> Any:
    for note in record.get("annotations") or []:
        if isinstance(note, dict) and note.get("key") == key:
            return note.get("value")
    return None


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _dag(dag_record: dict[str, Any]) -> dict[str, Any]:
    dag = (dag_record.get("gleaner") or {}).get("dag")
    return dag if isinstance(dag, dict) else {}


def _stage_kinds(dag_record: dict[str, Any]) -> dict[int, str]:
    return {int(s["index"]): str(s.get("kind", "")) for s in _dag(dag_record).get("stages") or []}


def _bars(dag_record: dict[str, Any], children: list[dict[str, Any]]) -> list[_Bar]:
    """Children as bars, by stage then index. Stage and index come from the child's
    ``gleaner`` keys, else from the DAG record's function lists."""
    placed: dict[str, tuple[int, int]] = {}
    for stage in _dag(dag_record).get("stages") or []:
        for fn in stage.get("functions") or []:
            placed[str(fn.get("activation_id"))] = (int(stage["index"]), int(fn.get("index", 0)))
    bars = []
    for order, child in enumerate(children):
        mine = child.get("gleaner") or {}
        fallback = placed.get(str(child.get("activationId")), (_UNPLACED, order))
        stage = mine.get("stage", fallback[0])
        index = mine.get("index", fallback[1])
        start = _number(child.get("start"))
        end = _number(child.get("end")) or start + _number(child.get("duration"))
        bars.append(
            _Bar(
                stage=int(stage),
                index=int(index),
                name=str(child.get("name", "?")),
                start_ms=start,
                end_ms=end,
                init_ms=min(_number(_annotation(child, "initTime")), end - start),
                wait_ms=_number(_annotation(child, "waitTime")),
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
    for stage in _dag(dag_record).get("stages") or []:
        i = int(stage["index"])
        start = _number(stage.get("start")) or min((b.start_ms for b in by_stage[i]), default=0.0)
        end = _number(stage.get("end")) or dag_end
        spans[i] = (start, end, str(stage.get("kind", "")))
    for i, group in by_stage.items():
        if i not in spans and i != _UNPLACED:
            kind = "parallel" if len(group) > 1 else "action"
            spans[i] = (min(b.start_ms for b in group), max(b.end_ms for b in group), kind)
    return spans


def draw_timeline(
    dag_record: dict[str, Any], children: list[dict[str, Any]], out: Path, *, title: str | None = None
) -> Path:
    """Write the timeline PNG to ``out`` and return ``out``."""
    bars = _bars(dag_record, children)
    t0 = _number(dag_record.get("start")) or min((b.start_ms for b in bars), default=0.0)
    spans = _stage_spans(dag_record, bars)
    skews = stage_skew(dag_record, children)

    fig = Figure(figsize=(11, 2.2 + 0.45 * max(len(bars), 1)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()

    for k, (stage, (start, end, kind)) in enumerate(sorted(spans.items())):
        left, right = (start - t0) / 1000, (end - t0) / 1000
        ax.axvspan(left, right, color="#000000", alpha=0.06 if k % 2 == 0 else 0.0, lw=0)
        ax.axvline(left, color="#999999", lw=0.8, ls="--")
        label = f"stage {stage}: {kind or '?'}"
        if stage in skews:
            label += f"\nskew {skews[stage]:.1f}x"
        ax.text((left + right) / 2, 1.01, label, transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                fontsize=8)  # fmt: skip

    for y, bar in enumerate(bars):
        color = _COLORS[bar.stage % len(_COLORS)] if bar.stage != _UNPLACED else "#bbbbbb"
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
        ax.text((bar.end_ms - t0) / 1000, y, f" {bar.duration_ms:.0f} ms", va="center", fontsize=8)

    ax.set_yticks(range(len(bars)), [f"{b.name}  [{b.stage}.{b.index}]" for b in bars], fontsize=8)
    ax.set_ylim(len(bars) - 0.5 if bars else 0.5, -0.5)  # first function on top
    ax.set_xlabel("seconds since the DAG request started")
    if not bars:
        ax.text(0.5, 0.5, "no function records", transform=ax.transAxes, ha="center", va="center")
    ends = [(e - t0) / 1000 for _, e, _ in spans.values()] + [(b.end_ms - t0) / 1000 for b in bars]
    lefts = [(b.start_ms - b.wait_ms - t0) / 1000 for b in bars]
    right = max(ends, default=1.0) or 1.0
    ax.set_xlim(min([0.0, *lefts]), right * 1.12)  # room for the duration labels
    fig.legend(
        handles=[
            Patch(facecolor="#4c72b0", label="run"),
            Patch(facecolor="white", edgecolor="#4c72b0", hatch="///", label="cold start (initTime)"),
            Patch(facecolor="#bbbbbb", label="wait (waitTime)"),
        ],
        loc="outside lower center",
        ncol=3,
        frameon=False,
        fontsize=8,
    )
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
