"""The offline profiler (thesis §3.5.1): run a DAG once per input, one request
at a time, with every function at the maximum allowed allocation, then build
the dataset from the activation records, never from guesses.

It talks to Gleaner only through its REST API, like any user: requests go in
with ``profile=true`` (the predictor stream then writes the maximum allocation
for every function) and the records come back from ``/activations``.

CPU sweep (:mod:`predictor.sweep`): a few inputs also run at lower allocations,
so that each parallel function's scaling curve can be fitted (three or more
allocations). Those requests are profile requests too, with ``profile_cpu=<cores>``:
the predictor stream then gives every function of that request those cores (memory
at the maximum, as for any profile request). Nothing else changes: the actions'
own limits are never touched, so other requests of them run as they always do, and
a crash mid-sweep leaves nothing to undo. A new allocation may start containers
cold, which the dataset's ``init_ms`` lets the curve fit leave out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson
from tqdm import tqdm

from gleaner.settings import load_settings
from predictor.allocation import Grid
from predictor.dataset import ProfileRow, Skipped, collect_rows, write_csv
from predictor.sweep import CpuSweep, default_cpus, default_inputs, pick_inputs

RECORD_WAIT_S = 30.0


class Gateway(Protocol):
    """What the profiler asks of Gleaner's REST API (:class:`gleaner.gateway_client.OpenWhiskClient`
    is one): passed in, so the predictor holds no client of its own."""

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, Any]: ...

    def record(self, activation_id: str, timeout_s: float = 30.0) -> dict[str, Any]: ...


Records = tuple[dict[str, Any], list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class ProfileResult:
    dataset: Path
    rows: int
    requests: int
    failed: int
    skipped: str
    sweep: str = "no CPU sweep"


def default_sweep(n_inputs: int) -> CpuSweep:
    """The sweep ``gleaner profile`` runs unless told otherwise, from the settings."""
    s = load_settings()
    top = profile_cpu(s.cpu_max, s.invoker_cpu_capacity)
    grid = Grid(s.cpu_min, s.cpu_max, s.cpu_step)
    return CpuSweep(default_cpus(top, grid), default_inputs(n_inputs))


def profile_cpu(cpu_max: float, invoker_cpu_capacity: float) -> float:
    """The profile allocation, as the predictor stream gives it: the largest that fits an invoker."""
    return min(cpu_max, invoker_cpu_capacity)


def profile_dag(
    client: Gateway,
    dag: str,
    inputs: Sequence[Path],
    out: Path,
    *,
    progress: bool = True,
    sweep: CpuSweep | Literal["auto"] | None = "auto",
) -> ProfileResult:
    """Profile ``dag`` on ``inputs`` and write the dataset to ``out``. ``sweep``:
    ``"auto"`` for :func:`default_sweep`, None for none."""
    plan = default_sweep(len(inputs)) if sweep == "auto" else sweep or CpuSweep((), 0)
    actions = _parallel_actions(client, dag) if plan.requests else []
    if plan.requests and not actions:
        plan = CpuSweep((), 0)  # nothing is harvested, nothing to sweep
    swept = pick_inputs([p.stat().st_size for p in inputs], plan.inputs) if actions else []
    passes = plan.cpus if swept else ()
    requests: list[Records] = []
    failed = 0
    bar = tqdm(
        total=len(inputs) + len(passes) * len(swept), desc=f"profile {dag}", unit="req", disable=not progress
    )
    try:
        for path in inputs:
            failed += _run(client, dag, path, requests)
            bar.update()
        for cores in passes:
            bar.set_postfix_str(f"{cores:g} cores")
            for i in swept:
                failed += _run(client, dag, inputs[i], requests, cpu=cores)
                bar.update()
    finally:
        bar.close()
    rows, skipped = collect_rows(requests)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out)
    done = CpuSweep(passes, len(swept)) if passes else CpuSweep((), 0)
    summary = done.describe() + (f" of {', '.join(actions)}" if done.requests else "")
    return ProfileResult(out, len(rows), len(requests), failed, _summary(skipped, rows), summary)


def _run(client: Gateway, dag: str, path: Path, into: list[Records], *, cpu: float | None = None) -> int:
    """One blocking profile request (every function at ``cpu`` cores, or at the
    maximum) and its records appended to ``into``; 1 if it failed."""
    value = orjson.loads(path.read_bytes())
    params = {"blocking": "true", "profile": "true", "harvest": "false"}
    if cpu is not None:
        params["profile_cpu"] = repr(float(cpu))
    status, rec = client.request("POST", f"/dags/{dag}", json=value, ok=(200, 202, 500, 502), params=params)
    if status == 202:  # still running after the blocking wait: wait for its record
        rec = client.record(rec["activationId"], RECORD_WAIT_S)
    children = [client.record(aid, RECORD_WAIT_S) for aid in rec.get("logs", [])]
    into.append((rec, children))
    return 0 if rec.get("response", {}).get("success") else 1


def _parallel_actions(client: Gateway, dag: str) -> list[str]:
    """The actions of the DAG's parallel stages, once each, in stage order."""
    _, doc = client.request("GET", f"/dags/{dag}")
    stages = (doc.get("analysis") or {}).get("stages") or []
    names = [str(f) for s in stages if s.get("kind") == "parallel" for f in s.get("functions", [])]
    return list(dict.fromkeys(names))


def _summary(skipped: Skipped, rows: list[ProfileRow]) -> str:
    text = skipped.summary() if skipped.reasons else "nothing skipped"
    return f"{len(rows)} rows; {text}"
