"""Writes a benchmark's section into docs/benchmarks.md, with the machine and command."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shlex
import sys
from pathlib import Path

from monitor.evaluation import percentile  # re-exported: one implementation for every benchmark

__all__ = ["machine", "percentile", "write_section"]


def machine() -> str:
    mem_gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB RAM, {platform.system()} {platform.release()}"


def write_section(path: Path, name: str, body: str) -> None:
    """Replace (or append) the section between this benchmark's markers."""
    command = "gleaner " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- bench:{name} -->\n{body.rstrip()}\n\n"
        f"Measured {stamp} on {machine()}.\nCommand: `{command}`\n<!-- /bench:{name} -->"
    )
    text = (
        path.read_text()
        if path.exists()
        else "# Benchmarks\n\nEvery figure here was measured by the command under it.\n"
    )
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = (
        pattern.sub(lambda _m: section, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section + "\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
