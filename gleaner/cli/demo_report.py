"""The pure parts of ``make demo``: which steps run, which inputs the side-by-side
requests use, the speedup table and the timing summary. No I/O here."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from gleaner.errors import GleanerError

# Training splits 80/20 by request and needs 10 rows (predictor.compare.MIN_ROWS):
# with three parallel functions per request, 5 requests is the least that trains.
MIN_PROFILE_INPUTS = 5
MAX_PROFILE_INPUTS = 200
MAX_RUN_INPUTS = 20


@dataclass(frozen=True, slots=True)
class Step:
    key: str
    title: str


def plan_steps(profile_inputs: int, run_inputs: int, *, stack: bool = True) -> list[Step]:
    """The demo's steps in order; GleanerError when the counts cannot make a demo."""
    if not MIN_PROFILE_INPUTS <= profile_inputs <= MAX_PROFILE_INPUTS:
        raise GleanerError(
            f"the demo profiles {MIN_PROFILE_INPUTS} to {MAX_PROFILE_INPUTS} inputs "
            f"(training needs {MIN_PROFILE_INPUTS}), got {profile_inputs}"
        )
    if not 1 <= run_inputs <= MAX_RUN_INPUTS:
        raise GleanerError(f"the demo runs 1 to {MAX_RUN_INPUTS} requests each way, got {run_inputs}")
    steps = [Step("stack", "start the embedded stack")] if stack else []
    return [
        *steps,
        Step("deploy", "deploy the skewed DAG demo-skew (5 actions)"),
        Step("profile", f"profile it on {profile_inputs} inputs, every function at the maximum allocation"),
        Step("train", "train the ML1/ML2 models from the profile"),
        Step("off", f"run {run_inputs} requests with harvesting off (user allocations)"),
        Step("on", f"run the same {run_inputs} requests with harvesting on"),
        Step("timeline", "draw the timeline of one harvested request"),
    ]


def run_sizes(n: int, low: int, high: int) -> list[int]:
    """``n`` input sizes evenly spread over the upper part of [low, high]: large
    enough that the parallel stage, not the per-stage overhead, sets the latency."""
    if n < 1 or not 0 < low <= high:
        raise ValueError(f"need n >= 1 and 0 < low <= high, got {n}, {low}, {high}")
    start = max(low, high // 4)
    if n == 1:
        return [high]
    return [round(start + (high - start) * i / (n - 1)) for i in range(n)]


def speedup(off_ms: float, on_ms: float) -> float:
    """Per-request speedup (L_off - L_on) / L_off (thesis §4.1.3, docs/benchmarks.md);
    NaN when either latency is missing."""
    if not (math.isfinite(off_ms) and math.isfinite(on_ms)) or off_ms <= 0:
        return math.nan
    return (off_ms - on_ms) / off_ms


@dataclass(frozen=True, slots=True)
class Pair:
    """One input, run with harvesting off and on: latencies are DAG record durations
    (NaN when that request failed)."""

    input_bytes: int
    off_ms: float
    on_ms: float

    @property
    def speedup(self) -> float:
        return speedup(self.off_ms, self.on_ms)


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if math.isfinite(value) else "failed"


def speedup_table(pairs: Sequence[Pair]) -> str:
    """A fixed-width table: one row per request and a closing mean."""
    rows = [("request", "input", "harvest off", "harvest on", "speedup")]
    for i, p in enumerate(pairs, start=1):
        s = p.speedup
        rows.append(
            (
                str(i),
                f"{p.input_bytes / 1000:.0f} KB",
                _ms(p.off_ms),
                _ms(p.on_ms),
                f"{s:+.2f}" if s == s else "-",
            )
        )
    done = [p.speedup for p in pairs if p.speedup == p.speedup]
    if done:
        off = statistics.mean(p.off_ms for p in pairs if p.speedup == p.speedup)
        on = statistics.mean(p.on_ms for p in pairs if p.speedup == p.speedup)
        rows.append(("mean", "", _ms(off), _ms(on), f"{statistics.mean(done):+.2f}"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            row[0].ljust(widths[0]),
            *(cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)),
        ]
        lines.append("  ".join(cells))
        if n == 0 or (done and n == len(rows) - 2):
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def timing_table(durations: Sequence[tuple[str, float]], total_s: float | None = None) -> str:
    """Each step's wall time and the total: ``total_s`` when measured (it also
    counts what runs between steps), else the steps' sum."""
    width = max([len(name) for name, _ in durations] + [len("total")])
    lines = [f"  {name.ljust(width)}  {seconds:6.1f} s" for name, seconds in durations]
    total = sum(s for _, s in durations) if total_s is None else total_s
    lines.append(f"  {'total'.ljust(width)}  {total:6.1f} s")
    return "\n".join(lines)
