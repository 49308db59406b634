"""The offline profiler (thesis §3.5.1): run a DAG once per input, one request
at a time, with every function at the maximum allowed allocation, then build
the dataset from the activation records, never from guesses.

It talks to Gleaner only through its REST API, like any user: requests go in
with ``profile=true`` (the predictor stream then writes the maximum allocation
for every function) and the records come back from ``/activations``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from gleaner.cli.client import OpenWhiskClient
from predictor.dataset import ProfileRow, Skipped, collect_rows, write_csv

RECORD_WAIT_S = 30.0


@dataclass(frozen=True, slots=True)
class ProfileResult:
    dataset: Path
    rows: int
    requests: int
    failed: int
    skipped: str


def profile_dag(
    client: OpenWhiskClient, dag: str, inputs: Sequence[Path], out: Path, *, progress: bool = True
) -> ProfileResult:
    requests: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    failed = 0
    for path in tqdm(inputs, desc=f"profile {dag}", unit="req", disable=not progress):
        value = orjson.loads(path.read_bytes())
        status, rec = client.request(
            "POST",
            f"/dags/{dag}",
            json=value,
            ok=(200, 202, 500, 502),
            params={"blocking": "true", "profile": "true", "harvest": "false"},
        )
        if status == 202:  # still running after the blocking wait: wait for its record
            rec = client.record(rec["activationId"], RECORD_WAIT_S)
        if not rec.get("response", {}).get("success"):
            failed += 1
        children = [client.record(aid, RECORD_WAIT_S) for aid in rec.get("logs", [])]
        requests.append((rec, children))
    rows, skipped = collect_rows(requests)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out)
    return ProfileResult(out, len(rows), len(requests), failed, _summary(skipped, rows))


def _summary(skipped: Skipped, rows: list[ProfileRow]) -> str:
    text = skipped.summary() if skipped.reasons else "nothing skipped"
    return f"{len(rows)} rows; {text}"
