"""``gleaner bench idle``: what the running stack burns when nothing happens.

CPU time of each part (and its children: an invoker's Docker calls, pouchdb's
node) over a quiet window, read from ``/proc/<pid>/stat``, in cores. Run it
with no traffic: a request during the window is counted as idle cost. Beside
it, the Kafka requests each part sends (TCP segments with data on its
connections to the broker, from ``ss``): what the broker's share is spent on.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
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


_SOCKET = re.compile(r"users:\(\(\"[^\"]*\",pid=(\d+),")
_SEGMENTS = re.compile(r"\bdata_segs_out:(\d+)")


def segments_by_pid(ss_output: str) -> dict[int, int]:
    """Data segments each process sent on the sockets ``ss -tnpi`` lists (pure):
    a socket's line names its process, the next one holds its counters."""
    out: dict[int, int] = {}
    pid: int | None = None
    for line in ss_output.splitlines():
        owner = _SOCKET.search(line)
        if owner is not None:
            pid = int(owner.group(1))
            continue
        sent = _SEGMENTS.search(line)
        if sent is not None and pid is not None:
            out[pid] = out.get(pid, 0) + int(sent.group(1))
            pid = None
    return out


def kafka_segments(port: int, pids: dict[str, int]) -> dict[str, int] | None:
    """Data segments each part has sent to the broker so far; None without ``ss``."""
    if shutil.which("ss") is None:
        return None
    try:
        text = subprocess.run(
            ["ss", "-tnpi", f"dport = :{port}"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    sent = segments_by_pid(text)
    return {part: sent.get(pid, 0) for part, pid in pids.items()}


def _broker_port(bootstrap: str) -> int:
    first = bootstrap.split(",")[0]
    return int(first.rsplit(":", 1)[1]) if ":" in first else 9092


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
    port = _broker_port(settings.kafka_bootstrap)
    time.sleep(args.settle)  # let start-up work and the last requests drain
    before, start = _readings(pids), time.monotonic()
    sent_before = kafka_segments(port, pids)
    for _ in tqdm(range(int(args.seconds)), desc="idle window", unit="s"):
        time.sleep(1)
    sent_after = kafka_segments(port, pids)
    window = time.monotonic() - start
    used = shares(before, _readings(pids), window)
    requests: dict[str, float] = {}
    if sent_before is not None and sent_after is not None:
        requests = {p: (sent_after[p] - sent_before[p]) / window for p in sent_after if p in sent_before}
    total = sum(used.values())
    lines = [
        "## Idle cost of the embedded stack (issue 11 item 8)",
        "",
        f"CPU of each part over {args.seconds:.0f} s with no requests, from /proc (children included),"
        " in cores of this machine.",
        "",
        "Kafka requests/s: data segments the part sent to the broker (fetches, heartbeats,"
        " commits), from `ss`; the broker's own CPU is spent answering them.",
        "",
        "| part | cores | share of the total | Kafka requests/s |",
        "|---|---|---|---|",
    ]
    for part, cores in sorted(used.items(), key=lambda kv: -kv[1]):
        share = f"{cores / total:.0%}" if total else "-"
        rate = f"{requests[part]:.1f}" if part in requests and part != "kafka" else "-"
        lines.append(f"| {part} | {cores:.3f} | {share} | {rate} |")
    verdict = "met" if total <= TARGET_CORES else f"missed by {total - TARGET_CORES:.2f} core"
    lines += ["", f"Total: {total:.3f} cores. Target <= {TARGET_CORES} core: {verdict}."]
    if requests:
        lines.append(f"Kafka requests to the broker: {sum(requests.values()):.0f}/s.")
    text = "\n".join(lines)
    print(text)
    write_section(Path(args.out), "idle", text)
    return 0
