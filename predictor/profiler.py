"""The offline profiler (thesis §3.5.1): run a DAG once per input, one request
at a time, with every function at the maximum allowed allocation, then build
the dataset from the activation records, never from guesses.

It talks to Gleaner only through its REST API, like any user: requests go in
with ``profile=true`` (the predictor stream then writes the maximum allocation
for every function) and the records come back from ``/activations``.

CPU sweep (:mod:`predictor.sweep`): a few inputs also run at lower allocations,
so that each parallel function's scaling curve can be fitted (three or more
allocations). A request can only run below the maximum at its user allocations,
so the profiler sets the parallel-stage actions' CPU limit to the sweep's value
(``PUT /actions/<name>`` with only ``limits.cpu``; code, memory, parameters kept),
runs those inputs with harvesting off, and puts the user's limits back at the end,
also after an error or Ctrl-C. Meanwhile other requests of those actions would run
at the sweep's CPU: profile while the DAG is otherwise idle, as one always has.
The profile's own requests carry explicit allocations, so the inputs at the
maximum run while the limit change reaches every cache (``action_cache_ttl_s``).
A limit change is a new action version: the first request after it starts its
containers cold, which the dataset's ``init_ms`` lets the curve fit leave out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
from tqdm import tqdm

from gleaner.cli.client import OpenWhiskClient
from gleaner.errors import GleanerError
from predictor.allocation import Grid
from predictor.dataset import ProfileRow, Skipped, collect_rows, write_csv
from predictor.sweep import CpuSweep, chunks, default_cpus, default_inputs, pick_inputs

log = logging.getLogger(__name__)

RECORD_WAIT_S = 30.0
SETTLE_MARGIN_S = 0.5  # beyond the caches' TTL, before a request relies on a new limit

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
    from gleaner.settings import load_settings

    s = load_settings()
    top = profile_cpu(s.cpu_max, s.invoker_cpu_capacity)
    grid = Grid(s.cpu_min, s.cpu_max, s.cpu_step)
    return CpuSweep(default_cpus(top, grid), default_inputs(n_inputs), s.action_cache_ttl_s + SETTLE_MARGIN_S)


def profile_cpu(cpu_max: float, invoker_cpu_capacity: float) -> float:
    """The profile allocation, as the predictor stream gives it: the largest that fits an invoker."""
    return min(cpu_max, invoker_cpu_capacity)


def profile_dag(
    client: OpenWhiskClient,
    dag: str,
    inputs: Sequence[Path],
    out: Path,
    *,
    progress: bool = True,
    sweep: CpuSweep | Literal["auto"] | None = "auto",
    sleep: Callable[[float], None] = time.sleep,
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
    user = _cpu_limits(client, actions) if passes else {}
    unrestored: list[str] = []
    try:
        for p, part in enumerate(chunks(len(inputs), len(passes))):
            changed = time.monotonic()
            if p < len(passes):
                _set_cpu(client, dict.fromkeys(actions, passes[p]))
            for i in part:
                failed += _run(client, dag, inputs[i], requests, profile=True)
                bar.update()
            if p < len(passes):
                # The inputs at the maximum above usually outlast every cache's TTL.
                wait = plan.settle_s - (time.monotonic() - changed)
                if wait > 0:
                    sleep(wait)
                for i in swept:
                    bar.set_postfix_str(f"{passes[p]:g} cores")
                    failed += _run(client, dag, inputs[i], requests, profile=False)
                    bar.update()
    finally:
        bar.close()
        unrestored = _set_cpu(client, user) if user else []
        if unrestored:
            log.error("CPU limits not restored, set them again by hand: %s", ", ".join(unrestored))
    rows, skipped = collect_rows(requests)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out)
    done = CpuSweep(passes, len(swept)) if passes else CpuSweep((), 0)
    summary = done.describe() + (f" of {', '.join(actions)}" if done.requests else "")
    if unrestored:
        summary += f"; CPU limits NOT restored: {', '.join(unrestored)}"
    return ProfileResult(out, len(rows), len(requests), failed, _summary(skipped, rows), summary)


def _run(client: OpenWhiskClient, dag: str, path: Path, into: list[Records], *, profile: bool) -> int:
    """One blocking request and its records appended to ``into``; 1 if it failed."""
    value = orjson.loads(path.read_bytes())
    status, rec = client.request(
        "POST",
        f"/dags/{dag}",
        json=value,
        ok=(200, 202, 500, 502),
        params={"blocking": "true", "profile": str(profile).lower(), "harvest": "false"},
    )
    if status == 202:  # still running after the blocking wait: wait for its record
        rec = client.record(rec["activationId"], RECORD_WAIT_S)
    children = [client.record(aid, RECORD_WAIT_S) for aid in rec.get("logs", [])]
    into.append((rec, children))
    return 0 if rec.get("response", {}).get("success") else 1


def _parallel_actions(client: OpenWhiskClient, dag: str) -> list[str]:
    """The actions of the DAG's parallel stages, once each, in stage order."""
    _, doc = client.request("GET", f"/dags/{dag}")
    stages = (doc.get("analysis") or {}).get("stages") or []
    names = [str(f) for s in stages if s.get("kind") == "parallel" for f in s.get("functions", [])]
    return list(dict.fromkeys(names))


def _cpu_limits(client: OpenWhiskClient, actions: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in actions:
        _, doc = client.request("GET", f"/actions/{name}", params={"code": "false"})
        try:
            out[name] = float(doc["limits"]["cpu"])
        except (KeyError, TypeError, ValueError) as exc:
            raise GleanerError(f"action {name} has no CPU limit to sweep from: {exc}") from exc
    return out


def _set_cpu(client: OpenWhiskClient, cpu: dict[str, float]) -> list[str]:
    """Set each action's CPU limit; the ones that failed, as ``name (cores)``. Every
    action is tried even after a failure (this also puts the user's limits back)."""
    failed: list[str] = []
    for name, cores in cpu.items():
        try:
            client.put_action(name, {"limits": {"cpu": cores}}, overwrite=True)
        except GleanerError as exc:
            log.warning("cannot set %s to %g cores: %s", name, cores, exc)
            failed.append(f"{name} ({cores:g} cores)")
    return failed


def _summary(skipped: Skipped, rows: list[ProfileRow]) -> str:
    text = skipped.summary() if skipped.reasons else "nothing skipped"
    return f"{len(rows)} rows; {text}"
