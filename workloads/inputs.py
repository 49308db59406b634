"""Writing a workload's generated inputs to disk: ``input-000.json``, ``input-001.json``, ..."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm


def encode(payload: dict[str, Any]) -> bytes:
    """Compact, deterministic JSON (the same payload always gives the same bytes)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def write_inputs(
    out_dir: Path, n: int, make: Callable[[int], dict[str, Any]], *, desc: str, progress: bool = True
) -> list[Path]:
    """Call ``make(i)`` for i in 0..n-1 and write each payload as ``input-<i>.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in tqdm(range(n), desc=desc, unit="input", disable=not progress or n < 5, leave=False):
        path = out_dir / f"input-{i:03d}.json"
        path.write_bytes(encode(make(i)))
        paths.append(path)
    return paths
