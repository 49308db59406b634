"""``gleaner bench idle``: what the running stack burns when nothing happens.

CPU time of each part (and its children: an invoker's Docker calls, pouchdb's
node) over a quiet window, read from ``/proc/<pid>/stat``, in cores. Run it
with no traffic: a request during the window is counted as idle cost.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from tqdm import tqdm

from benchmarks.report import write_section
from deploy import stack
from gleaner.settings import load_settings

TICKS = os.sysconf("SC_CLK_TCK")
TARGET_CORES = 0.1


def cpu_seconds(pid: int) -> float | None:
    """User + system time of ``pid`` and its waited-for children, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # utime, stime, cutime, cstime are fields 14-17 of stat(5); [0] here is field 3.
    return sum(int(v) for v in fields[11:15]) / TICKS


def shares(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Cores each part used between two readings (parts missing from either are left out)."""
    return {part: max(0.0, (after[part] - before[part]) / seconds) for part in before if part in after}


def _readings(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for part, pid in pids.items():
        value = cpu_seconds(pid)
        if value is not None:
            out[part] = value
    return out


def main(args: argparse.Namespace) -> int:
    settings = load_settings()
    pids = {p.part: p.pid for p in stack.status(settings) if p.pid is not None and p.state == "up"}
    if not pids:
        print("no part of the stack is running: gleaner up first")
        return 1
    time.sleep(args.settle)  # let start-up work and the last requests drain
    before, start = _readings(pids), time.monotonic()
    for _ in tqdm(range(int(args.seconds)), desc="idle window", unit="s"):
        time.sleep(1)
    used = shares(before, _readings(pids), time.monotonic() - start)
    total = sum(used.values())
    lines = [
        "## Idle cost of the embedded stack (issue 11 item 8)",
        "",
        f"CPU of each part over {args.seconds:.0f} s with no requests, from /proc (children included),"
        " in cores of this machine.",
        "",
        "| part | cores | share of the total |",
        "|---|---|---|",
    ]
    for part, cores in sorted(used.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {part} | {cores:.3f} | {cores / total:.0%} |" if total else f"| {part} | 0 | - |")
    verdict = "met" if total <= TARGET_CORES else f"missed by {total - TARGET_CORES:.2f} core"
    lines += ["", f"Total: {total:.3f} cores. Target <= {TARGET_CORES} core: {verdict}."]
    text = "\n".join(lines)
    print(text)
    write_section(Path(args.out), "idle", text)
    return 0
