"""``make demo`` (``gleaner up --demo``): what Gleaner is for, in a few minutes.

On the running stack: deploy a small skewed DAG (``workloads/demo``), profile it,
train its models, run the same requests with harvesting off and then on, and print
the per-request speedup, a timeline PNG of one harvested request and the dashboard's
address. Every step reuses what the CLI does (``workload deploy``, ``profile``,
``train``, ``dag invoke``, ``dag timeline``); the pure parts are in
:mod:`gleaner.cli.demo_report`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from gleaner.cli.demo_report import Pair, plan_steps, run_sizes, speedup_table, timing_table
from gleaner.credentials import guest_credential
from gleaner.errors import GleanerError
from gleaner.gateway_client import OpenWhiskClient, Target
from gleaner.settings import Settings

RECORD_WAIT_S = 60.0
RUN_SEED = 11  # the side-by-side requests' texts (the profile uses seed 1)


@dataclass(slots=True)
class DemoResult:
    pairs: list[Pair]
    table: str
    timeline: Path
    policy: str
    applied: bool  # the harvested requests' plan was applied (else user allocations: see the reasons)
    durations: list[tuple[str, float]] = field(default_factory=list)


@dataclass(slots=True)
class _Request:
    latency_ms: float
    record: dict[str, Any] | None


def _invoke(client: OpenWhiskClient, dag: str, path: Path, harvest: bool) -> _Request:
    status, rec = client.request(
        "POST",
        f"/dags/{dag}",
        json=orjson.loads(path.read_bytes()),
        params={"blocking": "true", "harvest": str(harvest).lower()},
        ok=(200, 202, 500, 502),
    )
    if status == 202:  # still running after the blocking wait
        rec = client.record(rec["activationId"], RECORD_WAIT_S)
    if not rec.get("response", {}).get("success"):
        return _Request(float("nan"), rec)
    return _Request(float(rec["duration"]), rec)


def _run(
    client: OpenWhiskClient, dag: str, inputs: list[Path], harvest: bool, progress: bool
) -> list[_Request]:
    mode = "on" if harvest else "off"
    _invoke(client, dag, inputs[0], harvest)  # warm the containers at this mode's allocations; not counted
    return [
        _invoke(client, dag, path, harvest)
        for path in tqdm(inputs, desc=f"harvest {mode}", unit="req", disable=not progress)
    ]


def _stage_cpu(record: dict[str, Any] | None) -> str:
    """The parallel stage's planned cores, e.g. ``0.5/0.5/0.5``, from a harvested record."""
    plan = ((record or {}).get("gleaner") or {}).get("harvest") or {}
    allocations = plan.get("allocations") or {}
    return "/".join(f"{allocations[k]['cpu']:g}" for k in sorted(allocations)) or "-"


def demo_flow(
    client: OpenWhiskClient,
    settings: Settings,
    *,
    profile_inputs: int = 20,
    run_inputs: int = 5,
    out_dir: Path | None = None,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """Deploy, profile, train, run off and on, draw one timeline. Raises GleanerError."""
    from monitor.timeline import draw_timeline
    from predictor.dataset import dataset_path
    from predictor.profiler import profile_dag
    from predictor.train import train_dag
    from workloads.demo.workload import DEMO_SKEW, MAX_BYTES, MIN_BYTES
    from workloads.deploy import deploy_workload

    steps = {s.key: s.title for s in plan_steps(profile_inputs, run_inputs, stack=False)}
    out = out_dir or settings.state_dir / "demo"
    durations: list[tuple[str, float]] = []

    @contextmanager
    def step(key: str) -> Iterator[None]:
        say(f"\n== {steps[key]}")
        began = time.monotonic()
        yield
        durations.append((key, time.monotonic() - began))

    dag = DEMO_SKEW.name
    namespace = client.namespace()
    with step("deploy"):
        deploy_workload(client, DEMO_SKEW)
        users = ", ".join(f"{f.name} {f.cpu:g}" for f in DEMO_SKEW.functions)
        say(f"ok: deployed {dag}; user cores: {users}")
    with step("profile"):
        files = DEMO_SKEW.generate_inputs(profile_inputs, 1, out / "inputs" / "profile")
        dataset = dataset_path(settings.state_dir, namespace, dag)
        profiled = profile_dag(client, dag, files, dataset, progress=progress)
        # A failed request only thins the dataset; training says when too little is left.
        failed = f", {profiled.failed} of {profiled.requests} requests failed" if profiled.failed else ""
        say(f"ok: {profiled.skipped}{failed}; dataset {dataset}")
    with step("train"):
        trained = train_dag(
            dataset, settings.models_root, namespace, dag, settings, out / "models", progress=progress
        )
        names = ", ".join(f"{target} {model}" for target, model in trained.trained.model_names.items())
        say(f"ok: {trained.version_dir} ({names})")
    requests = inputs_for_runs(run_inputs, out, MIN_BYTES, MAX_BYTES)
    with step("off"):
        off = _run(client, dag, requests, False, progress)
    with step("on"):
        on = _run(client, dag, requests, True, progress)
    sizes = [len(p.read_bytes()) for p in requests]
    pairs = [Pair(n, a.latency_ms, b.latency_ms) for n, a, b in zip(sizes, off, on, strict=True)]
    harvested = [r for r in on if r.record is not None and r.latency_ms == r.latency_ms]
    if not harvested:
        raise GleanerError("no request succeeded with harvesting on")
    last = harvested[-1].record
    assert last is not None
    plan = (last.get("gleaner") or {}).get("harvest") or {}
    with step("timeline"):
        dag_record = client.record(last["activationId"], RECORD_WAIT_S)
        children = [client.record(cid, RECORD_WAIT_S) for cid in dag_record.get("logs", [])]
        png = draw_timeline(dag_record, children, out / f"timeline-{last['activationId'][:8]}.png")
    user_cpu = "/".join(f"{f.cpu:g}" for f in DEMO_SKEW.functions[1:4])
    result = DemoResult(
        pairs, speedup_table(pairs), png, str(plan.get("policy", "-")), bool(plan.get("applied")), durations
    )
    applied = "" if plan.get("applied") else f", NOT applied: {'; '.join(plan.get('reasons', []))}"
    say(
        f"\nParallel stage cores: harvesting off {user_cpu} (the user's), "
        f"on {_stage_cpu(last)} (policy {result.policy}{applied})"
    )
    return result


def inputs_for_runs(n: int, out: Path, low: int, high: int) -> list[Path]:
    from workloads.demo.workload import inputs_of_sizes

    return inputs_of_sizes(run_sizes(n, low, high), RUN_SEED, out / "inputs" / "runs")


def run_demo(
    settings: Settings, *, stack_s: float | None = None, profile_inputs: int = 20, run_inputs: int = 5
) -> int:
    # The default namespace's key (generated by `gleaner up`, also in ~/.wskprops).
    plan_steps(profile_inputs, run_inputs)  # bad counts fail before anything runs
    client = OpenWhiskClient(Target.resolve(settings.api_host, guest_credential(settings)))
    began = time.monotonic()
    try:
        result = demo_flow(client, settings, profile_inputs=profile_inputs, run_inputs=run_inputs)
    except GleanerError as exc:
        print(f"\nthe demo failed: {exc}")
        return 1
    finally:
        client.close()
    durations = ([("stack", stack_s)] if stack_s is not None else []) + result.durations
    print("\nLatency L of each request (its DAG record's duration), harvesting off and on;")
    print("speedup = (L_off - L_on) / L_off, as in docs/benchmarks.md:\n")
    print(result.table)
    print(f"\nTimeline of a harvested request: {result.timeline}")
    print(
        f"Live view:                       {settings.api_host.rstrip('/')}/dashboard"
        "  (key: AUTH in ~/.wskprops)"
    )
    print("\nTime per step:")
    print(timing_table(durations, (stack_s or 0.0) + time.monotonic() - began))
    return 0
